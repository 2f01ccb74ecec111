"""Tree lowering strategies side by side: throughput (or latency) per strategy × model × batch.

For each model of ``benchmarks/trees.py`` it exports a ``.mle`` once, then
loads it once per strategy (``load_model(tree_strategy=...)``) and times
``predict_proba`` (median of ``--repeats`` calls after a warm-up) at each
batch size. Strategies a forest cannot run are skipped (they would fall back).
The ``auto`` row shows what the heuristic picked; ``*`` marks the fastest
strategy in each column, so the table shows whether the heuristic chose well.
First-call time (lowering + XLA compile, persistent cache off) is reported per
strategy at the largest batch.

Usage:
    python benchmarks/tree_strategies.py --models xgb,cat --rows 1,1000,100000
    python benchmarks/tree_strategies.py --quick            # small models, a minute or two

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("MLEJAX_COMPILATION_CACHE", "0")  # first-call times measure compilation

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from trees import MODELS, make_data  # noqa: E402


def _time(call, x: np.ndarray, repeats: int) -> float:
    call(x)
    ts = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(x)
        ts.append(time.perf_counter() - start)
    return float(np.median(ts))


def bench_model(key: str, args: argparse.Namespace, workdir: str) -> list[str]:
    """Markdown lines for one model."""
    import mlejax
    from mlejax.lowering.program import DEFAULT_MAX_TILE, bucket_for
    from mlejax.lowering.tree_strategies import STRATEGIES

    spec = MODELS[key]
    rows = [int(r) for r in args.rows.split(",")]
    X_train, y_train, X = make_data(spec.n_classes, args.n_train, max(rows), 0.0)
    model = spec.build(args.quick, 2)
    model.fit(X_train, y_train)
    path = os.path.join(workdir, f"{key}.mle")
    mlejax.export_model(model, path)
    results: dict[str, dict] = {}
    for strategy in ("auto", *STRATEGIES):
        m = mlejax.load_model(path, tree_strategy=strategy)
        start = time.perf_counter()
        m.predict_proba(X[: max(rows)])
        first = time.perf_counter() - start
        if strategy != "auto" and strategy not in m.tree_strategy:
            continue  # not feasible for this forest: it fell back
        cells, picked = {}, {}
        for n in rows:
            cells[n] = _time(m.predict_proba, X[:n], args.repeats if n > 1 else args.repeats * 20)
            bucket = bucket_for(n, "pow2", DEFAULT_MAX_TILE)  # the program that ran n rows
            picked[n] = ",".join(sorted({v for k, v in m.program.choices.items() if k.endswith(f"@{bucket}")}))
        results[strategy] = {"first": first, "cells": cells, "picked": picked}
    best = {n: min(r["cells"][n] for s, r in results.items() if s != "auto") for n in rows}
    lines = [f"\n### {spec.describe(model)}\n",
             "| strategy | " + " | ".join(f"batch {n:,}" for n in rows) + " | first call (batch %s) |" % f"{max(rows):,}",
             "|---|" + "---|" * (len(rows) + 1)]
    for strategy, r in results.items():
        cells = []
        for n in rows:
            t = r["cells"][n]
            text = f"{t * 1e6:.0f} µs" if n == 1 else f"{n / t / 1e6:.3f} M rows/s"
            mark = "*" if strategy != "auto" and t == best[n] else ""
            cells.append(text + mark + (f" ({r['picked'][n]})" if strategy == "auto" else ""))
        name = "auto (pick)" if strategy == "auto" else strategy
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['first']:.2f} s |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="rf,et,hgb,xgb,xgb10,lgbm,cat")
    p.add_argument("--rows", default="1,1000,100000", help="comma list of batch sizes")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--n-train", type=int, default=20_000)
    p.add_argument("--quick", action="store_true", help="the small models of trees.py --quick")
    args = p.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# Tree strategies ({os.cpu_count()} CPUs, load average {load:.1f}; medians of {args.repeats} calls)")
    print("Throughput in M rows/s (batch 1: p50 latency of predict_proba); * = fastest strategy in the column.")
    with tempfile.TemporaryDirectory() as workdir:
        for key in args.models.split(","):
            for line in bench_model(key, args, workdir):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
