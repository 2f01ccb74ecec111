"""Load time: ``mlejax.load_model`` against ``joblib.load`` of the same model, in the same process.

Trains RandomForest(100, depth 12), XGBoost(500), LightGBM(500), an
MLP(256, 128) and a LogisticRegression on 20k × 28 rows (``trees.make_data``),
saves each as ``.mle`` and as joblib, and prints a markdown table of the
median of ``--repeats`` loads of each (interleaved, after two warm-up loads,
so both see the same machine state; ``--blocked``: one loader's loads, then the
other's), with joblib's time over mlejax's.
A load is ``load_model(path)`` alone: nothing is compiled or predicted.

Usage:
    python benchmarks/load.py                     # every model, 100 loads each
    python benchmarks/load.py --models rf,logreg --repeats 50
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import trees  # noqa: E402


def _mlp(threads: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=30, random_state=0)  # load time does not need convergence


def _logreg(threads: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500)


#: key -> (description, build(threads) -> unfitted classifier)
MODELS: dict[str, tuple[str, Callable[[int], Any]]] = {
    "rf": ("RandomForest(100, depth 12)", lambda t: trees.MODELS["rf"].build(False, t)),
    "xgb": ("XGBoost(500, depth 6)", lambda t: trees.MODELS["xgb"].build(False, t)),
    "lgbm": ("LightGBM(500, 63 leaves)", lambda t: trees.MODELS["lgbm"].build(False, t)),
    "mlp": ("MLP(256, 128)", _mlp),
    "logreg": ("LogisticRegression", _logreg),
}


def _median_interleaved(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each of ``fns``, timed in turn ``repeats`` times (after two untimed rounds)."""
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats + 2):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - start
            del result
            if i >= 2:
                out.append(elapsed)
    return [statistics.median(t) for t in times]


def _median_blocked(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Like :func:`_median_interleaved`, but all loads of one loader before the next's (each with warm caches)."""
    return [_median_interleaved([fn], repeats)[0] for fn in fns]


def measure(key: str, X: Any, y: Any, workdir: str, repeats: int, blocked: bool) -> tuple[str, int, float, float]:
    """(description, .mle size, mlejax median s, joblib median s) for one model."""
    import joblib

    import mlejax

    desc, build = MODELS[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the MLP's ConvergenceWarning
        model = build(os.cpu_count() or 1).fit(X, y)
    mle_path, jl_path = os.path.join(workdir, f"{key}.mle"), os.path.join(workdir, f"{key}.joblib")
    mlejax.export_model(model, mle_path, sample_input=X[:256])
    joblib.dump(model, jl_path)
    mlejax.load_model(mle_path).predict_proba(X[:8])  # imports and first-use paths out of the way
    gc.collect()
    timer = _median_blocked if blocked else _median_interleaved
    ours, theirs = timer([lambda: mlejax.load_model(mle_path), lambda: joblib.load(jl_path)], repeats)
    return desc, os.path.getsize(mle_path), ours, theirs


def table(rows: list[tuple[str, int, float, float]]) -> str:
    """The markdown table of :func:`measure` results."""
    lines = ["| model | .mle size | mlejax load | joblib load | speed-up |", "|---|---:|---:|---:|---:|"]
    for desc, size, ours, theirs in rows:
        lines.append(f"| {desc} | {size / 1e6:.2f} MB | {ours * 1e3:.3f} ms | {theirs * 1e3:.3f} ms | {theirs / ours:.1f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--repeats", type=int, default=100, help="timed loads per model and loader (at least 50 for the README)")
    p.add_argument("--rows", type=int, default=20_000, help="training rows")
    p.add_argument("--blocked", action="store_true",
                   help="time all loads of one loader, then the other's (default: alternate, so the slower one's "
                        "memory traffic also cools the caches of the faster)")
    args = p.parse_args(argv)
    keys = [k.strip() for k in args.models.split(",")]
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    X, y, _ = trees.make_data(2, args.rows, 0, 0.0)
    with tempfile.TemporaryDirectory() as workdir:
        rows = [measure(k, X, y, workdir, args.repeats, args.blocked) for k in keys]
    order = "one loader after the other" if args.blocked else "alternating"
    print(f"Median of {args.repeats} loads each, {order}, same process; {args.rows} training rows × {trees.N_FEATURES} features.\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
