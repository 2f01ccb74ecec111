"""scikit-learn decision trees and random forests → ``TreeEnsemble``.

sklearn casts X to float32 and tests ``x <= threshold`` against float64
thresholds; we store the largest float32 not above each threshold, which
gives identical decisions on every float32 input. NaN follows
``missing_go_to_left``. Leaf values are class fractions (sklearn ≥ 1.4) or
regression values; forests average their trees.
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import classifier_from_proba, set_classes
from .registry import ExportContext, register_converter

__all__ = [
    "float32_threshold",
    "tree_arrays",
    "add_tree_ensemble",
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


def add_tree_ensemble(ctx: ExportContext, x: str, arrays: dict, *, aggregate: str, base=None) -> str:
    """Emit a ``TreeEnsemble`` node over ``x``; returns the [B, n_targets] output."""
    b = ctx.builder
    names = [b.tensor(f"tree.{k}", arrays[k]) for k in ("feature", "threshold", "left", "right", "default_left", "values", "roots")]
    attrs = {"max_depth": int(arrays["max_depth"]), "aggregate": aggregate}
    if base is not None:
        attrs["base"] = [float(v) for v in np.atleast_1d(base)]
    return b.op("TreeEnsemble", x, *names, **attrs)


def _check_single_output_classifier(model) -> None:
    if model.n_outputs_ != 1:
        raise UnsupportedModelError(
            f"{type(model).__name__} with {model.n_outputs_} outputs (multi-output classification) is not "
            "supported; multi-class and multi-output regression are"
        )


def _estimators(model) -> list:
    return [model] if hasattr(model, "tree_") else list(model.estimators_)


def convert_tree_classifier(model, x: str, ctx: ExportContext) -> dict:
    """DecisionTreeClassifier, RandomForestClassifier: mean of per-tree class fractions."""
    _check_single_output_classifier(model)
    n_classes = int(model.n_classes_)
    set_classes(ctx, model.classes_)
    arrays = tree_arrays([e.tree_ for e in _estimators(model)], lambda t: t.value[:, 0, :n_classes])
    proba = add_tree_ensemble(ctx, x, arrays, aggregate="mean")
    return classifier_from_proba(ctx, proba)


def convert_tree_regressor(model, x: str, ctx: ExportContext) -> dict:
    """DecisionTreeRegressor, RandomForestRegressor: mean of per-tree leaf values."""
    arrays = tree_arrays([e.tree_ for e in _estimators(model)], lambda t: t.value[:, :, 0])
    y = add_tree_ensemble(ctx, x, arrays, aggregate="mean")
    if model.n_outputs_ == 1:
        y = ctx.builder.op("Squeeze", y, axis=1)
    return {"output": y}


register_converter("sklearn.DecisionTreeClassifier", convert_tree_classifier)
register_converter("sklearn.RandomForestClassifier", convert_tree_classifier)
register_converter("sklearn.DecisionTreeRegressor", convert_tree_regressor)
register_converter("sklearn.RandomForestRegressor", convert_tree_regressor)
