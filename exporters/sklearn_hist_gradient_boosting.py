"""scikit-learn ``HistGradientBoostingClassifier``/``Regressor`` → ``TreeEnsemble``.

Semantics reproduced (``_hist_gradient_boosting/_predictor.pyx``):

- sklearn casts X to float64 and tests ``x <= num_threshold`` (float64). Our
  input is float32, so each threshold is stored as the largest float32 not
  above it: decisions are identical for every float32 input. float64 inputs
  with more precision than float32 are rounded to float32 first, unless the
  model is exported with ``exact_float64=True`` (thresholds become ranks among
  each feature's float64 thresholds, and the host ranks the inputs);
- NaN follows ``missing_go_to_left``;
- categorical features: sklearn ordinal-encodes them (unknown values → NaN)
  and moves them first; we map the feature indices back and build each
  node's bitset over the category values themselves (non-negative integers
  below 2**16; anything else raises ``UnsupportedModelError``). A category in
  ``raw_left_cat_bitsets`` goes left, another known category goes right, and
  NaN, negative, non-integer and unknown values follow the missing direction;
- raw = ``_baseline_prediction`` + Σ leaves (one tree per class per
  iteration); predict/predict_proba apply the loss's inverse link (identity,
  exp, expit, softmax); binary labels are ``raw > 0`` as in sklearn.

String categories are not supported: encode them as integer codes first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..format.errors import UnsupportedModelError
from ._gbdt_common import ForestBuilder, RankedThresholds, binary_heads, bitset_words, float32_threshold, multiclass_heads
from .registry import ExportContext, register_converter

__all__ = ["convert_hist_gradient_boosting"]

_LINKS = {"IdentityLink": None, "LogLink": "Exp"}


#: Largest category value we store a bitset for (values are bit positions).
_MAX_CATEGORY = 1 << 16


def _category_values(model: Any) -> tuple[np.ndarray, list]:
    """Internal → input column map, and each categorical feature's known values (code j ↔ values[j]).

    sklearn ordinal-encodes categorical columns (unknown → NaN) and places
    them first; we undo the reordering in the feature indices and build the
    bitsets over the category *values*, which must be integers in
    ``[0, 2**16)``.
    """
    pre = getattr(model, "_preprocessor", None)
    n = int(model.n_features_in_)
    if pre is None:
        return np.arange(n), []
    is_cat = np.asarray(model.is_categorical_, bool)
    perm = np.concatenate([np.nonzero(is_cat)[0], np.nonzero(~is_cat)[0]])
    values = []
    for col, cats in zip(np.nonzero(is_cat)[0], pre.named_transformers_["encoder"].categories_):
        cats = np.asarray(cats)
        if cats.dtype.kind in "fc" and cats.size and np.isnan(cats[-1]):
            cats = cats[:-1]
        ok = cats.dtype.kind in "iuf" and np.all((cats == np.trunc(cats)) & (cats >= 0) & (cats < _MAX_CATEGORY))
        if not ok:
            raise UnsupportedModelError(
                f"{type(model).__name__}: categorical feature {col} has categories {cats[:5].tolist()}...; only "
                f"non-negative integer category values below {_MAX_CATEGORY} are supported (encode strings as integer codes)"
            )
        values.append(cats.astype(np.int64))
    return perm, values


def _left_words(raw_left: np.ndarray, values: np.ndarray, missing_left: bool) -> np.ndarray:
    """The node's left set over category values: encoded categories whose raw bit is set, plus unknown
    values when missing values go left (sklearn sends unknown categories the missing way)."""
    codes = np.arange(values.shape[0])
    in_left = ((raw_left[codes >> 5] >> (codes & 31).astype(np.uint32)) & 1).astype(bool)
    words = bitset_words(values[in_left]) if in_left.any() else np.zeros(1, np.uint32)
    n_words = int(values.max()) // 32 + 1 if values.size else 1
    words = np.concatenate([words, np.zeros(max(0, n_words - words.shape[0]), np.uint32)])
    if missing_left:
        known = bitset_words(values)
        words = words | ~np.concatenate([known, np.zeros(max(0, words.shape[0] - known.shape[0]), np.uint32)])
    return words


def _ranked_thresholds(model: Any, perm: np.ndarray) -> RankedThresholds:
    """``exact_float64``: the float64 thresholds of each input column's numeric splits."""
    values: dict[int, list] = {}
    for iteration in model._predictors:
        for predictor in iteration:
            nodes = predictor.nodes
            numeric = ~nodes["is_leaf"].astype(bool) & ~nodes["is_categorical"].astype(bool)
            for f, t in zip(perm[nodes["feature_idx"][numeric]].tolist(), nodes["num_threshold"][numeric].tolist()):
                values.setdefault(f, []).append(t)
    return RankedThresholds(values)


