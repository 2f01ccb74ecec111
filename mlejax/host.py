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

__all__ = ["HostEncoder", "InputChecks"]

_UNKNOWN_CODE = -1.0


_TEXT, _NONE, _NAN, _OTHER = range(4)


def _value_kind(v: Any) -> int:
    """A string, ``None``, a NaN (float NaN or pandas' ``NA``, which scikit-learn reads as NaN), or anything else."""
    if isinstance(v, str):
        return _TEXT
    if v is None:
        return _NONE
    if (isinstance(v, (float, np.floating)) and math.isnan(v)) or type(v).__name__ == "NAType":
        return _NAN
    return _OTHER


_VALUE_KIND = np.frompyfunc(_value_kind, 1, 1)


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
        """Codes of one column of values: strings, or objects (a number there is an unknown category, as in scikit-learn).

        A column of numbers (numeric dtype) raises :class:`InputError`, where scikit-learn raises ``TypeError``.
        """
        values = np.asarray(values)
        if values.dtype.kind in "biufc":
            raise InputError(
                f"column {name!r} holds numbers ({values.dtype}), but the model was fitted on string categories "
                f"there (e.g. {self.categories[:3]}); pass the column as strings (or objects), e.g. X[{name!r}].astype(str)"
            )
        values = values.astype(object)
        kind = _VALUE_KIND(values).astype(np.int8) if values.size else np.zeros(values.shape, np.int8)
        is_none, is_nan, is_text = kind == _NONE, kind == _NAN, kind == _TEXT
        text = np.where(is_text, values, "").astype(str)
        if self._sorted.size:
            pos = np.minimum(np.searchsorted(self._sorted, text), self._sorted.size - 1)
            known = (self._sorted[pos] == text) & is_text
            codes = np.where(known, self._codes[pos], np.float32(_UNKNOWN_CODE)).astype(np.float32)
        else:
            known = np.zeros(values.shape, dtype=bool)
            codes = np.full(values.shape, _UNKNOWN_CODE, np.float32)
        as_category = {"nan": is_nan, "none": is_none}.get(self.missing, np.zeros_like(is_text))
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




