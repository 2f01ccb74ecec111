"""LightGBM (``LGBMClassifier``/``LGBMRegressor``/``LGBMRanker``/``Booster``) → ``TreeEnsemble``.

The model is read from ``Booster.model_to_string()`` (the ``.txt`` model
format; thresholds are printed with 17 significant digits, so exact), trees
up to the best iteration when one is recorded, as LightGBM's ``predict``
does. Semantics reproduced (``include/LightGBM/tree.h``):

- ``decision_type`` bit 0 categorical, bit 1 default-left, bits 2-3
  missing type (0 None, 1 Zero, 2 NaN);
- the predictor reads inputs with ``|x| <= 1e-35`` as 0.0 (thresholds are
  moved off that band accordingly);
- numeric: NaN becomes 0.0 unless the missing type is NaN; Zero-type nodes
  send ``|x| <= 1e-35`` (and so NaN) to the default child, NaN-type nodes send
  NaN there; otherwise left iff ``x <= threshold`` with a float64 threshold.
  The input is float32, so the threshold is stored as the largest float32
  not above it: decisions are identical for every float32 input. float64
  inputs with more precision than float32 are rounded to float32 first (the
  model input is float32), unless the model is exported with
  ``exact_float64=True``: then the host replaces each numeric value by its
  rank among the feature's float64 thresholds (``mlejax.host``) and the
  thresholds by their ranks, which decides float64 inputs exactly;
- categorical: NaN, ``trunc(x) < 0`` and categories beyond the bitset go
  right; left iff the category's bit is set in ``cat_threshold``;
- ``linear_tree`` models: each leaf's output is its linear model
  ``const + Σ coeff·x``, or its plain value when one of the model's inputs is
  NaN (``LinearTreeSum``);
- raw score = Σ leaves; ``average_output`` models (boosting ``rf``) average
  them for predictions, while ``raw_score=True`` still returns the sum; multiclass trees belong to class ``i % num_tree_per_iteration``;
- objectives: binary / cross_entropy (sigmoid), multiclass (softmax),
  multiclassova (per-class sigmoid, not normalised, as LightGBM), regression
  l2/l1/huber/fair/quantile/mape, lambdarank / rank_xendcg (identity),
  poisson/gamma/tweedie (exp); a custom (callable) objective leaves no
  objective in the model, and LightGBM's ``predict`` (a classifier's
  ``predict`` and ``predict_proba`` too) returns the raw score: so do we;
- models fitted on DataFrames with category columns store the training
  categories (``pandas_categorical``); the host maps values to their codes
  before the graph runs (``mlejax.host``).

LightGBM sums in float64; we sum in float32.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..format.errors import UnsupportedModelError
from ._gbdt_common import (
    ForestBuilder, RankedThresholds, add_x_input, binary_heads, float32_threshold, multiclass_heads, scale, with_native,
)
from .registry import ExportContext, register_converter, register_file_loader

__all__ = ["convert_lightgbm", "parse_model_string"]

_IDENTITY = {"regression", "regression_l1", "huber", "fair", "quantile", "mape", "lambdarank", "rank_xendcg"}
_EXP = {"poisson", "gamma", "tweedie"}
_SIGMOID = {"binary", "cross_entropy"}
#: LightGBM's kZeroThreshold (a float literal widened to double): exactly representable in float32.
_ZERO = np.float32(1e-35)


def parse_model_string(text: str) -> tuple[dict, list[dict]]:
    """Header ``key=value`` pairs and one ``key=value`` dict per ``Tree=`` section."""
    head, _, rest = text.partition("\nTree=")
    header: dict[str, str] = {}
    for line in head.splitlines():
        key, eq, value = line.partition("=")
        header[key.strip()] = value.strip() if eq else ""
    trees = []
    body = rest.split("end of trees")[0] if rest else ""
    for section in re.split(r"\nTree=", "\n" + body if body else ""):
        if not section.strip():
            continue
        tree: dict[str, str] = {}
        for line in section.strip().splitlines():
            key, eq, value = line.partition("=")
            if eq:
                tree[key.strip()] = value.strip()
        trees.append(tree)
    return header, trees


def _arr(tree: dict, key: str, dtype) -> np.ndarray:
    text = tree.get(key, "")
    return np.asarray(text.split(), dtype=np.float64).astype(dtype) if text else np.zeros(0, dtype)


def _objective(header: dict) -> tuple[str, dict]:
    parts = header.get("objective", "").split()
    if not parts:  # trained with a callable objective: LightGBM predicts the raw score
        return "custom", {}
    params = dict(p.split(":", 1) for p in parts[1:] if ":" in p)
    flags = {p for p in parts[1:] if ":" not in p}
    if "sqrt" in flags:
        raise UnsupportedModelError("LightGBM regression with reg_sqrt=True is not supported")
    return parts[0], params


def _linear_leaves(tree: dict, leaf_value: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """(constant, coefficients, feature indexes) of each leaf's linear model; plain trees: value, none."""
    n_leaves = leaf_value.shape[0]
    if tree.get("is_linear", "0") == "0":
        return leaf_value, [np.zeros(0)] * n_leaves, [np.zeros(0, np.int64)] * n_leaves
    counts = _arr(tree, "num_features", np.int64)
    ends = np.cumsum(counts)
    coeff = np.split(_arr(tree, "leaf_coeff", np.float64), ends[:-1])
    feats = np.split(_arr(tree, "leaf_features", np.int64), ends[:-1])
    return _arr(tree, "leaf_const", np.float64), coeff, feats


