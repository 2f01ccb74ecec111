"""Command-line tools: ``mle-export``, ``mle-inspect``, ``mle-benchmark`` and ``mle-runtime``.

A user error (:class:`~mlejax.format.errors.MLEError`, ``OSError``,
``ValueError``) ends a command with one line on stderr and exit status 1;
``--debug`` shows the traceback instead (:func:`run_cli`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Sequence

import numpy as np

from . import __version__
from .format.errors import MLEError

__all__ = ["export_main", "inspect_main", "benchmark_main", "runtime_main", "run_cli", "add_debug_flag", "password_from_env"]

_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
#: Errors a command reports in one line: bad or missing files, bad data or options.
USER_ERRORS = (MLEError, OSError, ValueError)
#: Lists longer than this are summarised by ``mle-inspect --json``.
_JSON_LIST_LIMIT = 20


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--debug`` (show the traceback of an error) to a command's parser."""
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return parser


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None, body: Callable[[argparse.Namespace], int]) -> int:
    """Parse ``argv`` and run ``body(args)``; a user error is one line on stderr and exit status 1.

    ``parser`` must have ``--debug`` (:func:`add_debug_flag`): with it, the error propagates with its traceback.
    """
    args = parser.parse_args(argv)
    try:
        return body(args)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split()) or "(no message)"
        print(f"{parser.prog}: error: {type(exc).__name__}: {message} (--debug shows the traceback)", file=sys.stderr)
        return 1


def password_from_env(var: str | None) -> str | None:
    """The password in environment variable ``var`` (``None`` when ``var`` is); ValueError if it is not set."""
    if var is None:
        return None
    if var not in os.environ:
        raise ValueError(f"environment variable {var} (from --password-env) is not set; export it or drop --password-env")
    return os.environ[var]


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
    p.add_argument("--quantize", choices=["fp16", "bf16", "int8"], default=None,
                   help="store network weights smaller, dequantized inside the program (see export_model)")
    p.add_argument("--quantize-leaves", action="store_true", help="with --quantize: also tree leaf values and linear weights")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--encrypt-key-file", metavar="PATH", help="encrypt with the 32-byte AES-256 key in this file")
    secret.add_argument("--password-env", metavar="VAR", help="encrypt with the password in $VAR (scrypt)")
    add_debug_flag(p)
    return run_cli(p, argv, _export)


def _export(args: argparse.Namespace) -> int:
    from .export import export_model

    if args.quantize_leaves and args.quantize is None:
        raise ValueError("--quantize-leaves needs --quantize fp16, bf16 or int8")
    key = _read_key_file(args.encrypt_key_file) if args.encrypt_key_file else None
    password = password_from_env(args.password_env)
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
                          exact_float64=args.exact_float64, quantize=args.quantize, quantize_leaves=args.quantize_leaves,
                          encrypt_key=key, password=password)
    print(json.dumps(dict(report), indent=2, default=str))
    return 0


def _read_key_file(path: str) -> bytes:
    """The raw 32-byte AES-256 key in ``path`` (as written by ``SecurityUtils.generate_key()``)."""
    with open(path, "rb") as fh:
        key = fh.read(33)
    if len(key) != 32:
        raise ValueError(f"{path} should hold a raw 32-byte AES-256 key, found {len(key) if len(key) < 33 else 'more than 32'} bytes; "
                         "write one with SecurityUtils.generate_key()")
    return key


def inspect_main(argv: Sequence[str] | None = None) -> int:
    """``mle-inspect model.mle [--json]``: what a file holds."""
    p = argparse.ArgumentParser(prog="mle-inspect", description="Describe a .mle file without running it.")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print the description as JSON (lists longer than 20 summarised)")
    add_debug_flag(p)
    return run_cli(p, argv, _inspect)


def _inspect(args: argparse.Namespace) -> int:
    from .inspect import inspect_model, source_info

    info = inspect_model(args.model)
    if args.json:
        print(json.dumps(_summarise(info), indent=2, default=str))
        return 0
    meta = info["metadata"]
    rows = [
        ("file", info["path"]),
        ("size", _fmt_bytes(info["file_size_bytes"])),
        ("format version", info["format_version"]),
        ("source", source_info(meta).get("estimator", "?")),
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
    p.add_argument("--batch-sizes", default=None,
                   help="comma list, e.g. 1,64,4096: time each batch size (rows repeated as needed; mlejax.benchmark)")
    p.add_argument("--plot", default=None, metavar="PNG", help="with --batch-sizes: save latency and throughput plots (needs matplotlib)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar (shown only on a terminal)")
    p.add_argument("--json", action="store_true")
    add_debug_flag(p)
    return run_cli(p, argv, _benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    from .model import load_model

    X = _read_table(args.data)
    if args.batch:
        X = X[: args.batch]
    if args.batch_sizes:
        return _benchmark_sizes(args, load_model(args.model, device=args.device), X)
    if args.plot:
        raise ValueError("--plot needs --batch-sizes")
    result = load_model(args.model, device=args.device).benchmark([X], num_runs=args.runs, method=args.method)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table([(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in result.items()])
    return 0


def _benchmark_sizes(args: argparse.Namespace, model: Any, X: Any) -> int:
    """``mle-benchmark --batch-sizes``: one row per batch size, and the plot with ``--plot``."""
    from .bench import benchmark

    try:
        sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--batch-sizes takes a comma list of row counts, not {args.batch_sizes!r}") from None
    report = benchmark(model, X, batch_sizes=sizes, method=args.method, num_runs=args.runs, progress=args.progress)
    print(json.dumps(report.rows, indent=2) if args.json else report)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        report.plot().savefig(args.plot, dpi=120)
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
    add_debug_flag(p)
    return run_cli(p, argv, lambda args: _runtime(p, args))


def _runtime(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
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
    raise ValueError(f"unsupported data file {os.path.basename(path)!r}: use .npy, .csv or .parquet")


def _summarise(value: Any) -> Any:
    """``value`` with each list of plain values longer than ``_JSON_LIST_LIMIT`` replaced by ``{"length", "first", "last"}``.

    Lists of records (tensors, sections) are kept whole.
    """
    if isinstance(value, dict):
        return {k: _summarise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) > _JSON_LIST_LIMIT and not any(isinstance(v, dict) for v in value):
            return {"length": len(value), "first": _summarise(list(value[:5])), "last": _summarise(list(value[-2:]))}
        return [_summarise(v) for v in value]
    return value


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
