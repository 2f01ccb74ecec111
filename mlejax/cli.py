"""Command-line tools: ``mle-export``, ``mle-inspect``, ``mle-benchmark`` and ``mle-runtime``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np

from . import __version__

__all__ = ["export_main", "inspect_main", "benchmark_main", "runtime_main"]

_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def export_main(argv: Sequence[str] | None = None) -> int:
    """``mle-export MODEL OUT.mle``: export a saved model (native file, or a pickle on request)."""
    p = argparse.ArgumentParser(
        prog="mle-export",
        description="Export a saved model to .mle. Native files (.json/.ubj XGBoost, .txt LightGBM, .cbm CatBoost, "
        ".keras) are read without pickle. A .joblib/.pkl file is unpickled, which runs code from the file: "
        "only export pickles you trust.",
    )
    p.add_argument("model", help="saved model file")
    p.add_argument("output", help="the .mle file to write")
    p.add_argument("--sample", help="a .npy/.csv/.parquet file of rows to check the export against the source model")
    p.add_argument("--compression", choices=["zstd"], default=None)
    p.add_argument("--level", type=int, default=3, help="zstd level (default 3)")
    p.add_argument("--exact-float64", action="store_true",
                   help="LightGBM/HistGradientBoosting: exact splits for float64 inputs (see export_model)")
    args = p.parse_args(argv)
    from .export import export_model

    source: object = args.model
    if args.model.lower().endswith(_PICKLE_SUFFIXES):
        print(
            f"warning: {args.model} is a pickle; loading it runs whatever code it contains. "
            "Continue only with files you trust. The .mle file written contains no pickle.",
            file=sys.stderr,
        )
        import joblib  # the exporter CLI is the one place a pickle may be opened, on the user's request

        source = joblib.load(args.model)
    sample = _read_table(args.sample) if args.sample else None
    report = export_model(source, args.output, sample_input=sample, compression=args.compression, compression_level=args.level,
                          exact_float64=args.exact_float64)
    print(json.dumps(dict(report), indent=2, default=str))
    return 0


def inspect_main(argv: Sequence[str] | None = None) -> int:
    """``mle-inspect model.mle [--json]``: what a file holds."""
    p = argparse.ArgumentParser(prog="mle-inspect", description="Describe a .mle file without running it.")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print the full description as JSON")
    args = p.parse_args(argv)
    from .inspect import inspect_model

    info = inspect_model(args.model)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    meta = info["metadata"]
    rows = [
        ("file", info["path"]),
        ("size", _fmt_bytes(info["file_size_bytes"])),
        ("format version", info["format_version"]),
        ("source", meta.get("source", {}).get("estimator", "?")),
        ("methods", ", ".join(sorted(meta.get("methods", {})))),
        ("inputs", "; ".join(f"{i['name']} {i['dtype']}{i['shape']}" for i in info["inputs"])),
        ("outputs", ", ".join(info["outputs"])),
        ("ops", ", ".join(f"{k}×{v}" for k, v in sorted(info["ops"].items()))),
        ("tensors", f"{len(info['tensors'])} ({_fmt_bytes(info['tensor_bytes'])})"),
    ]
    classes = meta.get("classes")
    if classes:
        rows.append(("classes", ", ".join(map(str, classes["values"][:10])) + (" ..." if len(classes["values"]) > 10 else "")))
    _print_table(rows)
    for rec in info["recommendations"]:
        print(f"- {rec}")
    return 0


def benchmark_main(argv: Sequence[str] | None = None) -> int:
    """``mle-benchmark model.mle data.npy``: latency and throughput of a model on a data file."""
    p = argparse.ArgumentParser(prog="mle-benchmark", description="Time a .mle model on rows from a .npy/.csv/.parquet file.")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--batch", type=int, default=None, help="use the first BATCH rows (default: all)")
    p.add_argument("--method", default=None, help="method to time (default: predict)")
    p.add_argument("--device", default=None, help="cpu or gpu (default: JAX's default device)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from .model import load_model

    X = _read_table(args.data)
    if args.batch:
        X = X[: args.batch]
    result = load_model(args.model, device=args.device).benchmark([X], num_runs=args.runs, method=args.method)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table([(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in result.items()])
    return 0


def runtime_main(argv: Sequence[str] | None = None) -> int:
    """``mle-runtime --version`` and ``mle-runtime demo``."""
    p = argparse.ArgumentParser(prog="mle-runtime", description="mlejax runtime tools.")
    p.add_argument("--version", action="store_true", help="print versions and exit")
    sub = p.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="train a model, export it, and compare with joblib")
    demo.add_argument("--rows", type=int, default=20_000)
    demo.add_argument("--features", type=int, default=28)
    demo.add_argument("--trees", type=int, default=100)
    demo.add_argument("--dir", default=None, help="where to write the files (default: a temporary directory)")
    args = p.parse_args(argv)
    if args.version:
        import jax

        from .format import FORMAT_VERSION

        print(f"mlejax {__version__} (.mle format {FORMAT_VERSION}, jax {jax.__version__}, devices {jax.devices()})")
        return 0
    if args.command == "demo":
        from .demo import run_demo

        run_demo(rows=args.rows, features=args.features, trees=args.trees, workdir=args.dir)
        return 0
    p.print_help()
    return 2


def _read_table(path: str) -> object:
    """Rows from a .npy, .csv (with a header line) or .parquet file (pandas/pyarrow for the latter two)."""
    lower = path.lower()
    if lower.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    if lower.endswith(".csv"):
        import pandas as pd

        return pd.read_csv(path)  # the first line is the header: column names are checked against the model
    if lower.endswith(".parquet"):
        import pandas as pd

        return pd.read_parquet(path)
    raise SystemExit(f"unsupported data file {os.path.basename(path)!r}: use .npy, .csv or .parquet")


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def _print_table(rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