def _forest(model: Any, exact_float64: bool = False) -> tuple[ForestBuilder, RankedThresholds | None]:
    perm, cat_values = _category_values(model)
    ranks = _ranked_thresholds(model, perm) if exact_float64 else None
    k_trees = int(model.n_trees_per_iteration_)
    forest = ForestBuilder(k_trees, per_tree_target=k_trees > 1, cat_lo=float(-np.float32(1.4e-45)),
                           cat_hi=float(_MAX_CATEGORY), cat_integer=True)
    for iteration in model._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            missing_left = nodes["missing_go_to_left"].astype(bool)
            cats = {}
            for i in np.nonzero(nodes["is_categorical"].astype(bool) & ~leaf)[0]:
                raw_left = predictor.raw_left_cat_bitsets[nodes["bitset_idx"][i]]
                words = _left_words(raw_left, cat_values[int(nodes["feature_idx"][i])], bool(missing_left[i]))
                cats[int(i)] = (words, bool(missing_left[i]))
            values = nodes["value"].astype(np.float32)
            features = perm[nodes["feature_idx"]]
            if ranks is None:
                thresholds = float32_threshold(nodes["num_threshold"])
            else:
                numeric = ~leaf & ~nodes["is_categorical"].astype(bool)
                thresholds = np.asarray([ranks.rank(f, t) if ok else 0.0 for f, t, ok in
                                         zip(features, nodes["num_threshold"], numeric)], np.float32)
            forest.add_tree(
                np.where(leaf, -1, nodes["left"].astype(np.int64)), np.where(leaf, -1, nodes["right"].astype(np.int64)),
                features, thresholds, missing_left, values if k_trees > 1 else values.reshape(-1, 1), cats=cats, target=k,
                threshold64=nodes["num_threshold"] if ranks is None else None,  # HGB compares float64 x <= t
            )
    return forest, ranks


def convert_hist_gradient_boosting(model: Any, x: str, ctx: ExportContext) -> dict:
    """HistGradientBoostingClassifier / HistGradientBoostingRegressor."""
    forest, ranks = _forest(model, bool(ctx.options.pop("exact_float64", False)))
    if ranks is not None:
        names = getattr(model, "feature_names_in_", None)
        ranks.request(ctx, int(model.n_features_in_), None if names is None else list(names))
    raw = forest.ensemble(ctx, x, base=np.asarray(model._baseline_prediction, np.float64).ravel())
    b = ctx.builder
    if hasattr(model, "classes_"):
        if forest.n_targets == 1:
            return binary_heads(ctx, raw, model.classes_, proba="sigmoid", label_from_margin=True)
        return multiclass_heads(ctx, raw, model.classes_)
    link = type(model._loss.link).__name__
    if link not in _LINKS:
        raise UnsupportedModelError(f"HistGradientBoostingRegressor with link {link} is not supported; supported: {sorted(_LINKS)}")
    y = b.op("Squeeze", raw, axis=1)
    return {"output": y if _LINKS[link] is None else b.op(_LINKS[link], y)}


register_converter("sklearn.HistGradientBoostingClassifier", convert_hist_gradient_boosting)
register_converter("sklearn.HistGradientBoostingRegressor", convert_hist_gradient_boosting)
