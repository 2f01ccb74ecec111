"""CatBoost categorical features on the host: value hashes, one-hot codes and CTR values.

CatBoost never sees a categorical value itself, only the low 32 bits of the
CityHash64 of its string form (:mod:`mlejax.cityhash`); integers are written in
decimal. From those hashes this step computes, in numpy:

- for each one-hot feature, the column's *code*: the position of the value's
  hash among the feature's one-hot values, or -1; the graph tests
  ``code == position``;
- for each CTR (target statistic) feature, its float32 value, appended after
  the raw columns; the graph compares it with the CTR's borders (``>``).

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
_F32 = np.float32


def _text(v: Any) -> str:
    """CatBoost's string form of one categorical value (integral numbers and booleans in decimal)."""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, int, np.bool_, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if v != v:
            raise ValueError("NaN")
        return str(int(v)) if float(v).is_integer() else str(v)
    if v is None or type(v).__name__ == "NAType":
        raise ValueError("missing")
    return str(v)


def category_hashes(values: Any, name: str) -> np.ndarray:
    """CatBoost's uint32 hash of each categorical value of one column (strings, integers or integral floats)."""
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
            f"categorical column {name!r} has a {exc} value; CatBoost categorical values must be strings or integers"
        ) from None
    hashes = np.fromiter((cityhash64(t.encode("utf-8")) & 0xFFFFFFFF for t in texts), np.uint32, len(texts))
    return hashes[inverse]


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
        """Number of CTR columns appended after the raw columns."""
        return len(self.ctrs)

    def encode(self, cat_values: list[np.ndarray], out: np.ndarray, names: list[str]) -> np.ndarray:
        """Write one-hot codes into ``out``'s categorical columns; return the CTR columns [n, width].

        ``cat_values[i]`` is the raw column of categorical feature ``i``;
        ``out`` holds the raw float32 columns (float features are read from it).
        """
        hashes = [category_hashes(v, names[c]) for v, c in zip(cat_values, self.cat_columns)]
        for i, c in enumerate(self.cat_columns):
            values = self.one_hot.get(i)
            if values is None:
                out[:, c] = 0.0
                continue
            match = hashes[i][:, None] == values[None, :]
            out[:, c] = np.where(match.any(axis=1), match.argmax(axis=1), -1).astype(_F32)
        ctr_out = np.empty((out.shape[0], len(self.ctrs)), _F32)
        for i, (t, table_hashes, _) in enumerate(self.tables):
            ctr_out[:, self._columns[i]] = self._values[i][_rows(table_hashes, self._keys(t, hashes, out))]
        return ctr_out

    @staticmethod
    def _keys(table: dict, hashes: list[np.ndarray], out: np.ndarray) -> np.ndarray:
        key = np.zeros(out.shape[0], np.uint64)
        for c in table["cats"]:
            key = _combine(key, hashes[c].view(np.int32).astype(np.int64).view(np.uint64))
        for col, border, nan_true in table["floats"]:
            x = out[:, col]
            bit = (x > _F32(border)) | (np.isnan(x) & bool(nan_true))
            key = _combine(key, bit.astype(np.uint64))
        for c, value in table["one_hots"]:
            key = _combine(key, (hashes[c] == np.uint32(value)).astype(np.uint64))
        return key
