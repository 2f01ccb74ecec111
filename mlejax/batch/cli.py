"""``mle-score MODEL.mle INPUT -o OUTPUT``: batch scoring from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from ..format.errors import MLEError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Score INPUT with MODEL into OUTPUT; a progress bar on a terminal, then one summary line (or ``--json``)."""
    p = argparse.ArgumentParser(
        prog="mle-score",
        description="Score a Parquet file/directory/glob, CSV, Arrow/Feather or .npy file with a .mle model; "
        "write the predictions (and --keep columns) to Parquet, CSV, Arrow or .npy, in input order.",
    )
    p.add_argument("model", help="the .mle file")
    p.add_argument("input", help="rows to score: .parquet file, directory or glob; .csv; .arrow/.feather; .npy")
    p.add_argument("-o", "--output", required=True, help="where to write: .parquet, .csv, .arrow/.feather or .npy")
    p.add_argument("--method", help="predict_proba (default where the model has it), predict, decision_function, transform, ...")
    p.add_argument("--columns", help="comma-separated input columns, in the model's order (default: its feature names)")
    p.add_argument("--keep", default="", help="comma-separated columns to copy to the output (row keys)")
    p.add_argument("--device", help="cpu, gpu, or comma-separated device ids of the default platform (default: every device)")
    p.add_argument("--batch-rows", type=int, help="rows per batch, all devices together (default: from device memory)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when stderr is not a terminal)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary line")
    args = p.parse_args(argv)
    from .pipeline import score

    try:
        report = score(
            args.model, args.input, args.output, method=args.method, columns=_names(args.columns), keep=_names(args.keep) or (),
            batch_rows=args.batch_rows, device=_device(args.device), progress=not args.no_progress, overwrite=args.overwrite,
        )
    except (MLEError, ValueError, OSError) as exc:
        print(f"mle-score: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mle-score: interrupted; {args.output} was not written", file=sys.stderr)
        return 130
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0


def _names(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _device(text: str | None) -> object:
    """``cpu``/``gpu`` as is; ``0,1`` → those devices (by id) of the default platform."""
    if text is None or not text.replace(",", "").replace(" ", "").isdigit():
        return text
    import jax

    ids = [int(i) for i in text.split(",") if i.strip()]
    by_id = {d.id: d for d in jax.devices()}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise SystemExit(f"mle-score: error: no device with id {missing}; present: {sorted(by_id)}")
    return [by_id[i] for i in ids]


if __name__ == "__main__":
    sys.exit(main())
