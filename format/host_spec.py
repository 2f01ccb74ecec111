"""The host-encoding spec: which raw input columns are strings, and their categories.

Stored in a ``.mle`` file's metadata under ``"host_encoding"``; written by the
exporters (``mlejax.exporters._host_encoding``) and applied before the graph
runs by :class:`mlejax.host.HostEncoder`.

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
        {"index": 3, "kind": "ignore"},    # unused column: numbers if it has them, else 0
        {"index": 4, "kind": "rank",       # numeric column replaced by its rank among the
         "boundaries": "rank4"}],          #   sorted float64 values of this stored tensor
     "catboost": {...}}                    # optional: CatBoost categorical features (below)

Codes of a ``category`` column: the position of the value in
``categories``; the missing marker named by ``missing`` (``None`` or a float
NaN) gives NaN, which the graph treats as the NaN category (scikit-learn keeps
a missing category last in ``categories_``); anything else is unknown and
gives -1 (no category has that code), or raises :class:`InputError` when
``unknown == "error"`` (as scikit-learn's ``handle_unknown="error"`` does).
Only string values can match a category (a number among strings is unknown,
as in scikit-learn); a column of numbers where string categories were fitted
raises :class:`InputError`.

Codes of a ``rank`` column: the number of boundaries strictly below the value
(as float64), NaN stays NaN. ``x <= boundaries[i]`` iff ``rank(x) <= i``, so
split decisions against float64 thresholds are exact for float64 inputs.

**CatBoost section** (semantics in :mod:`mlejax.host_catboost`)::

    {"cat_columns": [1, 4],                # raw column of each CatBoost categorical feature
     "one_hot": [[1, [759035679]]],        # categorical feature -> its one-hot value hashes (uint32), distinct
     "tables": [{"cats": [0],              # projection: categorical features,
                 "floats": [[0, 0.5, false]],  # float splits (raw column, float32 border, NaN is true),
                 "one_hots": [[1, 759035679]], # one-hot tests (categorical feature, hash)
                 "hashes": "t0_hashes",    # stored tensors: sorted uint64 keys and int32 counts [n, k]
                 "counts": "t0_counts",
                 "counter_denominator": 264}],
     "ctrs": [{"table": 0, "type": one of CTR_TYPES,
               "target_border_idx": 0, "prior_num": 0.5, "prior_denom": 1.0, "shift": 0.0, "scale": 15.0}]}

CTR ``k`` becomes graph input column ``n_features + k``; after the CTRs come
the one-hot indicators, one per listed value, in order.
"""

from __future__ import annotations

from typing import Any

from .errors import MLEFormatError

__all__ = ["SPEC_VERSION", "RAW_INPUT", "CTR_TYPES", "validate_host_spec"]

SPEC_VERSION = 1
#: Name of the graph input that carries the raw columns (set by ``export_model``).
RAW_INPUT = "X"
#: CatBoost CTR types the host can compute.
CTR_TYPES = ("Borders", "Buckets", "Counter", "FeatureFreq", "BinarizedTargetMeanValue")


def _is_int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v < hi


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_host_spec(spec: Any) -> None:
    """Check a spec's structure; :class:`MLEFormatError` names the bad field."""

    def need(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise MLEFormatError(f"metadata.host_encoding{where}: expected {what}")

    need(isinstance(spec, dict) and spec.get("version") == SPEC_VERSION, "", f"a map with version {SPEC_VERSION}")
    n = spec.get("n_features")
    need(_is_int(n, 1, 2**31), ".n_features", "a positive int")
    names = spec.get("feature_names")
    need(names is None or (isinstance(names, list) and len(names) == n and all(isinstance(s, str) for s in names)),
         ".feature_names", f"null or a list of {n} strings")
    cols = spec.get("columns")
    need(isinstance(cols, list), ".columns", "a list")
    seen = set()
    for i, c in enumerate(cols):
        where = f".columns[{i}]"
        need(isinstance(c, dict) and c.get("kind") in ("category", "ignore", "rank"), where,
             "a map with kind 'category', 'ignore' or 'rank'")
        idx = c.get("index")
        need(_is_int(idx, 0, n) and idx not in seen, where + ".index", f"a unique column index below {n}")
        seen.add(idx)
        if c["kind"] == "category":
            cats = c.get("categories")
            need(isinstance(cats, list) and all(isinstance(s, str) for s in cats), where + ".categories", "a list of strings")
            need(len(set(cats)) == len(cats), where + ".categories", "distinct strings")
            need(c.get("missing") in (None, "nan", "none"), where + ".missing", "null, 'nan' or 'none'")
            need(c.get("unknown") in ("error", "code"), where + ".unknown", "'error' or 'code'")
        if c["kind"] == "rank":
            need(isinstance(c.get("boundaries"), str), where + ".boundaries", "a stored tensor name")
    if "catboost" in spec:
        _validate_catboost(spec["catboost"], n, seen, need)


def _validate_catboost(cb: Any, n: int, encoded: set, need: Any) -> None:
    need(isinstance(cb, dict), ".catboost", "a map")
    cols = cb.get("cat_columns")
    need(isinstance(cols, list) and all(_is_int(c, 0, n) and c not in encoded for c in cols) and len(set(cols)) == len(cols),
         ".catboost.cat_columns", f"distinct column indexes below {n}, not encoded otherwise")
    k = len(cols)
    one_hot = cb.get("one_hot")
    need(isinstance(one_hot, list) and all(
        isinstance(e, list) and len(e) == 2 and _is_int(e[0], 0, k) and isinstance(e[1], list)
        and all(_is_int(v, 0, 2**32) for v in e[1]) and len(set(e[1])) == len(e[1]) for e in one_hot)
        and len({e[0] for e in one_hot}) == len(one_hot), ".catboost.one_hot", "[[feature, [distinct uint32 hashes]], ...]")
    tables = cb.get("tables")
    need(isinstance(tables, list), ".catboost.tables", "a list")
    for i, t in enumerate(tables):
        where = f".catboost.tables[{i}]"
        need(isinstance(t, dict) and isinstance(t.get("hashes"), str) and isinstance(t.get("counts"), str)
             and _is_int(t.get("counter_denominator"), -2**31, 2**31), where, "a map with hashes, counts and counter_denominator")
        need(isinstance(t.get("cats"), list) and all(_is_int(c, 0, k) for c in t["cats"]), where + ".cats", f"feature indexes below {k}")
        need(isinstance(t.get("floats"), list) and all(
            isinstance(e, list) and len(e) == 3 and _is_int(e[0], 0, n) and _is_number(e[1]) and isinstance(e[2], bool)
            for e in t["floats"]), where + ".floats", "[[column, border, nan_is_true], ...]")
        need(isinstance(t.get("one_hots"), list) and all(
            isinstance(e, list) and len(e) == 2 and _is_int(e[0], 0, k) and _is_int(e[1], 0, 2**32) for e in t["one_hots"]),
            where + ".one_hots", "[[feature, uint32 hash], ...]")
    ctrs = cb.get("ctrs")
    need(isinstance(ctrs, list), ".catboost.ctrs", "a list")
    for i, c in enumerate(ctrs):
        need(isinstance(c, dict) and _is_int(c.get("table"), 0, len(tables)) and c.get("type") in CTR_TYPES
             and _is_int(c.get("target_border_idx"), 0, 2**16)
             and all(_is_number(c.get(f)) for f in ("prior_num", "prior_denom", "shift", "scale")),
             f".catboost.ctrs[{i}]", f"a map with table, type in {CTR_TYPES}, target_border_idx and numeric priors")
