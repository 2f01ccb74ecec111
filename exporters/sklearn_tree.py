"""scikit-learn decision trees and random forests → ``TreeEnsemble``.

sklearn casts X to float32 and tests ``x <= threshold`` against float64
thresholds; we store the largest float32 not above each threshold, which
gives identical decisions on every float32 input. NaN follows
``missing_go_to_left``. Leaf values are class fractions (sklearn ≥ 1.4) or
regression values; forests average their trees. ``apply`` is a
``TreeLeafIndex`` over the same stored nodes (node ids are sklearn's).

A tree reading a scikit-learn scaler's output tests the scaler's input
instead, against thresholds folded back through the scaler's float64
arithmetic (:func:`fold_column_sources`): sklearn scales in float64 and the
tree rounds that to float32, which a float32 scaler cannot reproduce at the
thresholds.
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import classifier_from_proba, set_classes
from .registry import ExportContext, register_converter
from .sklearn_multioutput import column, hstack_native, labels_in, union_classes

__all__ = [
    "float32_threshold",
    "tree_arrays",
    "add_tree_ensemble",
    "add_leaf_index",
    "fold_column_sources",
    "convert_tree_classifier",
    "convert_tree_regressor",
]


def float32_threshold(t64: np.ndarray) -> np.ndarray:
    """Largest float32 ≤ each float64 threshold: ``x32 <= t64`` ⇔ ``x32 <= result``."""
    t64 = np.asarray(t64, dtype=np.float64)
    t32 = t64.astype(np.float32)
    too_big = t32.astype(np.float64) > t64
    t32[too_big] = np.nextafter(t32[too_big], np.float32(-np.inf))
    return t32


def tree_arrays(trees: list, leaf_values) -> dict:
    """Flatten sklearn ``tree_`` objects into the global node arrays of ``TreeEnsemble``.

    ``leaf_values(tree_)`` returns the [n_nodes, n_targets] values of one tree.
    """
    feature, threshold, left, right, default_left, values, roots = [], [], [], [], [], [], []
    offset = 0
    depth = 0
    for t in trees:
        n = t.node_count
        idx = np.arange(n, dtype=np.int64) + offset
        is_leaf = t.children_left < 0
        roots.append(offset)
        feature.append(np.where(is_leaf, 0, t.feature))
        threshold.append(np.where(is_leaf, 0.0, t.threshold))
        left.append(np.where(is_leaf, idx, t.children_left + offset))
        right.append(np.where(is_leaf, idx, t.children_right + offset))
        missing = getattr(t, "missing_go_to_left", None)
        default_left.append(np.zeros(n, bool) if missing is None else np.asarray(missing).astype(bool))
        values.append(np.asarray(leaf_values(t), dtype=np.float64).reshape(n, -1))
        depth = max(depth, int(t.max_depth))
        offset += n
    if offset >= 2**31:
        raise UnsupportedModelError(f"forest has {offset} nodes; at most 2**31 - 1 are supported")
    return {
        "feature": np.concatenate(feature).astype(np.int32),
        "threshold": float32_threshold(np.concatenate(threshold)),
        "left": np.concatenate(left).astype(np.int32),
        "right": np.concatenate(right).astype(np.int32),
        "default_left": np.concatenate(default_left),
        "values": np.concatenate(values).astype(np.float32),
        "roots": np.asarray(roots, dtype=np.int32),
        "max_depth": depth,
    }


# --- thresholds folded through scikit-learn scalers ----------------------------------------

_F32_BITS = np.int64(0x7F800000)  # the ordered key of +inf; -inf is its negative


def _float_of_key(k: np.ndarray) -> np.ndarray:
    """float32 values of ordered int keys (``k >= 0``: bits ``k``; ``k < 0``: ``-|bits|``)."""
    bits = np.where(k >= 0, k, np.int64(0x80000000) | -k).astype(np.uint32)
    return bits.view(np.float32)


def _raw_cutpoints(fn, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest float32 ``c`` with ``fn(c) <= t`` per threshold, by bisection over float32 order.

    A float32 ``t`` compares ``fn``'s result rounded to float32 (the tree
    library rounds its input), a float64 ``t`` compares it as is. ``fn`` is
    non-decreasing, so the test is ``x <= c`` on every non-NaN float32 ``x``.
    Returns ``(c, ok)``; ``ok`` is false where no value qualifies (the node is
    then left unfolded).
    """
    t = np.asarray(t)

    def below(k):
        with np.errstate(all="ignore"):
            return fn(_float_of_key(k).astype(np.float64)).astype(t.dtype) <= t

    lo = np.full(t.shape, -_F32_BITS)
    hi = np.full(t.shape, _F32_BITS)
    ok = below(lo)
    top = below(hi)
    while True:
        open_ = ok & ~top & (hi - lo > 1)
        if not open_.any():
            break
        mid = (lo + hi) // 2
        go = below(mid)
        lo = np.where(open_ & go, mid, lo)
        hi = np.where(open_ & ~go, mid, hi)
    return _float_of_key(np.where(top, hi, lo)), ok