def _zero_band(t: np.ndarray) -> np.ndarray:
    """Thresholds as seen by inputs: LightGBM's predictor reads ``|x| <= 1e-35`` as 0.0.

    A threshold in ``[-1e-35, 0)`` then splits the inputs as the largest float64
    below ``-1e-35`` does, one in ``[0, 1e-35]`` as ``1e-35``.
    """
    z = float(np.float64(_ZERO))
    return np.where((t >= -z) & (t < 0), np.nextafter(-z, -np.inf), np.where((t >= 0) & (t <= z), z, t))


def _node_arrays(tree: dict) -> tuple[np.ndarray, ...]:
    """(feature, float64 threshold after :func:`_zero_band`, categorical, missing type) of each inner node."""
    dtype = _arr(tree, "decision_type", np.int64)
    is_cat = (dtype & 1) == 1
    t64 = _arr(tree, "threshold", np.float64)
    return _arr(tree, "split_feature", np.int64), np.where(is_cat, t64, _zero_band(t64)), is_cat, (dtype >> 2) & 3


def _ranked_thresholds(trees: list[dict]) -> RankedThresholds:
    """``exact_float64``: per numeric feature, the float64 values its splits compare with.

    Zero-as-missing nodes add the bounds of ``|x| <= 1e-35``: the float32
    constant itself and the largest float64 below its negation.
    """
    values: dict[int, list] = {}
    zero = float(np.float64(_ZERO))
    for tree in trees:
        feature, t64, is_cat, mtype = _node_arrays(tree)
        for f, t, cat, m in zip(feature.tolist(), t64.tolist(), is_cat.tolist(), mtype.tolist()):
            if not cat:
                values.setdefault(f, []).extend([t] + ([np.nextafter(-zero, -np.inf), zero] if m == 1 else []))
    return RankedThresholds(values)


def _add_tree(forest: ForestBuilder, tree: dict, target: int, ranks: RankedThresholds | None = None) -> None:
    """Add one tree; with ``ranks`` (``exact_float64``), numeric thresholds become ranks among the feature's boundaries."""
    n_leaves = int(tree["num_leaves"])
    leaf_value = _arr(tree, "leaf_value", np.float64)
    n_inner = n_leaves - 1
    n = n_inner + n_leaves
    left = np.full(n, -1, np.int64)
    right = np.full(n, -1, np.int64)
    values = np.zeros(n, np.float64)
    values[n_inner:] = leaf_value[:n_leaves]
    leaf_ids = np.zeros(n, np.int64)
    leaf_ids[n_inner:] = np.arange(n_leaves)
    feature = np.zeros(n, np.int64)
    threshold = np.zeros(n, np.float32)
    default_left = np.zeros(n, bool)
    lo = np.full(n, np.inf, np.float32)
    hi = np.full(n, -np.inf, np.float32)
    t_exact = np.zeros(n, np.float64)  # LightGBM compares float64 input: scaler thresholds fold against these
    cats = {}
    if n_inner:
        child = lambda c: np.where(c >= 0, c, n_inner + ~c)  # noqa: E731
        left[:n_inner] = child(_arr(tree, "left_child", np.int64))
        right[:n_inner] = child(_arr(tree, "right_child", np.int64))
        feature[:n_inner], t64, is_cat, mtype = _node_arrays(tree)
        boundaries = _arr(tree, "cat_boundaries", np.int64)
        words = _arr(tree, "cat_threshold", np.uint32)
        dleft = ((_arr(tree, "decision_type", np.int64) >> 1) & 1) == 1
        # None: NaN is treated as 0.0, so it goes where 0.0 goes. Zero: |x| <= 1e-35 (NaN too) → default.
        default_left[:n_inner] = np.where(mtype == 0, 0.0 <= t64, dleft) & ~is_cat  # (0.0 <= t64 survives _zero_band)
        zero = (mtype == 1) & ~is_cat
        t_exact[:n_inner] = np.where(is_cat, 0.0, t64)
        if ranks is None:
            threshold[:n_inner] = float32_threshold(np.where(is_cat, 0.0, t64))
            lo[:n_inner][zero] = -_ZERO
            hi[:n_inner][zero] = _ZERO
        else:  # x <= t iff rank(x) <= rank of t; |x| <= z iff rank(largest below -z) < rank(x) <= rank(z)
            z = float(np.float64(_ZERO))
            for node in np.nonzero(~is_cat)[0]:
                f = int(feature[node])
                threshold[node] = ranks.rank(f, t64[node])
                if zero[node]:
                    lo[node], hi[node] = ranks.rank(f, np.nextafter(-z, -np.inf)) + 1, ranks.rank(f, z)
        for node in np.nonzero(is_cat)[0]:
            k = int(t64[node])
            cats[int(node)] = (words[boundaries[k] : boundaries[k + 1]], False)
    forest.add_tree(left, right, feature, threshold, default_left, values.astype(np.float32),
                    missing=(lo, hi), cats=cats, target=target, leaf_ids=leaf_ids,
                    threshold64=t_exact if ranks is None else None)


