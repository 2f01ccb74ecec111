"""CatBoost categorical features on the host: value hashes, CTR values and one-hot indicators.

CatBoost never sees a categorical value itself, only the low 32 bits of the
CityHash64 of its string form (:mod:`mlejax.cityhash`); integers and booleans
are written in decimal. From those hashes this step computes, in numpy, the
columns appended after the raw ones (the raw categorical columns become 0):

- for each CTR (target statistic) feature, its float32 value; the graph
  compares it with the CTR's borders (``>``);
- then, for each one-hot value of each one-hot feature (in spec order), an
  indicator: 1.0 iff the row's hash equals the value; the graph tests ``> 0.5``.

A CTR of a *projection* (categorical features, float splits ``x > border``,
one-hot tests ``hash == value``) combines, in that order, the hashes of its
parts into a 64-bit key: ``key = M * (key + M * part)`` modulo 2**64 with
``M = 0x4906ba494954cb65``, starting from 0; a categorical part is its 32-bit
hash sign-extended, a split part is 0 or 1. The key is looked up in the CTR's
table of learned counts; with ``(good, total)`` taken from the counts by CTR
type, the value is ``((good + prior_num) / (total + prior_denom) + shift) * scale``
in float32:

- ``Borders``: with 2 target classes ``good = c1``, ``total = c0 + c1``; with
  more, ``good`` sums the classes above ``target_border_idx`` and ``total`` all;
- ``Buckets``: ``good = c[target_border_idx]``, ``total`` = all classes;
- ``Counter`` / ``FeatureFreq``: ``good = c0``, ``total`` = the table's
  ``counter_denominator``;
- ``BinarizedTargetMeanValue``: ``good = c0`` (the summed binarized target),
  ``total = c1`` (the count).

A key not in the table counts as ``good = 0`` and ``total = 0`` (``Counter``:
``total = counter_denominator``). The spec is validated by
:func:`mlejax.format.host_spec.validate_host_spec`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .cityhash import cityhash64
from .format.errors import InputError, MLEFormatError

__all__ = ["CatBoostFeatures", "category_hashes"]

_MAGIC = np.uint64(0x4906BA494954CB65)
_BITS = np.arange(2, dtype=np.uint64)
_F32 = np.float32


def _text(v: Any) -> str:
    """CatBoost's string form of one categorical value (integral numbers and booleans in decimal).

    An integral float is read as its integer (a numeric array cannot hold ints beside floats); CatBoost
    itself refuses floats. Other floats raise, as in CatBoost.
    """
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, int, np.bool_, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if v != v:
            raise ValueError("NaN value")
        if not float(v).is_integer():
            raise ValueError(f"non-integer number ({v})")
        return str(int(v))
    if v is None or type(v).__name__ == "NAType":
        raise ValueError("missing value")
    return str(v)


def category_hashes(values: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """CatBoost's uint32 hashes of a column's distinct values, and each row's index into them.

    Values are strings, integers, booleans or integral floats; a missing value is an :class:`InputError`.
    """
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        uniq, inverse = np.unique(values, return_inverse=True)  # NaN sorts last and stays distinct
        items, inverse = uniq.tolist(), inverse.reshape(values.shape)
    else:
        flat = values.ravel().tolist()
        index = {v: i for i, v in enumerate(dict.fromkeys(flat))}
        items = list(index)
        inverse = np.fromiter(map(index.__getitem__, flat), np.intp, len(flat)).reshape(values.shape)
    try:
        texts = [_text(v) for v in items]
    except ValueError as exc:
        raise InputError(
            f"categorical column {name!r} has a {exc}; CatBoost categorical values must be strings or integers"
        ) from None
    return np.fromiter((cityhash64(t.encode("utf-8")) & 0xFFFFFFFF for t in texts), np.uint32, len(texts)), inverse


def _combine(key: np.ndarray, part: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _MAGIC * (key + _MAGIC * part)


def _rows(table_hashes: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Row of each key in the table, or the table's size where the key is not stored."""
    if table_hashes.size == 0:
        return np.zeros(key.shape, np.intp)
    pos = np.minimum(np.searchsorted(table_hashes, key), table_hashes.size - 1)
    return np.where(table_hashes[pos] == key, pos, table_hashes.size)


def _calc(good: np.ndarray, total: np.ndarray, ctr: dict) -> np.ndarray:
    value = (good.astype(_F32) + _F32(ctr["prior_num"])) / (total.astype(_F32) + _F32(ctr["prior_denom"]))
    return (value + _F32(ctr["shift"])) * _F32(ctr["scale"])


