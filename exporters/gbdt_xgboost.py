"""XGBoost (``XGBClassifier``/``XGBRegressor``/``XGBRanker``/``XGBRFClassifier``/``Booster``) → ``TreeEnsemble``.

The model is read from ``Booster.save_raw("json")`` (shortest round-trip float32
text, so exact), never from the text dump. Semantics reproduced
(``src/predictor/predict_fn.h``, ``src/common/categorical.h``):

- numeric split: left iff ``x < t`` in float32 ⇒ ``x <= nextafter(t, -inf)``;
- missing (NaN, or the wrapper's ``missing`` value compared as float32
  equality) → the node's default child;
- categorical split: right iff ``trunc(x)`` is in the node's category set;
  negative values, values ``>= 2**24`` and categories beyond the set's bit
  field go left. Categories arrive as float32 codes (the codes XGBoost sees);
- margin = Σ tree leaves (dart: × ``weight_drop``) + ``base_margin``, an
  optional graph input ([batch, n_groups] float32) whose default is
  ``link(base_score)``, base_score being stored in output space (XGBoost ≥
  2.0): ``Model.predict(X, base_margin=m)`` replaces base_score as
  XGBoost's ``base_margin`` does;
- every tree is stored; the graph uses the iterations of the source's default
  ``predict`` (a wrapper's ``best_iteration``, else all), and
  ``iteration_range=(b, e)`` at predict time selects trees
  ``iteration_indptr[b] .. iteration_indptr[e]`` (one iteration is
  ``num_parallel_tree`` × n_groups trees); see
  :mod:`mlejax.format.predict_options` and :mod:`mlejax.predict_options`;
- objectives: ``binary:logistic|logitraw|hinge``, ``multi:softprob|softmax``,
  ``reg:squarederror|squaredlogerror|pseudohubererror|absoluteerror|quantileerror|logistic|gamma|tweedie``,
  ``count:poisson``, ``survival:cox|aft``, ``rank:pairwise|ndcg|map``, and
  multi-target models (one tree per target or ``multi_output_tree``);
- ``decision_function`` (exposed on every model) is the raw margin
  (``output_margin=True``); ``apply`` gives XGBoost's node ids (``pred_leaf``);
- models fitted on DataFrames with string ``category`` columns (XGBoost ≥
  3.1 stores the training categories and re-codes the frames it predicts
  on): the host maps each value to its training code (``mlejax.host``), so a
  frame whose categorical dtype has other categories or another order
  predicts as in XGBoost; NaN is missing; an unseen category raises
  :class:`~mlejax.format.errors.InputError` (XGBoost raises too). Such a
  model then needs the category values, not codes, in numeric input.

Not supported: ``gblinear`` and multi-label classifiers.

XGBoost sums leaves in float32 in tree order; we sum in float32 in chunks, so
margins can differ by a few float32 ulps of the running sum.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import set_classes
from ._gbdt_common import ForestBuilder, add_x_input, below_float32, binary_heads, bitset_words, multiclass_heads, with_native
from .registry import ExportContext, register_converter, register_file_loader

__all__ = ["convert_xgboost"]

_LOGIT = {"binary:logistic", "reg:logistic"}
_LOG = {"count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft"}
_IDENTITY = {
    "reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror", "reg:quantileerror",
    "binary:logitraw", "binary:hinge", "multi:softprob", "multi:softmax", "rank:pairwise", "rank:ndcg", "rank:map",
}
#: Objectives whose ``predict`` applies exp / sigmoid to the margin.
_EXP_OUTPUT = _LOG
_SIGMOID_OUTPUT = {"binary:logistic", "reg:logistic"}
_RT_EPS = np.float32(1e-6)  # XGBoost's kRtEps
_MAX_CAT = 16777216.0  # XGBoost's OutOfRangeCat(): categories must be below 2**24
#: The optional graph input that replaces ``base_score`` in margin space.
BASE_MARGIN = "base_margin"


def _model_json(booster: Any) -> dict:
    return json.loads(booster.save_raw("json"))


def _floats(text: str) -> list[float]:
    """``"[1E0,2E0]"`` (XGBoost ≥ 3) or ``"1E0"`` → floats."""
    return [float(v) for v in text.strip("[]").split(",") if v.strip()]


def _margin_of(base: float, objective: str) -> float:
    if objective in _LOGIT:
        # XGBoost accepts [0, 1] (one-class labels), bounds it to [1e-6, 1 - 1e-6] and takes -log(1/p - 1) in
        # float32, whose rounding of 1/p - 1 matters near 1 (13.745 instead of 13.802 at the bound)
        if not 0.0 <= base <= 1.0:
            raise UnsupportedModelError(f"base_score {base} is outside [0, 1] for {objective}")
        one = np.float32(1.0)
        p = min(max(np.float32(base), _RT_EPS), one - _RT_EPS)
        return float(-np.log(one / p - one))
    if objective in _LOG:
        if not base > 0.0:
            raise UnsupportedModelError(f"base_score {base} must be positive for {objective}")
        return math.log(base)
    if objective in _IDENTITY:
        return base
    raise UnsupportedModelError(
        f"XGBoost objective {objective!r} is not supported; supported: {sorted(_LOGIT | _LOG | _IDENTITY)}"
    )


def _tree_nodes(tree: dict, n_out: int, multi_output: bool):
    """Leaf values [n, width] of one JSON tree, and its categorical left sets."""
    left = np.asarray(tree["left_children"], np.int64)
    right = np.asarray(tree["right_children"], np.int64)
    cond = np.asarray(tree["split_conditions"], np.float32)
    is_leaf = left < 0
    if multi_output:
        weights = np.asarray(tree["leaf_weights"], np.float32).reshape(-1, n_out)
        values = np.zeros((left.shape[0], n_out), np.float32)
        values[is_leaf] = weights[right[is_leaf]]
        right = np.where(is_leaf, -1, right)
    else:
        values = np.where(is_leaf, cond, np.float32(0)).reshape(-1, 1)
    cats = {}
    cat_values = tree.get("categories", [])
    for node, beg, size in zip(tree.get("categories_nodes", []), tree.get("categories_segments", []), tree.get("categories_sizes", [])):
        right_set = bitset_words(cat_values[beg : beg + size])
        cats[int(node)] = (~right_set, True)  # left set = complement; beyond the field → left
    return left, right, values, cats


def _iterations(model: Any, gb_model: dict, n_trees: int, per_iteration_groups: int) -> dict:
    """The iteration spec (:mod:`mlejax.format.predict_options`), less its node names.

    A wrapper's ``predict`` uses its ``best_iteration`` by default and reads a
    range ``(b, 0)`` as that default; a Booster uses every tree and reads
    ``(b, 0)`` as ``(b, n_rounds)``.
    """
    indptr = gb_model.get("iteration_indptr")
    if not indptr:  # older files: num_parallel_tree trees per output group per iteration
        step = int(gb_model.get("gbtree_model_param", {}).get("num_parallel_tree", "1")) * per_iteration_groups
        indptr = list(range(0, n_trees + 1, step))
    indptr = [int(v) for v in indptr]
    if indptr[-1] != n_trees:
        raise UnsupportedModelError(f"XGBoost iteration_indptr ends at {indptr[-1]}, but the model has {n_trees} trees")
    n_rounds = len(indptr) - 1
    wrapper = hasattr(model, "get_booster")
    end = n_rounds
    if wrapper:
        try:
            end = min(int(model.best_iteration) + 1, n_rounds)
        except (AttributeError, TypeError, ValueError):
            pass
    return {"indptr": indptr, "default": [0, end], "open_end": "default" if wrapper else "last"}


def _categories(gb_model: dict) -> dict[int, list[str]]:
    """Training categories of string-category features (XGBoost ≥ 3.1 stores them and re-codes frames)."""
    out = {}
    for j, enc in enumerate(gb_model.get("cats", {}).get("enc", [])):
        offsets, values = enc.get("offsets"), enc.get("values")
        if offsets is None or not values:  # numeric categories (``type``) or a numeric feature
            continue
        raw = bytes(v & 0xFF for v in values)
        try:
            if offsets[-1] != len(raw):
                raise ValueError("offsets do not span the bytes")
            out[j] = [raw[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:])]
        except (ValueError, IndexError):
            raise UnsupportedModelError(
                f"the string categories of feature {j} are stored inconsistently (XGBoost counts non-ASCII "
                "categories in characters, not bytes); use ASCII category names"
            ) from None
    return out


def _read_forest(model: Any, booster: Any) -> tuple[ForestBuilder, dict]:
    d = _model_json(booster)
    learner = d["learner"]
    objective = learner["objective"]["name"]
    params = learner["learner_model_param"]
    gb = learner["gradient_booster"]
    kind = gb["name"]
    if kind == "dart":
        weights = list(gb["weight_drop"])
        gb = gb["gbtree"]
    elif kind == "gbtree":
        weights = None
    else:
        raise UnsupportedModelError(f"XGBoost booster {kind!r} is not supported; supported: gbtree, dart")
    trees_json = gb["model"]["trees"]
    tree_info = gb["model"]["tree_info"]
    n_class = int(params.get("num_class", "0"))
    n_target = int(params.get("num_target", "1"))
    n_out = max(n_class, n_target, 1)
    base = _floats(params["base_score"])
    base = np.broadcast_to(np.asarray([_margin_of(v, objective) for v in base]), (n_out,))
    multi_output = any(int(t["tree_param"].get("size_leaf_vector", "1")) > 1 for t in trees_json)
    forest = ForestBuilder(n_out, per_tree_target=not multi_output and n_out > 1, float32_input=True, cat_lo=float(-np.float32(1.4e-45)), cat_hi=_MAX_CAT)
    missing = float(getattr(model, "missing", np.nan) if hasattr(model, "get_booster") else np.nan)
    for i, tree in enumerate(trees_json):
        left, right, values, cats = _tree_nodes(tree, n_out, multi_output)
        if weights is not None:
            values = values * np.float32(weights[i])  # float32 product, as XGBoost's predictor
        n = left.shape[0]
        miss = None
        if not math.isnan(missing):
            m = np.float32(missing)
            miss = (np.full(n, m), np.full(n, m))
        forest.add_tree(
            left, right, tree["split_indices"], below_float32(tree["split_conditions"]),
            np.asarray(tree["default_left"], bool), values if (multi_output or n_out == 1) else values[:, 0],
            missing=miss, cats=cats, target=int(tree_info[i]) if not multi_output else 0,
        )
    iterations = _iterations(model, gb["model"], len(trees_json), 1 if multi_output else n_out)
    return forest, {"objective": objective, "base": base, "n_out": n_out, "n_class": n_class, "iterations": iterations,
                    "categories": _categories(gb["model"])}


def _booster_of(model: Any) -> Any:
    return model.get_booster() if hasattr(model, "get_booster") else model


def _request_categories(ctx: ExportContext, booster: Any, categories: dict[int, list[str]]) -> None:
    """String-category features: the host re-codes values to the training codes, as XGBoost re-codes frames.

    Missing values (NaN) stay NaN (the default direction); a category unseen at
    training raises, as in XGBoost.
    """
    if not categories:
        return
    from ._host_encoding import request_category_column, set_feature_names

    for j, cats in sorted(categories.items()):
        request_category_column(ctx, booster.num_features(), j, cats, missing="nan", unknown="error")
    set_feature_names(ctx, booster.feature_names)


def _margin(ctx: ExportContext, forest: ForestBuilder, x: str, info: dict) -> tuple[str, str]:
    """(margin = trees in the default range + the optional ``base_margin`` input, leaf indices).

    ``base_margin`` ([batch, n_out] float32) defaults to the margin of
    ``base_score``; the iteration spec records which nodes a range slices.
    """
    b = ctx.builder
    iters = info["iterations"]
    indptr, (lo, hi) = iters["indptr"], iters["default"]
    trees = (indptr[lo], indptr[hi])
    base_margin = b.add_input(BASE_MARGIN, "float32", (None, info["n_out"]))
    total = forest.ensemble(ctx, x, tree_range=trees)
    leaf = forest.leaf_index(ctx, x, tree_range=trees, squeeze_single=True)  # pred_leaf of one tree is [B]
    ctx.options["input_defaults"] = {BASE_MARGIN: [float(v) for v in info["base"]]}
    ctx.options["iterations"] = iters | {"nodes": [b.producer(total), b.producer(leaf)]}
    return b.op("Add", total, base_margin), leaf


def convert_xgboost(model: Any, x: str, ctx: ExportContext) -> dict:
    """Any XGBoost sklearn wrapper or ``Booster``: margins, link, heads and leaf indices."""
    booster = _booster_of(model)
    forest, info = _read_forest(model, booster)
    objective, n_out = info["objective"], info["n_out"]
    _request_categories(ctx, booster, info["categories"])
    b = ctx.builder
    margin, leaf = _margin(ctx, forest, x, info)
    out: dict = {"leaf_index": leaf, "__methods__": {"decision_function"}}
    is_classifier = hasattr(model, "classes_") and hasattr(model, "predict_proba")
    if is_classifier:
        classes = np.asarray(model.classes_)
        if classes.shape == (1,) and objective not in ("multi:softprob", "multi:softmax"):
            # fit on one class: XGBoost's predict still returns the column index 0 or 1 and predict_proba two columns
            classes = np.arange(2)
        if objective in ("multi:softprob", "multi:softmax"):
            out |= multiclass_heads(ctx, margin, classes)
        elif n_out != 1:
            raise UnsupportedModelError(f"XGBClassifier with {n_out} outputs (multi-label) is not supported")
        elif objective in _SIGMOID_OUTPUT:  # XGBClassifier treats reg:logistic as binary:logistic
            out |= binary_heads(ctx, margin, classes, proba="sigmoid")
        elif objective == "binary:logitraw":
            # XGBClassifier treats the raw margin as the "probability": label = margin > 0.5, proba = [1-m, m].
            set_classes(ctx, classes)
            d = b.op("Squeeze", margin, axis=1)
            out |= {"decision": d, "label": b.op("Greater", d, threshold=0.5), "probabilities": b.op("TwoClassProba", d)}
        elif objective == "binary:hinge":
            # The output is 0/1 (margin > 0); predict_proba stacks [1 - o, o].
            set_classes(ctx, classes)
            d = b.op("Squeeze", margin, axis=1)
            label = b.op("Greater", d, threshold=0.0)
            out |= {"decision": d, "label": label, "probabilities": b.op("TwoClassProba", b.op("Cast", label, dtype="float32"))}
        else:
            raise UnsupportedModelError(f"XGBClassifier with objective {objective!r} is not supported")
        return out
    # Regressors, rankers and Boosters: predict gives the objective's output.
    out["decision"] = b.op("Squeeze", margin, axis=1) if n_out == 1 else margin
    if objective in _SIGMOID_OUTPUT:
        y = b.op("Sigmoid", margin)
    elif objective in _EXP_OUTPUT:
        y = b.op("Exp", margin)
    elif objective == "multi:softprob":
        y = b.op("Softmax", margin)
    elif objective == "multi:softmax":
        y = b.op("Cast", b.op("ArgMax", margin), dtype="float32")
    elif objective == "binary:hinge":
        y = b.op("Cast", b.op("Greater", margin, threshold=0.0), dtype="float32")
    else:
        y = margin
    out["output"] = b.op("Squeeze", y, axis=1) if (n_out == 1 and objective != "multi:softmax") else y
    return out


def _native(model: Any, method: str, inputs: list) -> Any:
    """How XGBoost computes each exported method (margins for ``decision_function``)."""
    X = inputs[0]
    if method == "decision_function":
        if hasattr(model, "get_booster"):
            return model.predict(X, output_margin=True)
        return model.inplace_predict(X, predict_type="margin")
    if method == "predict" and not hasattr(model, "get_booster"):
        return model.inplace_predict(X)
    return getattr(model, method)(X)


def _build_inputs(model: Any, sample_input: Any, input_shape: Any, builder: Any) -> str:
    booster = _booster_of(model)
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        names = booster.feature_names
    return add_x_input(builder, booster.num_features(), names)


def _load_file(path: str) -> Any:
    """A saved model: the scikit-learn wrapper that saved it (``XGBModel.save_model`` records its type), else a Booster."""
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(path)
    saved_by = json.loads(booster.attr("scikit_learn") or "{}").get("_estimator_type")
    wrapper = {"classifier": xgboost.XGBClassifier, "regressor": xgboost.XGBRegressor, "ranker": xgboost.XGBRanker}.get(saved_by)
    if wrapper is None:
        return booster
    model = wrapper()
    model.load_model(path)  # restores objective, n_classes_ and classes_ as XGBoost does
    return model


for _name in ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor", "XGBModel", "Booster"):
    register_converter(f"xgboost.{_name}", with_native(convert_xgboost, _native, _build_inputs))
register_file_loader(".ubj", _load_file)
register_file_loader(".json", _load_file)