def _booster_of(model: Any) -> Any:
    return model.booster_ if hasattr(model, "booster_") else model


def _read(booster: Any, ranks: bool = False) -> tuple[ForestBuilder, dict, str, dict, list[dict], RankedThresholds | None]:
    header, trees = parse_model_string(booster.model_to_string())
    name, params = _objective(header)
    per_iter = int(header.get("num_tree_per_iteration", "1"))
    forest = ForestBuilder(per_iter, per_tree_target=per_iter > 1, cat_lo=-1.0, cat_hi=float(2**31))
    boundaries = _ranked_thresholds(trees) if ranks else None
    for i, tree in enumerate(trees):
        _add_tree(forest, tree, i % per_iter, boundaries)
    return forest, header, name, params, trees, boundaries


def _linear_sum(ctx: ExportContext, forest: ForestBuilder, x: str, trees: list[dict]) -> str:
    """``LinearTreeSum`` of a ``linear_tree`` model: each leaf's linear model, or its value where an input is NaN."""
    values = [_arr(t, "leaf_value", np.float64) for t in trees]
    linear = [_linear_leaves(t, v) for t, v in zip(trees, values)]
    n_leaves = max(v.shape[0] for v in values)
    k = max(1, max((c.shape[0] for _, coeffs, _ in linear for c in coeffs), default=1))
    shape = (len(trees), n_leaves)
    const, value = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    coeff, feature = np.zeros((*shape, k), np.float32), np.zeros((*shape, k), np.int32)
    count = np.zeros(shape, np.int32)
    for t, (v, (c0, coeffs, feats)) in enumerate(zip(values, linear)):
        value[t, : v.shape[0]], const[t, : v.shape[0]] = v, c0
        for leaf, (c, f) in enumerate(zip(coeffs, feats)):
            coeff[t, leaf, : c.shape[0]], feature[t, leaf, : f.shape[0]], count[t, leaf] = c, f, c.shape[0]
    per_iter = forest.n_targets
    b = ctx.builder
    stored = [b.tensor(f"lgbm.linear_{name}", a) for name, a in (
        ("const", const), ("value", value), ("coeff", coeff), ("feature", feature), ("count", count),
        ("tree_target", np.arange(len(trees), dtype=np.int32) % per_iter))]
    return b.op("LinearTreeSum", x, forest.leaf_index(ctx, x), *stored, n_targets=per_iter)


def _request_pandas_categories(ctx: ExportContext, booster: Any, header: dict) -> None:
    """Models fitted on DataFrames with category columns: the host turns values into LightGBM's codes.

    LightGBM codes a category column by the position of the value in the
    training categories (``pandas_categorical``); unknown values and NaN become
    NaN, which its categorical splits send right, as our code -1 is.
    """
    pandas_categorical = getattr(booster, "pandas_categorical", None)
    if not pandas_categorical:
        return
    from ._host_encoding import request_category_column, set_feature_names

    infos = header.get("feature_infos", "").split()
    columns = [i for i, info in enumerate(infos) if info != "none" and not info.startswith("[")]
    if len(columns) != len(pandas_categorical):
        raise UnsupportedModelError(
            f"LightGBM model has {len(pandas_categorical)} pandas category columns but {len(columns)} categorical "
            "features; categorical_feature must name exactly the DataFrame's category columns"
        )
    for col, cats in zip(columns, pandas_categorical):
        request_category_column(ctx, len(infos), col, [str(c) for c in cats], missing=None, unknown="code")
    set_feature_names(ctx, booster.feature_name())


