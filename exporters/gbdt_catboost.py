"""CatBoost (``CatBoostClassifier``/``CatBoostRegressor``/``CatBoostRanker``/``CatBoost``) → ``TreeEnsemble``.

The model is read from ``save_model(format="json")`` (float32 borders printed
exactly). Semantics reproduced:

- oblivious trees: level ``i`` tests ``splits[i]`` and sets bit ``i`` of the
  leaf index when true; non-symmetric (Depthwise/Lossguide) trees go right
  when the split is true;
- float splits are true iff ``x > border`` (float32) — the op's ``x <= t``
  with the children swapped; NaN counts as false (``nan_mode`` Min, "AsFalse")
  or true (Max, "AsTrue");
- one-hot categorical splits are true iff the category equals the split's
  value. CatBoost compares hashes of the category's string form; we find,
  with CatBoost's own hashing, which integer codes ``0..65535`` the split
  values stand for, so categorical inputs arrive as float32 integer codes
  (the integers, or digit strings, CatBoost was trained on). Other values
  never match;
- raw = ``scale * Σ leaves + bias`` (``scale_and_bias``); classifiers apply
  sigmoid (Logloss, CrossEntropy: labels ``raw > 0``), softmax (MultiClass)
  or per-class sigmoid (MultiClassOneVsAll); Poisson and Tweedie regressors
  predict ``exp(raw)``, other losses the raw value.

CTR-based categorical features (``OnlineCtr`` splits), text and embedding
features are not supported and raise ``UnsupportedModelError``.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from ..format.errors import UnsupportedModelError
from ._gbdt_common import ForestBuilder, add_x_input, binary_heads, bitset_words, multiclass_heads, with_native
from .registry import ExportContext, register_converter, register_file_loader

__all__ = ["convert_catboost"]

#: One-hot category values are looked up among the integer codes below this bound.
_MAX_CODE = 1 << 16
_EXP_LOSSES = ("Poisson", "Tweedie")


def _save_json(model: Any, pool: Any = None) -> dict:
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        model.save_model(path, format="json", pool=pool)
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    finally:
        os.remove(path)


def _code_of_hash(model: Any, info: dict) -> dict[int, int]:
    """uint32 hash → integer code, for codes ``0.._MAX_CODE - 1``, via CatBoost's own hashing."""
    from catboost import Pool

    n_flat = 1 + max(f["flat_feature_index"] for kind in ("float_features", "categorical_features") for f in info.get(kind, []))
    cat_cols = [f["flat_feature_index"] for f in info["categorical_features"]]
    codes = np.arange(_MAX_CODE).astype(str)
    columns = [codes if i in cat_cols else np.zeros(_MAX_CODE, np.float32) for i in range(n_flat)]
    data = np.empty((_MAX_CODE, n_flat), dtype=object)
    for i, col in enumerate(columns):
        data[:, i] = col
    hashes = _save_json(model, Pool(data, cat_features=cat_cols))["features_info"].get("cat_features_hash", [])
    out = {}
    for entry in hashes:
        try:
            out[int(entry["hash"]) & 0xFFFFFFFF] = int(entry["value"])
        except ValueError:
            continue
    return out


