"""``mle-runtime demo``: train a random forest, export it, and compare with joblib side by side.

Every figure printed is measured in this run: median of repeats for timings,
the same process for both load times, and a fresh process for the cold start
with JAX's persistent compilation cache.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["run_demo"]

_SECOND_PROCESS = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, mlejax as mle
t1 = time.perf_counter()
m = mle.load_model(sys.argv[1])
t2 = time.perf_counter()
X = np.load(sys.argv[2])
m.predict_proba(X)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": t3 - t2, "modules": sorted(sys.modules)}))
"""


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_demo(rows: int = 20_000, features: int = 28, trees: int = 100, workdir: str | None = None) -> dict:
    """Train, export, load and score; print a comparison table; return the figures."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import mlejax as mle

    tmp = Path(workdir or tempfile.mkdtemp(prefix="mlejax-demo-"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"training RandomForestClassifier({trees} trees) on {rows}x{features} float32 rows ...", flush=True)
    X, y = make_classification(rows, features, n_informative=min(features, 14), n_classes=3, random_state=0)
    X = X.astype(np.float32)
    X[np.random.default_rng(0).random(X.shape) < 0.02] = np.nan  # missing values, routed as sklearn does
    model = RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=-1).fit(X, y)

    jl_path, mle_path, data_path = tmp / "model.joblib", tmp / "model.mle", tmp / "X.npy"
    joblib.dump(model, jl_path)
    report = mle.export_model(model, mle_path, sample_input=X[:256])
    np.save(data_path, X)

    jl_load = _median_time(lambda: joblib.load(jl_path), 5)
    mle_load = _median_time(lambda: mle.load_model(mle_path), 5)
    m = mle.load_model(mle_path)
    start = time.perf_counter()
    ours = m.predict_proba(X)
    first_call = time.perf_counter() - start
    ours_time = _median_time(lambda: m.predict_proba(X), 5)
    native_time = _median_time(lambda: model.predict_proba(X), 5)
    native = model.predict_proba(X)
    max_err = float(np.max(np.abs(ours - native)))
    label_agree = float(np.mean(m.predict(X) == model.predict(X)))

    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", _SECOND_PROCESS, str(mle_path), str(data_path)],
        capture_output=True, text=True, env=env, check=True, cwd=tmp,
    )
    second = json.loads(proc.stdout.strip().splitlines()[-1])
    forbidden = sorted({m.split(".")[0] for m in second["modules"]} & {"sklearn", "joblib", "torch", "tensorflow", "xgboost", "lightgbm", "catboost"})

    figures = {
        "joblib_file_bytes": jl_path.stat().st_size,
        "mle_file_bytes": mle_path.stat().st_size,
        "joblib_load_ms": jl_load * 1e3,
        "mle_load_ms": mle_load * 1e3,
        "mle_first_call_ms": first_call * 1e3,
        "second_process_first_call_ms": second["first_call_s"] * 1e3,
        "sklearn_predict_proba_ms": native_time * 1e3,
        "mle_predict_proba_ms": ours_time * 1e3,
        "max_abs_proba_error": max_err,
        "label_agreement": label_agree,
        "export_ms": report["export_time_ms"],
    }
    print()
    print(f"{'':34}{'joblib + sklearn':>18}{'mlejax':>14}")
    print(f"{'file size':34}{_mb(figures['joblib_file_bytes']):>18}{_mb(figures['mle_file_bytes']):>14}")
    print(f"{'load time (same process, median)':34}{jl_load * 1e3:>15.1f} ms{mle_load * 1e3:>11.2f} ms")
    print(f"{'pickle/code execution on load':34}{'yes':>18}{'no':>14}")
    print(f"{f'predict_proba {rows} rows (median)':34}{native_time * 1e3:>15.1f} ms{ours_time * 1e3:>11.1f} ms")
    print(f"{'first call (compile + run)':34}{'-':>18}{first_call * 1e3:>11.0f} ms")
    print(f"{'first call, 2nd process (cache)':34}{'-':>18}{second['first_call_s'] * 1e3:>11.0f} ms")
    print(f"{'max |proba - sklearn proba|':34}{'':>18}{max_err:>14.2e}")
    print(f"{'labels equal to sklearn':34}{'':>18}{label_agree:>14.2%}")
    print(f"{'frameworks imported to load+run':34}{'sklearn, joblib':>18}{', '.join(forbidden) or 'none':>14}")
    print(f"\nfiles in {tmp}")
    return figures


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"