def convert_lightgbm(model: Any, x: str, ctx: ExportContext) -> dict:
    """Any LightGBM sklearn wrapper or ``Booster``."""
    booster = _booster_of(model)
    exact = bool(ctx.options.pop("exact_float64", False))
    forest, header, objective, params, trees, boundaries = _read(booster, ranks=exact)
    _request_pandas_categories(ctx, booster, header)
    if objective not in _IDENTITY | _EXP | _SIGMOID | {"multiclass", "multiclassova", "custom"}:
        raise UnsupportedModelError(
            f"LightGBM objective {objective!r} is not supported; supported: "
            f"{sorted(_IDENTITY | _EXP | _SIGMOID | {'multiclass', 'multiclassova'})} and custom (callable) objectives"
        )
    b = ctx.builder
    linear = any(t.get("is_linear", "0") != "0" for t in trees)
    if boundaries is not None:
        if linear:
            raise UnsupportedModelError("exact_float64 is not supported for LightGBM linear_tree models (leaves read raw inputs)")
        boundaries.request(ctx, booster.num_feature(), _feature_names(booster))
    total = _linear_sum(ctx, forest, x, trees) if linear else forest.ensemble(ctx, x)
    n_out = forest.n_targets
    # average_output (boosting "rf"): predictions average the trees, but raw_score stays their sum.
    raw = scale(ctx, total, 1.0 / (len(forest.trees) // n_out)) if "average_output" in header else total
    sigmoid = float(params.get("sigmoid", 1.0))
    out: dict = {"leaf_index": forest.leaf_index(ctx, x), "__methods__": {"decision_function", "apply"}}
    if objective == "custom":  # as LightGBM: predict (and a classifier's predict_proba) return the raw score
        out["decision"] = b.op("Squeeze", total, axis=1) if n_out == 1 else total
        out["output"] = b.op("Squeeze", raw, axis=1) if n_out == 1 else raw
        if hasattr(model, "classes_"):
            out["probabilities"] = out["output"]
        return out
    if hasattr(model, "classes_"):
        if objective == "multiclass":
            out |= multiclass_heads(ctx, raw, model.classes_)
        elif objective == "multiclassova":
            out |= multiclass_heads(ctx, raw, model.classes_, proba="sigmoid", sigmoid_scale=sigmoid)
        elif objective in _SIGMOID:
            out |= binary_heads(ctx, raw, model.classes_, proba="sigmoid", sigmoid_scale=sigmoid)
        else:
            raise UnsupportedModelError(f"LGBMClassifier with objective {objective!r} is not supported")
        out["decision"] = b.op("Squeeze", total, axis=1) if n_out == 1 else total
        return out
    out["decision"] = b.op("Squeeze", total, axis=1) if n_out == 1 else total
    if objective == "multiclass":
        y = b.op("Softmax", raw)
    elif objective in _SIGMOID or objective == "multiclassova":
        y = b.op("Sigmoid", raw if sigmoid == 1.0 or objective == "cross_entropy" else scale(ctx, raw, sigmoid))
    elif objective in _EXP:
        y = b.op("Exp", raw)
    else:
        y = raw
    out["output"] = b.op("Squeeze", y, axis=1) if n_out == 1 else y
    return out


def _native(model: Any, method: str, inputs: list) -> Any:
    """How LightGBM computes each exported method."""
    X = inputs[0]
    if method == "decision_function":
        return model.predict(X, raw_score=True)
    if method == "apply":
        return model.predict(X, pred_leaf=True)
    return getattr(model, method)(X)


def _feature_names(booster: Any) -> list[str] | None:
    names = [str(n) for n in booster.feature_name()]
    return None if names == [f"Column_{i}" for i in range(len(names))] else names  # placeholders: any columns


def _build_inputs(model: Any, sample_input: Any, input_shape: Any, builder: Any) -> str:
    booster = _booster_of(model)
    return add_x_input(builder, booster.num_feature(), _feature_names(booster))


def _load_file(path: str) -> Any:
    import lightgbm

    return lightgbm.Booster(model_file=path)


for _name in ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel", "Booster"):
    register_converter(f"lightgbm.{_name}", with_native(convert_lightgbm, _native, _build_inputs))
register_file_loader(".txt", _load_file)