class _Reader:
    """Turns CatBoost JSON splits into op nodes (threshold, default direction, categorical sets)."""

    def __init__(self, model: Any, d: dict) -> None:
        info = d["features_info"]
        if info.get("text_features") or info.get("embedding_features"):
            raise UnsupportedModelError("CatBoost models with text or embedding features are not supported")
        self.float_features = {f["feature_index"]: f for f in info.get("float_features", [])}
        self.cat_features = {f["feature_index"]: f for f in info.get("categorical_features", [])}
        self.model = model
        self.info = info
        self._codes: dict[int, int] | None = None

    def split(self, s: dict) -> tuple[int, float, bool, tuple | None]:
        """(input column, float32 threshold, NaN goes left, categorical (left words, other_left) or None)."""
        kind = s["split_type"]
        if kind == "FloatFeature":
            f = self.float_features[s["float_feature_index"]]
            return f["flat_feature_index"], np.float32(s["border"]), f.get("nan_value_treatment") != "AsTrue", None
        if kind == "OneHotFeature":
            f = self.cat_features[s["cat_feature_index"]]
            if self._codes is None:
                self._codes = _code_of_hash(self.model, self.info)
            code = self._codes.get(int(s["value"]) & 0xFFFFFFFF)
            if code is None:
                raise UnsupportedModelError(
                    f"CatBoost one-hot split on feature {f['flat_feature_index']} uses a category that is not an integer "
                    f"code in [0, {_MAX_CODE}); train on integer category codes"
                )
            # True (right) iff the category equals `code`: the left set is every other category.
            return f["flat_feature_index"], np.float32(0), True, (~bitset_words([code]), True)
        raise UnsupportedModelError(
            f"CatBoost split type {kind!r} is not supported (CTR-based categorical features need CatBoost's "
            "target-statistic tables); supported: FloatFeature, OneHotFeature"
        )


def _oblivious(forest: ForestBuilder, reader: _Reader, tree: dict, width: int, scale: float) -> None:
    splits = tree["splits"]
    depth = len(splits)
    n_inner = (1 << depth) - 1
    n = n_inner + (1 << depth)
    left = np.full(n, -1, np.int64)
    right = np.full(n, -1, np.int64)
    feature = np.zeros(n, np.int64)
    threshold = np.zeros(n, np.float32)
    default_left = np.zeros(n, bool)
    cats = {}
    for level, s in enumerate(splits):
        col, thr, nan_left, cat = reader.split(s)
        for p in range(1 << level):
            node = (1 << level) - 1 + p
            left[node] = (1 << (level + 1)) - 1 + 2 * p
            right[node] = left[node] + 1
            feature[node], threshold[node], default_left[node] = col, thr, nan_left
            if cat is not None:
                cats[node] = cat
    leaf_values = np.asarray(tree["leaf_values"], np.float64).reshape(1 << depth, width) * scale
    # Leaf at path p (first split = most significant bit) has CatBoost index bit-reverse(p).
    paths = np.arange(1 << depth)
    index = np.zeros_like(paths)
    for level in range(depth):
        index |= ((paths >> (depth - 1 - level)) & 1) << level
    values = np.zeros((n, width), np.float64)
    values[n_inner:] = leaf_values[index]
    leaf_ids = np.zeros(n, np.int64)
    leaf_ids[n_inner:] = index
    forest.add_tree(left, right, feature, threshold, default_left, values, cats=cats, leaf_ids=leaf_ids)


def _non_symmetric(forest: ForestBuilder, reader: _Reader, tree: dict, width: int, scale: float) -> None:
    left, right, feature, threshold, default_left, values = [], [], [], [], [], []
    cats = {}
    leaf_of: dict[int, dict] = {}

    def visit(node: dict) -> int:
        i = len(left)
        for lst, v in ((left, -1), (right, -1), (feature, 0), (threshold, 0.0), (default_left, False)):
            lst.append(v)
        values.append(np.zeros(width))
        leaf_of[id(node)] = i
        if "split" not in node:
            values[i] = np.asarray(node["value"], np.float64).reshape(width) * scale
            return i
        col, thr, nan_left, cat = reader.split(node["split"])
        feature[i], threshold[i], default_left[i] = col, thr, nan_left
        if cat is not None:
            cats[i] = cat
        left[i] = visit(node["left"])
        right[i] = visit(node["right"])
        return i

    visit(tree)
    leaf_ids = np.zeros(len(left), np.int64)
    for n, node in enumerate(_leaves_in_catboost_order(tree)):
        leaf_ids[leaf_of[id(node)]] = n
    forest.add_tree(left, right, feature, threshold, default_left, np.asarray(values), cats=cats, leaf_ids=leaf_ids)


def _leaves_in_catboost_order(node: dict) -> list:
    """CatBoost's leaf numbering of a non-symmetric tree (``calc_leaf_indexes``), as observed: at each
    split, its leaf children first (left, right), then the leaves under its split children (left, right)."""
    if "split" not in node:
        return [node]
    kids = (node["left"], node["right"])
    return [k for k in kids if "split" not in k] + [leaf for k in kids if "split" in k for leaf in _leaves_in_catboost_order(k)]


