"""Memory per process: peak RSS of a new process that loads a large model and predicts, mlejax against joblib.

For RandomForest(200, unbounded depth) and XGBoost(500, depth 8) trained on
20k × 28 rows (``trees.make_data``), each saved as ``.mle`` and as joblib,
new processes report their peak RSS (``VmHWM``) and current RSS (``VmRSS``)
at three points: the baseline (interpreter and numpy only), after the load
(which imports what it needs: JAX for mlejax; scikit-learn or xgboost for
joblib), and after the first ``predict_proba`` of ``--rows`` rows. A third
column, "JAX floor", is a process that imports JAX and runs one trivial
compiled program: what any JAX program holds before a model is involved.
Figures are medians of ``--repeats`` processes.

Usage:
    python benchmarks/memory.py
    python benchmarks/memory.py --models rf --rows 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import trees  # noqa: E402


def _rf() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=200, n_jobs=-1, random_state=0)


def _xgb() -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=500, max_depth=8, random_state=0)


MODELS = {"rf": ("RandomForest(200, unbounded depth)", _rf), "xgb": ("XGBoost(500, depth 8)", _xgb)}

_PROBE = """
import json
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024
import numpy as np
X = np.load({data!r})
out = {{"baseline": rss()}}
{load}
out["load"] = rss()
{predict}
out["predict"] = rss()
print("RSS", json.dumps(out))
"""
_LOADERS = {
    "mlejax": ("import mlejax\nm = mlejax.load_model({path!r})", "m.predict_proba(X)"),
    "joblib": ("import joblib\nm = joblib.load({path!r})", "m.predict_proba(X)"),
    "jax floor": ("import jax, jax.numpy as jnp\nf = jax.jit(lambda x: x + 1)", "np.asarray(f(X))"),
}


def probe(loader: str, path: str, data: str, cwd: str) -> dict[str, tuple[float, float]]:
    """{stage: (peak MiB, current MiB)} from one new process."""
    load, predict = _LOADERS[loader]
    code = _PROBE.format(data=data, load=load.format(path=path), predict=predict)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.split("RSS", 1)[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--rows", type=int, default=1000, help="rows of the first predict_proba")
    p.add_argument("--repeats", type=int, default=3, help="processes per model and loader")
    args = p.parse_args(argv)
    import joblib
    import numpy as np

    import mlejax

    keys = [k.strip() for k in args.models.split(",")]
    X, y, X_score = trees.make_data(2, 20_000, args.rows, 0.0)
    print(f"Peak RSS (VmHWM, MiB) of a new process; median of {args.repeats}; predict_proba of {args.rows} rows.\n")
    print("| model | .mle / joblib size | loader | baseline | after load | after predict | predict ÷ joblib's |")
    print("|---|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as workdir:
        data = os.path.join(workdir, "X.npy")
        np.save(data, X_score)
        for key in keys:
            desc, build = MODELS[key]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = build().fit(X, y)
            mle_path, jl_path = os.path.join(workdir, f"{key}.mle"), os.path.join(workdir, f"{key}.joblib")
            mlejax.export_model(model, mle_path)
            joblib.dump(model, jl_path)
            del model
            probe("mlejax", mle_path, data, workdir)  # warm the compilation cache, as a restarted service has it
            rows = {}
            for loader, path in (("mlejax", mle_path), ("joblib", jl_path), ("jax floor", "")):
                runs = [probe(loader, path, data, workdir) for _ in range(args.repeats)]
                rows[loader] = {stage: statistics.median(r[stage][0] for r in runs) for stage in ("baseline", "load", "predict")}
            sizes = f"{os.path.getsize(mle_path) / 1e6:.1f} / {os.path.getsize(jl_path) / 1e6:.1f} MB"
            for loader, r in rows.items():
                ratio = f"{r['predict'] / rows['joblib']['predict']:.0%}"
                print(f"| {desc} | {sizes} | {loader} | {r['baseline']:.0f} | {r['load']:.0f} | {r['predict']:.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
