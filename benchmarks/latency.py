"""Batch-1 latency: mlejax's ``predict_proba`` on one row against ONNX Runtime and torch, and the XLA floor.

Prints three tables (the floor last):

- the floor: the smallest compiled XLA:CPU program (``x + 1`` on a 1×1
  float32 array) called directly, with and without the result's conversion to
  numpy, and LogisticRegression through mlejax;
- tree models of ``benchmarks/trees.py`` (``--models``, full sizes) on one
  row: mlejax against ONNX Runtime (one thread, as a single request is served)
  alternating, p50 and p99 of ``--calls`` calls each; the native library
  timed on its own (a twentieth of the calls);
- the reference MLP (28 → 256 → 128 → 2, ReLU) in PyTorch against torch
  single-threaded (``torch.set_num_threads(1)``, ``inference_mode``).

mlejax's time is a whole ``predict_proba(x)`` call: input checks, the call
cache, the compiled program, the result as numpy.

Usage:
    python benchmarks/latency.py                          # rf, xgb, lgbm, cat, et; MLP
    python benchmarks/latency.py --models rf --calls 5000 --blocked
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import trees  # noqa: E402
from _peers import MlejaxPeer, NativePeer, OrtPeer, PeerUnavailable  # noqa: E402


#: ``--blocked``: time all calls of one peer, then the next's (each with its working set in cache)
BLOCKED = False


def percentiles_us(fns: list[Callable[[], object]], calls: int) -> list[tuple[float, float]]:
    """(p50, p99) in µs of each of ``fns``, called in turn ``calls`` times after 50 untimed rounds (see :data:`BLOCKED`)."""
    if BLOCKED and len(fns) > 1:
        return [percentiles_us([fn], calls)[0] for fn in fns]
    times = [np.empty(calls) for _ in fns]
    clock = time.perf_counter
    for i in range(-50, calls):
        for fn, out in zip(fns, times):
            start = clock()
            fn()
            elapsed = clock() - start
            if i >= 0:
                out[i] = elapsed
    return [(float(np.percentile(t, 50)) * 1e6, float(np.percentile(t, 99)) * 1e6) for t in times]


def floor(calls: int, workdir: str) -> list[tuple[str, float, float]]:
    """Rows of the floor table: (what, p50 µs, p99 µs)."""
    import jax
    from sklearn.linear_model import LogisticRegression

    import mlejax

    x = np.zeros((1, 1), np.float32)
    exe = jax.jit(lambda v: v + 1).lower(x).compile()
    X, y, _ = trees.make_data(2, 2_000, 0, 0.0)
    path = os.path.join(workdir, "logreg.mle")
    mlejax.export_model(LogisticRegression(max_iter=500).fit(X, y), path)
    model, row = mlejax.load_model(path), X[:1]
    model.predict_proba(row)
    fns = [lambda: exe(x), lambda: np.asarray(exe(x)), lambda: model.predict_proba(row)]
    names = ["XLA:CPU executable `x + 1`, called", "… and its result as numpy", "mlejax LogisticRegression predict_proba"]
    return [(n, *r) for n, r in zip(names, percentiles_us(fns, calls))]


def trees_table(keys: list[str], calls: int, workdir: str) -> list[tuple[str, dict[str, Any]]]:
    """Per model: its description and {peer: (p50, p99) or a reason it is n/a}."""
    X, y, X_score = trees.make_data(10, 20_000, 64, 0.0)
    rows = []
    for key in keys:
        spec = trees.MODELS[key]
        Xk, yk, Xs = (X, y, X_score) if spec.n_classes == 10 else trees.make_data(2, 20_000, 64, 0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = spec.build(False, 1).fit(Xk, yk)
        row = np.ascontiguousarray(Xs[:1])
        peers = {"mlejax": MlejaxPeer(1), "ort": OrtPeer(1), "native": NativePeer(1)}
        fns, names, result = [], [], {}
        for name, peer in peers.items():
            try:
                sub = os.path.join(workdir, f"{key}-{name}")
                os.makedirs(sub, exist_ok=True)
                loaded = peer.load(peer.convert(model, spec.n_classes, Xk, sub))
                peer.proba(loaded, row)
            except PeerUnavailable as exc:
                result[name] = f"n/a ({exc})"
                continue
            fns.append(lambda peer=peer, loaded=loaded: peer.proba(loaded, row))
            names.append(name)
        # mlejax and ORT alternate; the native library (milliseconds a row for some) is timed on its own after
        # them, so that its calls do not evict the others' working sets between their calls
        native = names.index("native") if "native" in names else None
        if native is not None:
            result["native"] = percentiles_us([fns.pop(native)], max(50, calls // 20))[0]
            names.pop(native)
        result.update(zip(names, percentiles_us(fns, calls)))
        rows.append((spec.describe(model), result))
    return rows


def mlp_table(calls: int, workdir: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """((mlejax p50, p99), (torch p50, p99)) for the reference MLP on one row."""
    import torch

    import mlejax

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(28, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 2), torch.nn.Softmax(dim=1)).eval()
    row = np.random.default_rng(0).standard_normal((1, 28)).astype(np.float32)
    path = os.path.join(workdir, "mlp.mle")
    mlejax.export_model(net, path, sample_input=row)
    model = mlejax.load_model(path)
    method = model.predict_proba if "predict_proba" in model.methods else model.predict
    torch.set_num_threads(1)
    t_row = torch.from_numpy(row)

    def torch_call() -> np.ndarray:
        with torch.inference_mode():
            return net(t_row).numpy()

    np.testing.assert_allclose(method(row), torch_call(), rtol=1e-5, atol=1e-6)
    ours, theirs = percentiles_us([lambda: method(row), torch_call], calls)
    return ours, theirs


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else f"{value[0]:.1f} µs"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="rf,xgb,lgbm,cat,et", help=f"comma list of {', '.join(trees.MODELS)} ('' for none)")
    p.add_argument("--calls", type=int, default=3000, help="timed calls per peer")
    p.add_argument("--no-mlp", action="store_true", help="skip the MLP against torch")
    p.add_argument("--blocked", action="store_true",
                   help="all calls of one peer, then the other's (default: alternate, so each call finds the other's data in cache)")
    args = p.parse_args(argv)
    global BLOCKED
    BLOCKED = args.blocked
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in trees.MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(trees.MODELS)}")
    with tempfile.TemporaryDirectory() as workdir:
        order = "one peer after the other" if args.blocked else "peers alternating"
        print(f"Batch 1, one row of 28 float32 features; p50 (p99) of {args.calls} calls each, {order}.\n")
        if keys:
            print("\n| model | mlejax | ONNX Runtime (1 thread) | native | mlejax / ORT |\n|---|---:|---:|---:|---:|")
            for desc, r in trees_table(keys, args.calls, workdir):
                ratio = f"{r['mlejax'][0] / r['ort'][0]:.2f}×" if not isinstance(r.get("ort", ""), str) and "mlejax" in r else "n/a"
                print(f"| {desc} | {_cell(r.get('mlejax', 'n/a'))} | {_cell(r.get('ort', 'n/a'))} | {_cell(r.get('native', 'n/a'))} | {ratio} |")
        if not args.no_mlp:
            ours, theirs = mlp_table(args.calls, workdir)
            print("\n| network | mlejax | torch (1 thread) | mlejax / torch |\n|---|---:|---:|---:|")
            print(f"| MLP 28-256-128-2 | {ours[0]:.1f} µs (p99 {ours[1]:.1f}) | {theirs[0]:.1f} µs (p99 {theirs[1]:.1f}) "
                  f"| {ours[0] / theirs[0]:.2f}× |")
        # last: something in it (scikit-learn's fit, its BLAS threads) slows the XLA calls timed after it in this process
        print()
        print("| floor | p50 | p99 |\n|---|---:|---:|")
        for name, p50, p99 in floor(args.calls, workdir):
            print(f"| {name} | {p50:.1f} µs | {p99:.1f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