def fold_column_sources(ctx: ExportContext, x: str, feature: np.ndarray, threshold: np.ndarray,
                        foldable: np.ndarray, threshold64: np.ndarray | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """Test scaler inputs instead of scaler outputs: the source pipeline's decisions, exactly.

    Where column ``j`` of ``x`` is a scikit-learn scaler's output (recorded by
    :func:`.sklearn_preprocessing.record_column_sources`), a ``foldable`` node
    ``float32(z_j) <= t`` (``z_j`` the scaler's float64 result, as the tree
    library rounds it) — or ``z_j <= threshold64`` for libraries comparing in
    float64 — becomes ``raw <= c`` on the scaler's input column, ``c`` found at
    export in float64. The scaler inputs are appended to ``x``; returns
    ``(x', feature', threshold')``. NaN still takes the default branch.
    """
    entries = (ctx.options.get("column_sources") or {}).get(x)
    if entries is None:
        return x, feature, threshold
    feature, threshold = feature.copy(), threshold.copy()
    extra: dict = {}  # (source value, column) -> column of x'
    for j in np.unique(feature[foldable]):
        if j >= len(entries) or entries[j] is None:  # not a scaler output (or a column the library appends)
            continue
        nodes = np.flatnonzero(foldable & (feature == j))
        cut, ok = _raw_cutpoints(entries[j][2], (threshold if threshold64 is None else threshold64)[nodes])
        if not ok.any():
            continue
        key = entries[j][:2]
        extra.setdefault(key, len(entries) + len(extra))
        feature[nodes[ok]], threshold[nodes[ok]] = extra[key], cut[ok]
    if not extra:
        return x, feature, threshold
    b = ctx.builder
    parts, keys = [x], list(extra)
    while keys:  # one Take per run of columns from the same source
        run = [keys.pop(0)]
        while keys and keys[0][0] == run[0][0]:
            run.append(keys.pop(0))
        parts.append(b.op("Take", run[0][0], b.tensor("fold.columns", np.asarray([c for _, c in run]), np.int32), axis=1))
    return b.op("Concat", *parts, axis=1), feature, threshold


# --- stored trees ----------------------------------------------------------------------------

_NODE_ARRAYS = ("feature", "threshold", "left", "right", "default_left", "values", "roots")


def _stored(ctx: ExportContext, x: str, arrays: dict) -> dict:
    """The node arrays of :func:`tree_arrays` over ``x``, folded and stored once (value names and ``input``)."""
    if "_names" not in arrays:
        inner = arrays["left"] != np.arange(arrays["left"].shape[0])
        x, arrays["feature"], arrays["threshold"] = fold_column_sources(ctx, x, arrays["feature"], arrays["threshold"], inner)
        arrays["_names"] = {k: ctx.builder.tensor(f"tree.{k}", arrays[k]) for k in _NODE_ARRAYS} | {"input": x}
    return arrays["_names"]


def add_tree_ensemble(ctx: ExportContext, x: str, arrays: dict, *, aggregate: str, base=None) -> str:
    """Emit a ``TreeEnsemble`` node over ``x``; returns the [B, n_targets] output."""
    names = _stored(ctx, x, arrays)
    attrs = {"max_depth": int(arrays["max_depth"]), "aggregate": aggregate}
    if base is not None:
        attrs["base"] = [float(v) for v in np.atleast_1d(base)]
    return ctx.builder.op("TreeEnsemble", names["input"], *(names[k] for k in _NODE_ARRAYS), **attrs)


def add_leaf_index(ctx: ExportContext, x: str, arrays: dict) -> str:
    """Emit a ``TreeLeafIndex`` over the same stored trees: [B, n_trees] int32 sklearn node ids (``apply``)."""
    names = _stored(ctx, x, arrays)
    ins = (names[k] for k in _NODE_ARRAYS if k != "values")
    return ctx.builder.op("TreeLeafIndex", names["input"], *ins, max_depth=int(arrays["max_depth"]))


def _estimators(model) -> list:
    return [model] if hasattr(model, "tree_") else list(model.estimators_)


def _apply(ctx: ExportContext, x: str, arrays: dict, model) -> str:
    """``apply``: [B] node ids for a tree, [B, n_estimators] for a forest (sklearn's shapes)."""
    leaves = add_leaf_index(ctx, x, arrays)
    return ctx.builder.op("Squeeze", leaves, axis=1) if hasattr(model, "tree_") else leaves


def convert_tree_classifier(model, x: str, ctx: ExportContext) -> dict:
    """DecisionTreeClassifier, RandomForestClassifier: mean of per-tree class fractions."""
    if model.n_outputs_ != 1:
        return _convert_multioutput_tree_classifier(model, x, ctx)
    n_classes = int(model.n_classes_)
    set_classes(ctx, model.classes_)
    arrays = tree_arrays([e.tree_ for e in _estimators(model)], lambda t: t.value[:, 0, :n_classes])
    proba = add_tree_ensemble(ctx, x, arrays, aggregate="mean")
    return classifier_from_proba(ctx, proba) | {"leaf_index": _apply(ctx, x, arrays, model)}


def _convert_multioutput_tree_classifier(model, x: str, ctx: ExportContext) -> dict:
    """Multi-output (and multilabel) tree classifiers: per output, the first argmax of its class fractions.

    ``predict`` is [B, n_outputs] over the union of the outputs' classes (see
    :mod:`.sklearn_multioutput`); ``predict_proba`` puts scikit-learn's
    per-output list side by side (``np.hstack``).
    """
    b = ctx.builder
    n_classes = [int(k) for k in model.n_classes_]
    union, tables = union_classes(model.classes_)
    set_classes(ctx, union)

    def leaf_values(t):
        return np.concatenate([t.value[:, j, :k] for j, k in enumerate(n_classes)], axis=1)

    arrays = tree_arrays([e.tree_ for e in _estimators(model)], leaf_values)
    proba = add_tree_ensemble(ctx, x, arrays, aggregate="mean")
    labels, start = [], 0
    for k, table in zip(n_classes, tables):
        part = b.op("Slice", proba, axes=[1], starts=[start], stops=[start + k])
        labels.append(column(ctx, labels_in(ctx, b.op("ArgMax", part), table)))
        start += k
    return {
        "label": b.op("Concat", *labels, axis=1),
        "probabilities": proba,
        "log_probabilities": b.op("Log", proba),
        "leaf_index": _apply(ctx, x, arrays, model),
    }


def convert_tree_regressor(model, x: str, ctx: ExportContext) -> dict:
    """DecisionTreeRegressor, RandomForestRegressor: mean of per-tree leaf values."""
    arrays = tree_arrays([e.tree_ for e in _estimators(model)], lambda t: t.value[:, :, 0])
    y = add_tree_ensemble(ctx, x, arrays, aggregate="mean")
    if model.n_outputs_ == 1:
        y = ctx.builder.op("Squeeze", y, axis=1)
    return {"output": y, "leaf_index": _apply(ctx, x, arrays, model)}


convert_tree_classifier.native_method = hstack_native  # multi-output predict_proba: a list, compared side by side

register_converter("sklearn.DecisionTreeClassifier", convert_tree_classifier)
register_converter("sklearn.RandomForestClassifier", convert_tree_classifier)
register_converter("sklearn.DecisionTreeRegressor", convert_tree_regressor)
register_converter("sklearn.RandomForestRegressor", convert_tree_regressor)
