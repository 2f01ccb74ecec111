"""Cold start: a new process that imports, loads a model and predicts one row, mlejax against joblib.

For RandomForest(100, depth 12), XGBoost(500) and LogisticRegression trained
on 20k × 28 rows (``trees.make_data``), each saved as ``.mle`` and as joblib,
it times whole processes: ``python -c "import mlejax; m = load_model(...);
m.predict_proba(x)"`` against ``python -c "import joblib; m = joblib.load(...);
m.predict_proba(x)"`` (scikit-learn or xgboost imported by the unpickling).
mlejax's persistent compilation cache is warm (its own directory, filled by
one untimed process per model first), as it is for a service restarted on
the same machine. Processes alternate between the two, ``--repeats`` each;
the table shows the median wall time and the median CPU time (user + system,
from ``wait4``: steadier than wall time on a shared machine) of each, and
mlejax's over joblib's. A second table splits mlejax's process into phases
(interpreter start, ``import jax``, the rest of ``import mlejax``, load, first
call), measured inside the same processes, beside the floors that are not
ours: ``python -c pass`` and ``python -c "import jax"``.

Usage:
    python benchmarks/cold_start.py                      # every model, 7 processes each
    python benchmarks/cold_start.py --models rf --repeats 11
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import trees  # noqa: E402

#: key -> (description, build() -> unfitted classifier)
MODELS: dict[str, tuple[str, Any]] = {
    "rf": ("RandomForest(100, depth 12)", lambda: trees.MODELS["rf"].build(False, 1)),
    "xgb": ("XGBoost(500, depth 6)", lambda: trees.MODELS["xgb"].build(False, 1)),
    "logreg": ("LogisticRegression", None),
}

_MLEJAX = """
import time
t0 = time.perf_counter()
import numpy as np
import jax
t1 = time.perf_counter()
import mlejax
t2 = time.perf_counter()
m = mlejax.load_model({path!r})
t3 = time.perf_counter()
m.predict_proba(np.load({row!r}))
t4 = time.perf_counter()
print("PHASES", t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""
_JOBLIB = """
import numpy as np, joblib
m = joblib.load({path!r})
m.predict_proba(np.load({row!r}))
"""


def _build(key: str) -> Any:
    if key == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=500)
    return MODELS[key][1]()


def run_process(code: str, env: dict[str, str], cwd: str) -> tuple[float, float, str]:
    """(wall s, CPU s of the process: user + system, stdout) of ``python -c code``."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"child failed ({proc.returncode}): {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, out


def measure(keys: list[str], repeats: int, workdir: str) -> dict:
    """Every figure of the two tables, as a dict (also printed by :func:`main`)."""
    import joblib

    import mlejax

    X, y, _ = trees.make_data(2, 20_000, 0, 0.0)
    row = os.path.join(workdir, "row.npy")
    import numpy as np

    np.save(row, X[:1])
    env = {**os.environ, "MLEJAX_CACHE_DIR": os.path.join(workdir, "xla"), "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH", "")])}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    results: dict[str, Any] = {"models": {}}
    for key in keys:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _build(key).fit(X, y)
        mle_path, jl_path = os.path.join(workdir, f"{key}.mle"), os.path.join(workdir, f"{key}.joblib")
        mlejax.export_model(model, mle_path, sample_input=X[:256])
        joblib.dump(model, jl_path)
        ours_code, theirs_code = _MLEJAX.format(path=mle_path, row=row), _JOBLIB.format(path=jl_path, row=row)
        run_process(ours_code, env, workdir)  # fills the persistent cache
        run_process(theirs_code, env, workdir)  # and the page cache
        ours, theirs, phases = [], [], []
        for _ in range(repeats):
            wall, cpu, out = run_process(ours_code, env, workdir)
            ours.append((wall, cpu))
            phases.append([float(v) for v in out.split("PHASES", 1)[1].split()])
            theirs.append(run_process(theirs_code, env, workdir)[:2])
        results["models"][key] = {
            "description": MODELS[key][0],
            "mlejax_wall": statistics.median(w for w, _ in ours), "mlejax_cpu": statistics.median(c for _, c in ours),
            "joblib_wall": statistics.median(w for w, _ in theirs), "joblib_cpu": statistics.median(c for _, c in theirs),
            "phases": [statistics.median(p[i] for p in phases) for i in range(4)],
        }
    for name, code in (("python -c pass", "pass"), ("python -c 'import numpy'", "import numpy"), ("python -c 'import jax'", "import jax")):
        runs = [run_process(code, env, workdir)[:2] for _ in range(repeats)]
        results[name] = (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
    return results


def tables(results: dict) -> str:
    """The two markdown tables of :func:`measure`'s results."""
    lines = ["| model | mlejax wall | joblib wall | ratio | mlejax CPU | joblib CPU | ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results["models"].values():
        lines.append(
            f"| {r['description']} | {r['mlejax_wall']:.3f} s | {r['joblib_wall']:.3f} s | {r['mlejax_wall'] / r['joblib_wall']:.2f}× "
            f"| {r['mlejax_cpu']:.3f} s | {r['joblib_cpu']:.3f} s | {r['mlejax_cpu'] / r['joblib_cpu']:.2f}× |"
        )
    lines += ["", "| mlejax process, phases (median) | import numpy + jax | rest of import mlejax | load_model | first predict_proba |",
              "|---|---:|---:|---:|---:|"]
    for r in results["models"].values():
        lines.append(f"| {r['description']} | " + " | ".join(f"{v * 1e3:.0f} ms" for v in r["phases"]) + " |")
    lines += ["", "| floor (whole process) | wall | CPU |", "|---|---:|---:|"]
    for name in ("python -c pass", "python -c 'import numpy'", "python -c 'import jax'"):
        wall, cpu = results[name]
        lines.append(f"| `{name}` | {wall:.3f} s | {cpu:.3f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--repeats", type=int, default=7, help="processes per model and loader (at least 5)")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    keys = [k.strip() for k in args.models.split(",")]
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    with tempfile.TemporaryDirectory() as workdir:
        results = measure(keys, args.repeats, workdir)
    print(f"New process: import, load, predict_proba(1 row); median of {args.repeats} processes each, alternating; "
          "mlejax with a warm persistent compilation cache.\n")
    print(tables(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
