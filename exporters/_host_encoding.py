"""Export side of host encoding: converters ask for string columns to be encoded on the host.

The spec they build is :mod:`mlejax.format.host_spec`; it travels in
``ctx.options["host_encoding"]`` and ``export_model`` stores it in the file.
"""

from __future__ import annotations

from typing import Any

from ..format.errors import UnsupportedModelError
from ..format.host_spec import RAW_INPUT, SPEC_VERSION

__all__ = [
    "RAW_INPUT", "raw_columns", "record_raw_columns", "request_catboost", "request_category_column", "request_ignored_column",
    "request_rank_column", "set_feature_names",
]


def _spec(ctx: Any, n_features: int) -> dict:
    spec = ctx.options.get("host_encoding")
    if spec is None:
        spec = {"version": SPEC_VERSION, "n_features": int(n_features), "feature_names": None, "columns": []}
        ctx.options["host_encoding"] = spec
    return spec


def raw_columns(ctx: Any, x: str, n_features: int) -> tuple[list[int], int] | None:
    """``(raw input columns that value x holds, raw input width)``, or ``None`` when ``x`` is computed.

    ``n_features`` is the width of ``x`` (the raw width when ``x`` is the raw input).
    """
    if x == RAW_INPUT:
        return list(range(n_features)), n_features
    return ctx.options.get("raw_columns", {}).get(x)


def record_raw_columns(ctx: Any, x: str, columns: list[int], width: int) -> None:
    """Note that value ``x`` is a plain selection of ``columns`` of the raw input (``width`` columns)."""
    ctx.options.setdefault("raw_columns", {})[x] = ([int(c) for c in columns], int(width))


def request_category_column(
    ctx: Any, n_features: int, index: int, categories: list[str], missing: str | None, unknown: str
) -> None:
    """Ask for raw column ``index`` to be host-encoded to category codes (see the module docstring)."""
    spec = _spec(ctx, n_features)
    entry = {"index": int(index), "kind": "category", "categories": list(categories), "missing": missing, "unknown": unknown}
    for i, c in enumerate(spec["columns"]):
        if c["index"] == index:
            if c["kind"] == "ignore":
                spec["columns"][i] = entry
                return
            if c != entry:
                raise UnsupportedModelError(
                    f"raw column {index} is string-encoded by two encoders with different categories; "
                    "only one encoding per string column is supported"
                )
            return
    spec["columns"].append(entry)


def request_catboost(ctx: Any, n_features: int, section: dict) -> None:
    """Ask for CatBoost's categorical hashing and CTR columns on the host (spec: :mod:`mlejax.format.host_spec`)."""
    _spec(ctx, n_features)["catboost"] = section


def request_rank_column(ctx: Any, n_features: int, index: int, boundaries: str) -> None:
    """Ask for numeric raw column ``index`` to be replaced by its rank among the stored tensor ``boundaries``."""
    spec = _spec(ctx, n_features)
    if any(c["index"] == index for c in spec["columns"]):
        raise UnsupportedModelError(f"raw column {index} is already encoded on the host; it cannot also be ranked")
    spec["columns"].append({"index": int(index), "kind": "rank", "boundaries": boundaries})


def request_ignored_column(ctx: Any, n_features: int, index: int) -> None:
    """Mark raw column ``index`` as unused: the host gives 0 when it is not numeric."""
    spec = _spec(ctx, n_features)
    if all(c["index"] != index for c in spec["columns"]):
        spec["columns"].append({"index": int(index), "kind": "ignore"})


def set_feature_names(ctx: Any, names: Any) -> None:
    """Record the raw column names (``feature_names_in_``) once a host encoding exists."""
    spec = ctx.options.get("host_encoding")
    if spec is not None and names is not None and spec["feature_names"] is None:
        spec["feature_names"] = [str(n) for n in names]
