"""Host-side encoding of string (and other non-numeric) input columns.

XLA programs only take numbers, so string categories are turned into numeric
codes on the host, in numpy, *before* the compiled graph runs. This is the
only step of a model that runs outside XLA; everything after it (the encoders'
one-hot / ordinal tables, imputers, the estimator) is in the graph.

**Which step runs on the host.** For every raw input column that a fitted
``OneHotEncoder`` / ``OrdinalEncoder`` (directly, first in a ``Pipeline``, or
inside a ``ColumnTransformer``) learned string categories for, the host maps
each value to the index of its category (a vectorised ``searchsorted`` on the
sorted category strings stored in the file); the graph then sees a numeric
column of codes and one-hot / ordinal encodes it with its own tables. Columns
a ``ColumnTransformer`` drops are replaced by 0 when they are not numeric.
Numeric columns pass through unchanged (as float32).

**The spec** (plain data, stored in the file's metadata under
``"host_encoding"``; converters put it in ``ctx.options["host_encoding"]``)::

    {"version": 1,
     "n_features": 5,                      # raw input width == graph input width
     "feature_names": ["city", ...] | None,  # raw column names (DataFrames are matched by name)
     "columns": [                          # only the columns that need the host
        {"index": 0, "kind": "category",
         "categories": ["Paris", "Rome"],  # non-missing categories, in categories_ order
         "missing": "nan" | "none" | None, # which missing marker is itself a category
         "unknown": "error" | "code"},
        {"index": 3, "kind": "ignore"}]}   # unused column: numbers if it has them, else 0

Codes of a ``category`` column: the position of the value in
``categories``; the missing marker named by ``missing`` (``None`` or a float
NaN) gives NaN, which the graph treats as the NaN category (scikit-learn keeps
a missing category last in ``categories_``); anything else is unknown and
gives -1 (no category has that code), or raises :class:`InputError` when
``unknown == "error"`` (as scikit-learn's ``handle_unknown="error"`` does).
Values are compared as strings (``str(value)``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .format.errors import InputError, MLEFormatError, UnsupportedModelError

__all__ = [
    "HostEncoder",
    "RAW_INPUT",
    "raw_columns",
    "record_raw_columns",
    "request_category_column",
    "request_ignored_column",
    "set_feature_names",
]

#: Name of the graph input that carries the raw columns (set by ``export_model``).
RAW_INPUT = "X"
_SPEC_VERSION = 1
_UNKNOWN_CODE = -1.0


def _nan_like(v: Any) -> bool:
    """A float NaN (Python or numpy) or pandas' ``NA`` (scikit-learn reads both as NaN)."""
    return (isinstance(v, (float, np.floating)) and math.isnan(v)) or type(v).__name__ == "NAType"


_NAN_LIKE = np.frompyfunc(_nan_like, 1, 1)


class _Column:
    """One host-encoded column, validated."""

    def __init__(self, index: int, kind: str, categories: list[str], missing: str | None, unknown: str) -> None:
        self.index = index
        self.kind = kind
        self.unknown = unknown
        self.missing = missing
        self.categories = categories
        order = np.argsort(np.asarray(categories, dtype=str), kind="stable")
        self._sorted = np.asarray(categories, dtype=str)[order]
        self._codes = order.astype(np.float32)

    def encode(self, values: np.ndarray, name: str) -> np.ndarray:
        """Codes of one column of values (any dtype)."""
        values = np.asarray(values, dtype=object)
        is_none = np.equal(values, None)
        is_nan = _NAN_LIKE(values).astype(bool) if values.size else is_none
        missing = is_none | is_nan
        text = np.where(missing, "", values).astype(str)
        if self._sorted.size:
            pos = np.minimum(np.searchsorted(self._sorted, text), self._sorted.size - 1)
            known = (self._sorted[pos] == text) & ~missing
            codes = np.where(known, self._codes[pos], np.float32(_UNKNOWN_CODE)).astype(np.float32)
        else:
            known = np.zeros(values.shape, dtype=bool)
            codes = np.full(values.shape, _UNKNOWN_CODE, np.float32)
        as_category = {"nan": is_nan, "none": is_none}.get(self.missing, np.zeros_like(missing))
        codes[as_category] = np.nan
        if self.unknown == "error":
            bad = ~known & ~as_category
            if bad.any():
                found = sorted({str(v) for v in values[bad]})
                raise InputError(f"Found unknown categories {found[:10]} in column {name!r} during transform")
        return codes


