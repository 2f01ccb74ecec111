"""CatBoost (``CatBoostClassifier``/``CatBoostRegressor``/``CatBoostRanker``/``CatBoost``) → ``TreeEnsemble``.

The model is read from ``save_model(format="json")`` (float32 borders printed
exactly). Semantics reproduced:

- oblivious trees: level ``i`` tests ``splits[i]`` and sets bit ``i`` of the
  leaf index when true; non-symmetric (Depthwise/Lossguide) trees go right
  when the split is true;
- float splits are true iff ``x > border`` (float32) — the op's ``x <= t``
  with the children swapped; NaN counts as false (``nan_mode`` Min, "AsFalse")
  or true (Max, "AsTrue");
- categorical features are hashed on the host as CatBoost hashes them
  (:mod:`mlejax.host_catboost`), which appends after the raw columns the CTR
  values (computed from the stored count tables) and a 0/1 indicator per
  one-hot value; a CTR (``OnlineCtr``) split is true iff the CTR value is
  ``> border``, a one-hot split iff its indicator is ``> 0.5``;
- raw = ``scale * Σ leaves + bias`` (``scale_and_bias``); classifiers apply
  sigmoid (Logloss, CrossEntropy: labels ``raw > 0``), softmax (MultiClass)
  or per-class sigmoid (MultiClassOneVsAll); Poisson and Tweedie regressors
  predict ``exp(raw)``, other losses the raw value.

Text and embedding features, and CTR types other than
:data:`~mlejax.format.host_spec.CTR_TYPES`, raise ``UnsupportedModelError``.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from ..format.errors import UnsupportedModelError
from ..format.host_spec import CTR_TYPES
from ._gbdt_common import ForestBuilder, add_x_input, binary_heads, multiclass_heads, with_native
from ._host_encoding import request_catboost, set_feature_names
from .registry import ExportContext, register_converter, register_file_loader

__all__ = ["convert_catboost"]

_EXP_LOSSES = ("Poisson", "Tweedie")
_INVALID_HASH = (1 << 64) - 1  # an empty slot of CatBoost's hash table


def _save_json(model: Any) -> dict:
    if list(model.get_text_feature_indices()) or list(model.get_embedding_feature_indices()):
        raise UnsupportedModelError("CatBoost models with text or embedding features are not supported")
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    finally:
        os.remove(path)


class _Reader:
    """Turns CatBoost JSON splits into op nodes (input column, threshold, default direction).

    Collects the host spec for categorical features (:mod:`mlejax.host_catboost`) as it goes.
    """

    def __init__(self, d: dict, n_features: int) -> None:
        info = d["features_info"]
        self.n_features = n_features
        self.float_features = {f["feature_index"]: f for f in info.get("float_features") or []}
        cats = sorted(info.get("categorical_features") or [], key=lambda f: f["feature_index"])
        self.cat_columns = [f["flat_feature_index"] for f in cats]
        self.one_hot = {f["feature_index"]: list(dict.fromkeys(int(v) & 0xFFFFFFFF for v in f.get("values") or [])) for f in cats}
        pairs = [(i, v) for i, values in sorted(self.one_hot.items()) for v in values]
        self.one_hot_position = {pair: k for k, pair in enumerate(pairs)}  # indicator columns follow the CTRs
        self.ctrs = info.get("ctrs") or []
        # Binary features are numbered float borders first, then one-hot values, then CTR borders.
        n_binary = sum(len(f.get("borders") or []) for f in self.float_features.values())
        self.first_ctr_split = n_binary + sum(len(v) for v in self.one_hot.values())
        self.ctr_of_split = [(k, b) for k, c in enumerate(self.ctrs) for b in c["borders"]]
        self.ctr_data = d.get("ctr_data") or {}

    @property
    def categorical(self) -> bool:
        return bool(self.cat_columns)

    def split(self, s: dict) -> tuple[int, np.float32, bool]:
        """(input column, float32 threshold, NaN goes left) of the op's ``x <= t`` (CatBoost's split is true: right)."""
        kind = s["split_type"]
        if kind == "FloatFeature":
            f = self.float_features[s["float_feature_index"]]
            return f["flat_feature_index"], np.float32(s["border"]), not self._nan_true(f)
        if kind == "OneHotFeature":
            index, value = s["cat_feature_index"], int(s["value"]) & 0xFFFFFFFF
            if value not in self.one_hot[index]:
                raise UnsupportedModelError(f"CatBoost one-hot split {s['split_index']} tests a value the model does not list")
            column = self.n_features + len(self.ctrs) + self.one_hot_position[(index, value)]
            return column, np.float32(0.5), True
        if kind == "OnlineCtr":
            i = s["split_index"] - self.first_ctr_split
            if not 0 <= i < len(self.ctr_of_split) or self.ctr_of_split[i][1] != s["border"]:
                raise UnsupportedModelError(f"CatBoost CTR split {s['split_index']} does not match the model's CTR list")
            k = self.ctr_of_split[i][0]
            if self.ctrs[k]["target_border_idx"] != s.get("ctr_target_border_idx", self.ctrs[k]["target_border_idx"]):
                raise UnsupportedModelError(f"CatBoost CTR split {s['split_index']} does not match the model's CTR list")
            return self.n_features + k, np.float32(s["border"]), True
        raise UnsupportedModelError(
            f"CatBoost split type {kind!r} is not supported; supported: FloatFeature, OneHotFeature, OnlineCtr"
        )

    @staticmethod
    def _nan_true(f: dict) -> bool:
        return f.get("nan_value_treatment") == "AsTrue"

    def host_spec(self, builder: Any) -> dict:
        """The ``catboost`` host-encoding section, with the CTR tables added to ``builder`` as tensors."""
        tables: list[dict] = []
        table_of: dict[str, int] = {}
        ctrs = []
        for c in self.ctrs:
            if c["ctr_type"] not in CTR_TYPES:
                raise UnsupportedModelError(
                    f"CatBoost CTR type {c['ctr_type']!r} is not supported; supported: {', '.join(CTR_TYPES)}")
            key = c["identifier"]
            if key not in table_of:
                table_of[key] = len(tables)
                tables.append(self._table(c, self.ctr_data.get(key), builder, len(tables)))
            ctrs.append({"table": table_of[key], "type": c["ctr_type"], "target_border_idx": int(c["target_border_idx"]),
                         "prior_num": float(c["prior_numerator"]), "prior_denom": float(c["prior_denomerator"]),
                         "shift": float(c["shift"]), "scale": float(c["scale"])})
        one_hot = [[i, v] for i, v in sorted(self.one_hot.items()) if v]
        return {"cat_columns": self.cat_columns, "one_hot": one_hot, "tables": tables, "ctrs": ctrs}

    def _table(self, ctr: dict, data: dict | None, builder: Any, n: int) -> dict:
        if data is None:
            raise UnsupportedModelError(f"CatBoost CTR {ctr['identifier']} has no stored table")
        cats, floats, one_hots = [], [], []
        for e in ctr["elements"]:
            kind = e["combination_element"]
            if kind == "cat_feature_value":
                cats.append(int(e["cat_feature_index"]))
            elif kind == "float_feature":
                f = self.float_features[e["float_feature_index"]]
                floats.append([f["flat_feature_index"], float(np.float32(e["border"])), self._nan_true(f)])
            elif kind == "cat_feature_exact_value":
                one_hots.append([int(e["cat_feature_index"]), int(e["value"]) & 0xFFFFFFFF])
            else:
                raise UnsupportedModelError(f"CatBoost CTR element {kind!r} is not supported")
        stride = int(data["hash_stride"])
        flat = data["hash_map"]
        rows = [flat[i:i + stride] for i in range(0, len(flat), stride)]
        if any(float(v) != int(v) for r in rows for v in r[1:]):
            raise UnsupportedModelError(f"CatBoost CTR {ctr['identifier']} has non-integer counts")
        rows = sorted((int(r[0]), [int(v) for v in r[1:]]) for r in rows if int(r[0]) != _INVALID_HASH)
        hashes = np.asarray([h for h, _ in rows], np.uint64)
        if np.any(hashes[1:] == hashes[:-1]):
            raise UnsupportedModelError(f"CatBoost CTR {ctr['identifier']} has a table with repeated keys")
        counts = np.asarray([c for _, c in rows], np.int32).reshape(len(rows), stride - 1)
        return {"cats": cats, "floats": floats, "one_hots": one_hots,
                "hashes": builder.tensor(f"catboost_ctr{n}_hashes", hashes),
                "counts": builder.tensor(f"catboost_ctr{n}_counts", counts),
                "counter_denominator": int(data.get("counter_denominator", 0))}


def _oblivious(forest: ForestBuilder, reader: _Reader, tree: dict, width: int, scale: float) -> None:
    splits = tree["splits"] or []  # null for a tree without splits
    depth = len(splits)
    n_inner = (1 << depth) - 1
    n = n_inner + (1 << depth)
    left = np.full(n, -1, np.int64)
    right = np.full(n, -1, np.int64)
    feature = np.zeros(n, np.int64)
    threshold = np.zeros(n, np.float32)
    default_left = np.zeros(n, bool)
    for level, s in enumerate(splits):
        col, thr, nan_left = reader.split(s)
        for p in range(1 << level):
            node = (1 << level) - 1 + p
            left[node] = (1 << (level + 1)) - 1 + 2 * p
            right[node] = left[node] + 1
            feature[node], threshold[node], default_left[node] = col, thr, nan_left
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
    forest.add_tree(left, right, feature, threshold, default_left, values, leaf_ids=leaf_ids)


def _non_symmetric(forest: ForestBuilder, reader: _Reader, tree: dict, width: int, scale: float) -> None:
    left, right, feature, threshold, default_left, values = [], [], [], [], [], []
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
        feature[i], threshold[i], default_left[i] = reader.split(node["split"])
        left[i] = visit(node["left"])
        right[i] = visit(node["right"])
        return i

    visit(tree)
    leaf_ids = np.zeros(len(left), np.int64)
    for n, node in enumerate(_leaves_in_catboost_order(tree)):
        leaf_ids[leaf_of[id(node)]] = n
    forest.add_tree(left, right, feature, threshold, default_left, np.asarray(values), leaf_ids=leaf_ids)


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
    """Any CatBoost model with float, one-hot and CTR categorical features."""
    d = _save_json(model)
    n_features = len(model.feature_names_)
    reader = _Reader(d, n_features)
    scale, bias = d.get("scale_and_bias", [1.0, [0.0]])
    bias = np.atleast_1d(np.asarray(bias, np.float64))
    trees = d.get("oblivious_trees") or d.get("trees") or []
    first = trees[0] if trees else {}
    width = (len(first["leaf_values"]) >> len(first["splits"] or [])) if "splits" in first else max(bias.shape[0], 1)
    if "splits" not in first:  # non-symmetric: read the width from the first leaf
        node = first
        while "split" in node:
            node = node["left"]
        width = np.asarray(node.get("value", [0.0])).size
    forest = ForestBuilder(width, float32_input=True)  # CatBoost rounds its input to float32: scaler thresholds fold
    for tree in trees:
        (_oblivious if "splits" in tree else _non_symmetric)(forest, reader, tree, width, float(scale))
    if reader.categorical:
        request_catboost(ctx, n_features, reader.host_spec(ctx.builder))
        set_feature_names(ctx, _feature_names(model))
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


def _feature_names(model: Any) -> list[str] | None:
    names = [str(n) for n in model.feature_names_]
    return None if names == [str(i) for i in range(len(names))] else names  # placeholders (fitted on arrays): any columns


def _build_inputs(model: Any, sample_input: Any, input_shape: Any, builder: Any) -> str:
    """``X``: the raw columns, then one column per CTR (computed on the host); names only without categoricals."""
    info = _save_json(model)["features_info"]
    if info.get("categorical_features"):
        n_one_hot = sum(len(set(f.get("values") or [])) for f in info["categorical_features"])
        return add_x_input(builder, len(model.feature_names_) + len(info.get("ctrs") or []) + n_one_hot, None)
    return add_x_input(builder, len(model.feature_names_), _feature_names(model))


def _load_file(path: str) -> Any:
    from catboost import CatBoost

    model = CatBoost()
    model.load_model(path)
    return model


for _name in ("CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker", "CatBoost"):
    register_converter(f"catboost.{_name}", with_native(convert_catboost, _native, _build_inputs))
register_file_loader(".cbm", _load_file)