class InputChecks:
    """The checks of raw input that the source model makes and an XLA program cannot.

    NaN, infinity, columns selected by name, unknown numeric categories.

    Built from metadata ``"input_checks"`` (written by ``mlejax.exporters._input_checks``,
    which documents it). Files without it are not checked.
    """

    def __init__(self, spec: Any, n_features: int, names: list[str] | None, source: str) -> None:
        if not isinstance(spec, dict) or set(spec) != {"nan", "inf", "by_name", "categories"} or not isinstance(spec["by_name"], bool):
            raise MLEFormatError("metadata.input_checks: expected {nan: [columns], inf: [columns], by_name: bool, categories: [...]}")
        for key in ("nan", "inf"):
            cols = _list(spec[key], key)
            if not all(type(c) is int and 0 <= c < n_features for c in cols) or len(set(cols)) != len(cols):
                raise MLEFormatError(f"metadata.input_checks.{key}: expected distinct column indices below {n_features}")
        self.nan, self.inf, self.by_name = set(spec["nan"]), set(spec["inf"]), spec["by_name"]
        self._categories = [_known_values(entry, n_features) for entry in _list(spec["categories"], "categories")]
        checked = sorted(self.nan | self.inf)
        #: columns to scan (``None``: every raw column)
        self._columns: list[int] | None = None if len(checked) == n_features else checked
        self._n = n_features
        self._names = names
        self._source = source

    @classmethod
    def from_metadata(cls, meta: dict, n_features: int | None, names: Any, source: str) -> "InputChecks | None":
        """The checks stored in ``meta`` for raw input of ``n_features`` columns, or ``None`` (older files, networks)."""
        spec = meta.get("input_checks")
        if spec is None or n_features is None:
            return None
        return cls(spec, n_features, None if names is None else [str(n) for n in names], source)

    def check_columns(self, x: Any) -> None:
        """Refuse input other than a DataFrame where the model selects columns by name (as scikit-learn does)."""
        if self.by_name and not (hasattr(x, "columns") and hasattr(x, "iloc")):
            raise InputError(
                "Specifying the columns using strings is only supported for dataframes. "
                f"{self._source} selects its input columns by name: pass a pandas DataFrame with the columns "
                f"{(self._names or [])[:10]}{' ...' if len(self._names or []) > 10 else ''}"
            )

    def check_values(self, X: np.ndarray, finite: bool = True) -> None:
        """Raise :class:`InputError` where the source model raises on values of ``X`` (the graph input, raw columns first).

        Unknown numeric categories, and with ``finite`` NaN or infinity (:meth:`check_finite`).
        """
        for column, values, nan_known in self._categories:
            col = X[:, column]
            unknown = ~np.isin(col, values) & ~(nan_known & np.isnan(col))
            if unknown.any():
                found = sorted(set(col[unknown].tolist()), key=str)
                raise InputError(
                    f"Found unknown categories {found[:10]} in column {self._label(column)} during transform; the model knows "
                    f"{values.tolist()[:10]}{' ...' if values.size > 10 else ''}{' and NaN' if nan_known else ''} there "
                    "(fitted with handle_unknown='error')"
                )
        if finite:
            self.check_finite(X)

    def check_finite(self, X: np.ndarray) -> None:
        """Raise :class:`InputError` naming the columns with NaN or infinity where the source model refuses them.

        One pass (a sum) when every value is finite.
        """
        if self._columns == [] or X.dtype.kind != "f":
            return
        part = X[:, : self._n] if self._columns is None else X[:, self._columns]
        if part.size <= 4096:  # a few rows: one elementwise pass is cheaper than a sum under np.errstate
            if np.isfinite(part).all():
                return
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                if np.isfinite(part.sum()):
                    return
        columns = range(self._n) if self._columns is None else self._columns
        nan = [(j, n) for j, n in zip(columns, np.isnan(part).sum(axis=0).tolist()) if n and j in self.nan]
        inf = [(j, n) for j, n in zip(columns, np.isinf(part).sum(axis=0).tolist()) if n and j in self.inf]
        if nan:
            raise InputError(
                f"Input X contains NaN: {self._count(nan)}. {self._source} does not accept missing values encoded as NaN there; "
                "impute them first (e.g. SimpleImputer in the pipeline), or pass check_finite=False to skip this check"
            )
        if inf:
            raise InputError(
                f"Input X contains infinity or a value too large for dtype('{X.dtype}'): {self._count(inf)}. "
                f"{self._source} does not accept them there; replace them with finite values, or pass check_finite=False to skip this check"
            )

    def _label(self, j: int) -> str:
        return repr(self._names[j]) if self._names else f"X[:, {j}]"

    def _count(self, found: list[tuple[int, int]]) -> str:
        shown = ", ".join(f"{self._label(j)} ({n} value{'s' if n > 1 else ''})" for j, n in found[:10])
        return f"{len(found)} column{'s' if len(found) > 1 else ''}: {shown}{' ...' if len(found) > 10 else ''}"


def _list(value: Any, key: str) -> list:
    if not isinstance(value, list):
        raise MLEFormatError(f"metadata.input_checks.{key}: expected a list, found {type(value).__name__}")
    return value


def _known_values(entry: Any, n_features: int) -> tuple[int, np.ndarray, bool]:
    """``(column, its known values as float32, whether NaN is known)`` from a ``[column, [values]]`` entry."""
    ok = isinstance(entry, list) and len(entry) == 2 and type(entry[0]) is int and 0 <= entry[0] < n_features and isinstance(entry[1], list)
    if not ok or not all(type(v) in (int, float) for v in entry[1]):
        raise MLEFormatError(f"metadata.input_checks.categories: expected [column below {n_features}, [numbers]], found {str(entry)[:80]}")
    values = np.asarray(entry[1], np.float64)
    return entry[0], values[~np.isnan(values)].astype(np.float32), bool(np.isnan(values).any())