class HostEncoder:
    """Applies a stored host encoding spec to model inputs (numpy only; no pandas import)."""

    def __init__(self, spec: dict) -> None:
        self.n_features: int = spec["n_features"]
        self.feature_names: list[str] | None = spec["feature_names"]
        self.columns = {
            c["index"]: _Column(c["index"], c["kind"], c.get("categories", []), c.get("missing"), c.get("unknown", "code"))
            for c in spec["columns"]
        }
        self._has_categories = any(c.kind == "category" for c in self.columns.values())

    @classmethod
    def from_metadata(cls, meta: dict) -> "HostEncoder | None":
        """The encoder stored in file metadata, or ``None`` when the model needs none.

        Raises :class:`MLEFormatError` when the spec is malformed.
        """
        spec = meta.get("host_encoding")
        if spec is None:
            return None
        _validate(spec)
        return cls(spec)

    def apply(self, x: Any) -> Any:
        """Numeric float32 array [n, n_features] for raw input ``x`` (DataFrame, numpy, lists).

        A numeric numpy array with no string-category column is returned as is.
        """
        if hasattr(x, "columns") and hasattr(x, "iloc"):
            return self._apply_frame(x)
        arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
        if arr.dtype.kind in "biuf" and not self._has_categories:
            return arr
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise InputError(f"expected a 2D input with {self.n_features} columns, got shape {list(arr.shape)}")
        return self._encode_columns([arr[:, j] for j in range(arr.shape[1])], arr.shape[0])

    def _apply_frame(self, frame: Any) -> np.ndarray:
        names = [str(c) for c in frame.columns]
        if self.feature_names is not None and names != self.feature_names:
            missing = [n for n in self.feature_names if n not in names]
            unexpected = [n for n in names if n not in self.feature_names]
            if missing or unexpected:
                raise InputError(
                    f"the DataFrame's columns do not match the model's: unseen at fit time {unexpected[:5]}, missing {missing[:5]}"
                )
            positions = [names.index(n) for n in self.feature_names]
        else:
            positions = list(range(len(names)))
        if len(positions) != self.n_features:
            raise InputError(f"X has {len(positions)} features, but this model is expecting {self.n_features} features as input")
        cols = [frame.iloc[:, p].to_numpy() for p in positions]
        return self._encode_columns(cols, len(frame))

    def _encode_columns(self, cols: list[np.ndarray], n_rows: int) -> np.ndarray:
        out = np.empty((n_rows, self.n_features), np.float32)
        for j, col in enumerate(cols):
            name = self.feature_names[j] if self.feature_names else str(j)
            spec = self.columns.get(j)
            if spec is not None and spec.kind == "category":
                out[:, j] = spec.encode(col, name)
                continue
            try:
                out[:, j] = np.asarray(col, dtype=np.float32)
            except (TypeError, ValueError):
                if spec is None:
                    raise InputError(f"column {name!r} is not numeric and the model has no encoding for it") from None
                out[:, j] = 0.0
        return out


def _validate(spec: Any) -> None:
    """Check a spec's structure; :class:`MLEFormatError` names the bad field."""

    def need(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise MLEFormatError(f"metadata.host_encoding{where}: expected {what}")

    need(isinstance(spec, dict) and spec.get("version") == _SPEC_VERSION, "", f"a map with version {_SPEC_VERSION}")
    n = spec.get("n_features")
    need(isinstance(n, int) and not isinstance(n, bool) and 0 < n < 2**31, ".n_features", "a positive int")
    names = spec.get("feature_names")
    need(names is None or (isinstance(names, list) and len(names) == n and all(isinstance(s, str) for s in names)),
         ".feature_names", f"null or a list of {n} strings")
    cols = spec.get("columns")
    need(isinstance(cols, list), ".columns", "a list")
    seen = set()
    for i, c in enumerate(cols):
        where = f".columns[{i}]"
        need(isinstance(c, dict) and c.get("kind") in ("category", "ignore"), where, "a map with kind 'category' or 'ignore'")
        idx = c.get("index")
        need(isinstance(idx, int) and not isinstance(idx, bool) and 0 <= idx < n and idx not in seen, where + ".index", f"a unique column index below {n}")
        seen.add(idx)
        if c["kind"] == "category":
            cats = c.get("categories")
            need(isinstance(cats, list) and all(isinstance(s, str) for s in cats), where + ".categories", "a list of strings")
            need(len(set(cats)) == len(cats), where + ".categories", "distinct strings")
            need(c.get("missing") in (None, "nan", "none"), where + ".missing", "null, 'nan' or 'none'")
            need(c.get("unknown") in ("error", "code"), where + ".unknown", "'error' or 'code'")


# --- export side: converters request host encoding through the export context ------------

def _spec(ctx: Any, n_features: int) -> dict:
    spec = ctx.options.get("host_encoding")
    if spec is None:
        spec = {"version": _SPEC_VERSION, "n_features": int(n_features), "feature_names": None, "columns": []}
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
