"""Deploying without Python (issue 17): IREE's native runner against Python mlejax and joblib.

For RandomForest(100), XGBoost(500) and an MLP, trained on 20,000 rows of
``make_classification`` data (28 float32 features), it measures:

- start to first answer for one row, as a whole process (median of ``--repeats``):
  ``iree-run-module`` under ``env -i`` on the ``mle-compile --target iree-cpu``
  artifact; ``python -c`` loading the ``.mle`` with mlejax and calling
  ``predict_proba`` (JAX's persistent compilation cache warm, as on any start
  after the first); ``python -c`` loading the joblib pickle with scikit-learn /
  XGBoost and calling ``predict_proba``;
- warm per-call latency at batch 1 and throughput at 10,000 rows: the same
  ``.vmfb`` through IREE's Python runtime bindings (``local-task`` device)
  against mlejax's XLA programs (``Model.predict_proba``), in this process;
- the sizes of the ``.mle``, the ``.vmfb``, the joblib file and the runner.

    python benchmarks/no_python.py [--models rf,xgb,mlp] [--repeats 5] [--out benchmarks/results]

The tables are printed as markdown (and written to ``OUT/no_python.md`` and
``.json`` with ``--out``), with the command, date, machine and versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import median_ms  # noqa: E402

MODELS = {
    "rf": "RandomForestClassifier(n_estimators=100)",
    "xgb": "XGBClassifier(n_estimators=500, max_depth=6)",
    "mlp": "MLPClassifier(hidden_layer_sizes=(100,))",
}
ROWS = 10_000


def _fit(key: str, X: np.ndarray, y: np.ndarray):
    if key == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1).fit(X, y)
    if key == "xgb":
        import xgboost as xgb

        return xgb.XGBClassifier(n_estimators=500, max_depth=6, random_state=0).fit(X, y)
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(100,), max_iter=200, random_state=0).fit(X, y)


def _runner() -> str:
    import iree._runtime_libs as libs

    return os.path.join(os.path.dirname(libs.__file__), "iree-run-module")


def _process_ms(cmd: list[str], repeats: int, cwd: str) -> tuple[float, float]:
    """Medians of ``repeats`` runs of a whole process (one run first, untimed): (wall ms, CPU ms, user + system).

    The CPU time is the process's own (its children included), which a loaded machine inflates far less than the wall time.
    """
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3


def _iree_function(vmfb: str, name: str):
    import iree.runtime as rt

    ctx = rt.SystemContext(config=rt.Config("local-task"))
    module = rt.VmModule.mmap(ctx.instance, vmfb)
    ctx.add_vm_module(module)
    fn = ctx.modules[module.name][name]
    return lambda x: fn(x).to_host()


def bench(key: str, X: np.ndarray, y: np.ndarray, Xtest: np.ndarray, repeats: int, work: str) -> dict:
    import joblib

    import mlejax as mle

    native = _fit(key, X, y)
    mle_path, pkl_path, out = (os.path.join(work, f"{key}{ext}") for ext in (".mle", ".joblib", "_iree"))
    mle.export_model(native, mle_path, sample_input=Xtest[:256])
    joblib.dump(native, pkl_path)
    start = time.perf_counter()
    mle.aot.compile(mle_path, out, target="iree-cpu", methods=["predict_proba"], batch_sizes=[1, ROWS])
    compile_s = time.perf_counter() - start
    vmfb = os.path.join(out, "model.vmfb")
    one, big = Xtest[:1], Xtest[:ROWS]
    x1 = os.path.join(work, "x1.npy")
    np.save(x1, one)

    native_cold = _process_ms(["env", "-i", _runner(), f"--module={vmfb}", "--device=local-sync",
                               "--function=predict_proba_b1", f"--input=@{x1}", "--output=@y1.npy"], repeats, work)
    got = np.load(os.path.join(work, "y1.npy"))
    py = [sys.executable, "-c"]
    mlejax_cold = _process_ms(py + [f"import numpy as np, mlejax as mle; mle.load_model({mle_path!r}).predict_proba(np.load({x1!r}))"],
                              repeats, work)
    joblib_cold = _process_ms(py + [f"import numpy as np, joblib; joblib.load({pkl_path!r}).predict_proba(np.load({x1!r}))"],
                              repeats, work)

    model = mle.load_model(mle_path)
    f1, fbig = _iree_function(vmfb, "predict_proba_b1"), _iree_function(vmfb, f"predict_proba_b{ROWS}")
    worst = max(float(np.abs(got - model.predict_proba(one)).max()),
                float(np.abs(fbig(big) - model.predict_proba(big)).max()))
    model.predict_proba(one), f1(one), fbig(big), model.predict_proba(big)  # compile, page in
    iree_b1 = median_ms(lambda: f1(one), 201)
    xla_b1 = median_ms(lambda: model.predict_proba(one), 201)
    iree_big = median_ms(lambda: fbig(big), 9)
    xla_big = median_ms(lambda: model.predict_proba(big), 9)
    return {
        "model": MODELS[key],
        "native_cold_ms": native_cold[0], "mlejax_cold_ms": mlejax_cold[0], "joblib_cold_ms": joblib_cold[0],
        "native_cold_cpu_ms": native_cold[1], "mlejax_cold_cpu_ms": mlejax_cold[1], "joblib_cold_cpu_ms": joblib_cold[1],
        "iree_b1_us": iree_b1 * 1e3, "xla_b1_us": xla_b1 * 1e3,
        "iree_rows_per_s": ROWS / (iree_big / 1e3), "xla_rows_per_s": ROWS / (xla_big / 1e3),
        "mle_bytes": os.path.getsize(mle_path), "vmfb_bytes": os.path.getsize(vmfb), "joblib_bytes": os.path.getsize(pkl_path),
        "compile_s": compile_s, "worst_abs_error_vs_mlejax": worst,
    }


def _table(results: list[dict]) -> str:
    lines = [
        "| model | native runner cold, ms (CPU ms) | Python mlejax cold, ms (CPU ms) | Python joblib cold, ms (CPU ms) |"
        " joblib / native | IREE b1 (µs) | XLA b1 (µs) | IREE 10k rows/s | XLA 10k rows/s | .mle | .vmfb | joblib |"
        " max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['native_cold_ms']:.1f} ({r['native_cold_cpu_ms']:.1f}) | "
            f"{r['mlejax_cold_ms']:.0f} ({r['mlejax_cold_cpu_ms']:.0f}) | {r['joblib_cold_ms']:.0f} ({r['joblib_cold_cpu_ms']:.0f}) | "
            f"{r['joblib_cold_ms'] / r['native_cold_ms']:.0f}× | {r['iree_b1_us']:.0f} | {r['xla_b1_us']:.0f} | "
            f"{r['iree_rows_per_s']:,.0f} | {r['xla_rows_per_s']:,.0f} | {r['mle_bytes'] / 1e6:.2f} MB | "
            f"{r['vmfb_bytes'] / 1e6:.2f} MB | {r['joblib_bytes'] / 1e6:.2f} MB | {r['worst_abs_error_vs_mlejax']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--repeats", type=int, default=5, help="process starts per cold-start figure (median)")
    parser.add_argument("--out", default=None, help="folder for no_python.md / no_python.json")
    args = parser.parse_args()
    from sklearn.datasets import make_classification

    import iree.compiler.version
    import jax

    import mlejax
    import mlejax.aot  # noqa: F401

    X, y = make_classification(n_samples=20_000 + ROWS, n_features=28, n_informative=14, n_redundant=4, random_state=0)
    X = X.astype(np.float32)
    X, y, Xtest = X[:20_000], y[:20_000], X[20_000:]
    results = []
    with tempfile.TemporaryDirectory() as work:
        for key in args.models.split(","):
            results.append(bench(key, X, y, Xtest, args.repeats, work))
            print(_table(results[-1:]), flush=True)
    runner = os.path.getsize(_runner())
    header = (
        f"`python benchmarks/{' '.join(['no_python.py', *sys.argv[1:]])}` — {datetime.date.today()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; mlejax {mlejax.__version__}, jax {jax.__version__}, "
        f"iree {iree.compiler.version.VERSION}; iree-run-module {runner / 1e6:.1f} MB"
    )
    text = header + "\n\n" + _table(results) + "\n"
    print("\n" + text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "no_python.md"), "w") as fh:
            fh.write(text)
        with open(os.path.join(args.out, "no_python.json"), "w") as fh:
            json.dump({"header": header, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