def _loss_name(model: Any) -> str:
    loss = model.get_all_params().get("loss_function", "")
    return str(loss).split(":")[0]


def convert_catboost(model: Any, x: str, ctx: ExportContext) -> dict:
    """Any CatBoost model with float and one-hot categorical features."""
    d = _save_json(model)
    reader = _Reader(model, d)
    scale, bias = d.get("scale_and_bias", [1.0, [0.0]])
    bias = np.atleast_1d(np.asarray(bias, np.float64))
    trees = d.get("oblivious_trees") or d.get("trees") or []
    first = trees[0] if trees else {}
    width = (len(first["leaf_values"]) >> len(first["splits"])) if "splits" in first else max(bias.shape[0], 1)
    if "splits" not in first:  # non-symmetric: read the width from the first leaf
        node = first
        while "split" in node:
            node = node["left"]
        width = np.asarray(node.get("value", [0.0])).size
    forest = ForestBuilder(width, cat_lo=float(-np.float32(1.4e-45)), cat_hi=float(_MAX_CODE), cat_integer=True)
    for tree in trees:
        (_oblivious if "splits" in tree else _non_symmetric)(forest, reader, tree, width, float(scale))
    raw = forest.ensemble(ctx, x, base=np.broadcast_to(bias, (width,)))
    loss = _loss_name(model)
    b = ctx.builder
    out: dict = {"leaf_index": forest.leaf_index(ctx, x), "__methods__": {"decision_function", "apply"}}
    if hasattr(model, "predict_proba") and hasattr(model, "classes_") and type(model).__name__ == "CatBoostClassifier":
        if loss in ("Logloss", "CrossEntropy") and width == 1:
            return out | binary_heads(ctx, raw, model.classes_, proba="sigmoid", label_from_margin=True)
        if loss in ("MultiClass", "MultiClassOneVsAll"):
            heads = multiclass_heads(ctx, raw, model.classes_, proba="softmax" if loss == "MultiClass" else "sigmoid")
            heads["label"] = b.op("Reshape", heads["label"], shape=[1])  # CatBoost's multiclass predict is [n, 1]
            return out | heads
        raise UnsupportedModelError(f"CatBoostClassifier with loss {loss!r} is not supported; supported: Logloss, "
                                    "CrossEntropy, MultiClass, MultiClassOneVsAll")
    if loss == "RMSEWithUncertainty":
        raise UnsupportedModelError("CatBoost RMSEWithUncertainty is not supported")
    y = b.op("Squeeze", raw, axis=1) if width == 1 else raw
    out["decision"] = y
    exp = type(model).__name__ == "CatBoostRegressor" and loss.startswith(_EXP_LOSSES)
    out["output"] = b.op("Exp", y) if exp else y
    return out


def _native(model: Any, method: str, inputs: list) -> Any:
    """How CatBoost computes each exported method."""
    X = inputs[0]
    if method == "decision_function":
        if type(model).__name__ == "CatBoostRanker":  # its predict has no prediction_type: always raw
            return model.predict(X)
        return model.predict(X, prediction_type="RawFormulaVal")
    if method == "apply":
        return model.calc_leaf_indexes(X)
    return getattr(model, method)(X)


def _build_inputs(model: Any, sample_input: Any, input_shape: Any, builder: Any) -> str:
    names = list(model.feature_names_)
    if names == [str(i) for i in range(len(names))]:
        names = None  # CatBoost's placeholder names (fitted on arrays): accept any columns
    return add_x_input(builder, len(model.feature_names_), names)


def _load_file(path: str) -> Any:
    from catboost import CatBoost

    model = CatBoost()
    model.load_model(path)
    return model


for _name in ("CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker", "CatBoost"):
    register_converter(f"catboost.{_name}", with_native(convert_catboost, _native, _build_inputs))
register_file_loader(".cbm", _load_file)
