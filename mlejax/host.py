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

LightGBM and HistGradientBoosting models exported with ``exact_float64=True`` replace each numeric
column by its rank among the model's float64 thresholds for that feature, so
float64 inputs are decided exactly as LightGBM decides them.

CatBoost models with categorical features hash their categorical columns on
the host and append their CTR (target statistic) columns after the raw ones
(:mod:`mlejax.host_catboost`); the graph input is then wider than the raw input.

The spec itself is defined in :mod:`mlejax.format.host_spec`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .format.errors import InputError, MLEFormatError
from .format.host_spec import validate_host_spec
from .host_catboost import CatBoostFeatures

__all__ = ["HostEncoder"]

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


class _Rank:
    """A numeric column replaced by its rank among sorted float64 boundaries (``host_spec``, kind ``rank``)."""

    kind = "rank"

    def __init__(self, index: int, boundaries: Any) -> None:
        if boundaries is None:
            raise MLEFormatError(f"metadata.host_encoding: the boundaries of rank column {index} are not stored")
        b = np.asarray(boundaries)
        if b.dtype != np.float64 or b.ndim != 1 or np.isnan(b).any() or np.any(b[1:] <= b[:-1]):
            raise MLEFormatError(f"metadata.host_encoding: the boundaries of rank column {index} are not sorted float64 values")
        self.index = index
        self.boundaries = b

    def encode(self, values: np.ndarray, name: str) -> np.ndarray:
        try:
            x = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"column {name!r} is not numeric") from None
        rank = np.searchsorted(self.boundaries, x, side="left").astype(np.float32)
        return np.where(np.isnan(x), np.float32(np.nan), rank)


class HostEncoder:
    """Applies a stored host encoding spec to model inputs (numpy only; no pandas import)."""

    def __init__(self, spec: dict, tensors: Mapping[str, np.ndarray] | None = None) -> None:
        self.n_features: int = spec["n_features"]
        self.feature_names: list[str] | None = spec["feature_names"]
        tensors = tensors or {}
        self.columns = {
            c["index"]: _Rank(c["index"], tensors.get(c["boundaries"])) if c["kind"] == "rank"
            else _Column(c["index"], c["kind"], c.get("categories", []), c.get("missing"), c.get("unknown", "code"))
            for c in spec["columns"]
        }
        self.catboost = CatBoostFeatures(spec["catboost"], tensors) if "catboost" in spec else None
        self._encodes_numbers = self.catboost is not None or any(c.kind != "ignore" for c in self.columns.values())

    @property
    def width(self) -> int:
        """Columns of the encoded array (the graph input): the raw columns, then any derived ones."""
        return self.n_features + (self.catboost.width if self.catboost is not None else 0)

    @classmethod
    def from_metadata(cls, meta: dict, tensors: Mapping[str, np.ndarray] | None = None) -> "HostEncoder | None":
        """The encoder stored in file metadata (its tables in ``tensors``), or ``None`` when the model needs none.

        Raises :class:`~mlejax.format.errors.MLEFormatError` when the spec is malformed.
        """
        spec = meta.get("host_encoding")
        if spec is None:
            return None
        validate_host_spec(spec)
        return cls(spec, tensors)

    def apply(self, x: Any) -> Any:
        """Numeric float32 array [n, width] for raw input ``x`` (DataFrame, numpy, lists).

        A numeric numpy array with no string-category column is returned as is.
        """
        if hasattr(x, "columns") and hasattr(x, "iloc"):
            return self._apply_frame(x)
        arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
        if arr.dtype.kind in "biuf" and not self._encodes_numbers:
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
        names = self.feature_names or [str(j) for j in range(self.n_features)]
        hashed = set(self.catboost.cat_columns) if self.catboost is not None else set()
        for j, col in enumerate(cols):
            name = names[j]
            if j in hashed:
                continue
            spec = self.columns.get(j)
            if spec is not None and spec.kind != "ignore":
                out[:, j] = spec.encode(col, name)
                continue
            try:
                out[:, j] = np.asarray(col, dtype=np.float32)
            except (TypeError, ValueError):
                if spec is None:
                    raise InputError(f"column {name!r} is not numeric and the model has no encoding for it") from None
                out[:, j] = 0.0
        if self.catboost is None:
            return out
        derived = self.catboost.encode([cols[c] for c in self.catboost.cat_columns], out, names)
        return np.concatenate([out, derived], axis=1) if derived.shape[1] else out