class CatBoostFeatures:
    """Applies a stored ``host_encoding["catboost"]`` spec (numpy only)."""

    def __init__(self, spec: dict, tensors: Mapping[str, np.ndarray]) -> None:
        self.cat_columns: list[int] = list(spec["cat_columns"])
        self.one_hot = {int(c): np.asarray(v, np.uint32) for c, v in spec["one_hot"]}
        self.ctrs: list[dict] = list(spec["ctrs"])
        self.tables = []
        for t in spec["tables"]:
            hashes, counts = (tensors.get(t[k]) for k in ("hashes", "counts"))
            if hashes is None or counts is None:
                raise MLEFormatError(f"metadata.host_encoding.catboost: table tensor {t['hashes']!r} or {t['counts']!r} is missing")
            if (hashes.dtype != np.uint64 or hashes.ndim != 1 or counts.dtype != np.int32 or counts.ndim != 2
                    or counts.shape[0] != hashes.shape[0] or counts.shape[1] < 1 or np.any(hashes[1:] <= hashes[:-1])):
                raise MLEFormatError(f"metadata.host_encoding.catboost: table {t['hashes']!r} is malformed")
            self.tables.append((t, hashes, counts))
        # Each table's CTR values for every stored key, plus a last row for a key not in the table.
        self._columns: list[list[int]] = [[] for _ in self.tables]
        for k, ctr in enumerate(self.ctrs):
            self._columns[ctr["table"]].append(k)
        self._values = [self._table_values(i) for i in range(len(self.tables))]

    def _table_values(self, i: int) -> np.ndarray:
        t, _, counts = self.tables[i]
        rows = np.concatenate([counts, np.zeros((1, counts.shape[1]), np.int32)]).astype(np.int64)
        values = np.empty((rows.shape[0], len(self._columns[i])), _F32)
        for j, k in enumerate(self._columns[i]):
            ctr = self.ctrs[k]
            kind, border = ctr["type"], ctr["target_border_idx"]
            if (kind in ("Borders", "Buckets") and border >= rows.shape[1]) or (
                    kind == "BinarizedTargetMeanValue" and rows.shape[1] != 2):
                raise MLEFormatError(f"metadata.host_encoding.catboost: a {kind} CTR does not fit its table's {rows.shape[1]} counts")
            if kind == "BinarizedTargetMeanValue":
                good, total = rows[:, 0], rows[:, 1]
            elif kind in ("Counter", "FeatureFreq"):
                good, total = rows[:, 0], np.full(rows.shape[0], t["counter_denominator"])
            else:
                if kind == "Buckets":
                    good = rows[:, border]
                elif rows.shape[1] == 2:
                    good = rows[:, 1]
                else:
                    good = rows[:, border + 1:].sum(axis=1)
                total = rows.sum(axis=1)
            values[:, j] = _calc(good, total, ctr)
        return values

    @property
    def width(self) -> int:
        """Number of columns appended after the raw columns (CTRs, then one-hot indicators)."""
        return len(self.ctrs) + sum(v.size for v in self.one_hot.values())

    def encode(self, cat_values: list[np.ndarray], out: np.ndarray, names: list[str]) -> np.ndarray:
        """Zero ``out``'s categorical columns; return the appended columns [n, width].

        ``cat_values[i]`` is the raw column of categorical feature ``i``;
        ``out`` holds the raw float32 columns (float features are read from it).
        """
        cats = [category_hashes(v, names[c]) for v, c in zip(cat_values, self.cat_columns)]
        out[:, self.cat_columns] = 0.0
        derived = np.empty((self.width, out.shape[0]), _F32)  # column-major: each step fills whole rows
        for i, (t, table_hashes, _) in enumerate(self.tables):
            derived[self._columns[i]] = self._values[i].T[:, _table_rows(t, table_hashes, cats, out)]
        k = len(self.ctrs)
        for i, values in self.one_hot.items():
            unique, inverse = cats[i]
            derived[k : k + values.size] = (values[:, None] == unique[None, :]).astype(_F32)[:, inverse]
            k += values.size
        return derived.T


def _table_rows(table: dict, table_hashes: np.ndarray, cats: list[tuple[np.ndarray, np.ndarray]], out: np.ndarray) -> np.ndarray:
    """Each row's row in the table (its size where the row's key is not stored).

    Every part of a projection takes few values (a column's distinct
    categories, or 0/1), so when their combinations are fewer than the rows
    the keys are computed and looked up once per combination.
    """
    parts = []  # (the part's possible values, each row's index among them)
    for c in table["cats"]:
        unique, inverse = cats[c]
        parts.append((unique.view(np.int32).astype(np.int64).view(np.uint64), inverse))
    for col, border, nan_true in table["floats"]:
        x = out[:, col]
        parts.append((_BITS, ((x > _F32(border)) | (np.isnan(x) & bool(nan_true))).astype(np.intp)))
    for c, value in table["one_hots"]:
        unique, inverse = cats[c]
        parts.append((_BITS, (unique == np.uint32(value)).astype(np.intp)[inverse]))
    n = out.shape[0]
    if int(np.prod([len(v) for v, _ in parts], dtype=np.float64)) <= max(n, 256):
        keys, index = np.zeros(1, np.uint64), np.zeros(n, np.intp)
        for values, rows in parts:
            keys = _combine(keys[:, None], values[None, :]).ravel()
            index = index * len(values) + rows
        return _rows(table_hashes, keys)[index]
    keys = np.zeros(n, np.uint64)
    for values, rows in parts:
        keys = _combine(keys, values[rows])
    return _rows(table_hashes, keys)
