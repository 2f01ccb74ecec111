"""scikit-learn ensembles: ExtraTrees, GradientBoosting, AdaBoost, Bagging, IsolationForest, Voting, Stacking.

Members that are sklearn decision trees are merged into one ``TreeEnsemble``
whose leaf values already hold each tree's contribution (its readout — class
fractions, one-hot vote or regression value — mapped through a per-member
matrix that places it in its output columns and applies its weight: the
learning rate, an AdaBoost code, ``1/n_estimators``). Other members are
converted with ``ctx.convert`` on their column subset and combined with core
ops. scikit-learn sums in float64; here every sum is float32, so outputs agree
to about ``n_members * 6e-8`` relative to the summed magnitudes.

Exact-label rules reproduced: GradientBoosting binary ``raw >= 0``; AdaBoost
binary ``decision > 0``; argmax ties go to the first class; hard voting with
non-integer weights uses a table of sklearn's own float64 ``bincount`` argmax
over every combination of member votes.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import classifier_from_proba, set_classes
from .registry import ExportContext, register_converter
from .sklearn_tree import add_leaf_index, add_tree_ensemble, convert_tree_classifier, convert_tree_regressor, tree_arrays

#: Largest number of vote combinations tabulated for weighted hard voting.
_MAX_VOTE_TABLE = 1 << 20


# --- small graph helpers ----------------------------------------------------------------


def _const(ctx: ExportContext, hint: str, value, dtype=np.float32) -> str:
    """A stored constant of at least one dimension (broadcasts against [B, ...])."""
    return ctx.builder.tensor(hint, np.atleast_1d(np.asarray(value, dtype=dtype)))


def _select_columns(ctx: ExportContext, x: str, features, n_features: int) -> str:
    """``x[:, features]``, or ``x`` itself when ``features`` is every column in order."""
    if features is None:
        return x
    features = np.asarray(features, dtype=np.int64)
    if np.array_equal(features, np.arange(n_features)):
        return x
    return ctx.builder.op("Take", x, ctx.builder.tensor("features", features, np.int32), axis=1)


def _sum(ctx: ExportContext, values: list) -> str:
    """Σ values, left to right."""
    total = values[0]
    for v in values[1:]:
        total = ctx.builder.op("Add", total, v)
    return total


def _is_tree(est) -> bool:
    from sklearn.tree import BaseDecisionTree

    return isinstance(est, BaseDecisionTree)


def _class_positions(member_classes, classes, what: str) -> np.ndarray:
    """Index in ``classes`` of each of ``member_classes``."""
    classes = np.asarray(classes)
    member_classes = np.asarray(member_classes)
    pos = np.searchsorted(classes, member_classes)
    pos = np.minimum(pos, len(classes) - 1)
    if not np.all(classes[pos] == member_classes):
        raise UnsupportedModelError(f"{what}: member classes {member_classes.tolist()} are not among {classes.tolist()}")
    return pos


def _scatter(positions, n_cols: int, weight: float = 1.0) -> np.ndarray:
    """[len(positions), n_cols] matrix with ``weight`` at (i, positions[i])."""
    m = np.zeros((len(positions), n_cols))
    m[np.arange(len(positions)), positions] = weight
    return m


def _member_trees(members: list) -> dict:
    """:func:`tree_arrays` of ``members`` = [(tree_, features or None, leaf values [n_nodes, n_out])].

    ``features`` maps a tree's feature indices to input columns (a member fit on a column subset).
    """
    values = {id(tree): v for tree, _, v in members}
    arrays = tree_arrays([tree for tree, _, _ in members], lambda tree: values[id(tree)])
    feature = arrays["feature"]
    offset = 0
    for tree, features, _ in members:
        if features is not None:  # leaves read column 0 of the subset; their feature is never used
            segment = slice(offset, offset + tree.node_count)
            feature[segment] = np.asarray(features)[feature[segment]]
        offset += tree.node_count
    return arrays


def _add_trees(ctx: ExportContext, x: str, members: list, *, base=None) -> str:
    """One summed ``TreeEnsemble`` over ``members`` (as :func:`_member_trees`)."""
    return add_tree_ensemble(ctx, x, _member_trees(members), aggregate="sum", base=base)


def _tree_readout(est, kind: str) -> np.ndarray:
    """Per-node value of a fitted sklearn tree as [n_nodes, k]: what ``kind`` reads at its leaves."""
    value = est.tree_.value
    if kind == "output":
        return value[:, :, 0]
    if est.n_outputs_ != 1:
        raise UnsupportedModelError(f"{type(est).__name__} with {est.n_outputs_} outputs as an ensemble member")
    proba = value[:, 0, : len(est.classes_)]
    if kind == "probabilities":
        return proba
    return np.eye(proba.shape[1])[np.argmax(proba, axis=1)]  # "label": one-hot of the predicted class


def _member_value(ctx: ExportContext, est, x: str, kind: str, width: int) -> str:
    """Convert ``est`` on ``x`` and return its ``kind`` output; float outputs are reshaped to [B, width]."""
    out = ctx.convert_member(est, x)
    if kind not in out:
        raise UnsupportedModelError(f"ensemble member {type(est).__name__} gives no {kind!r} output; it gives {sorted(out)}")
    if kind == "label":
        return out[kind]
    return ctx.builder.op("Reshape", out[kind], shape=[width])


def _apply_matrix(ctx: ExportContext, value: str, kind: str, m: np.ndarray) -> str:
    """``m[label]`` for labels, else ``value @ m`` (a scalar multiple of the identity becomes a Mul)."""
    b = ctx.builder
    if kind == "label":
        return b.op("Take", b.tensor("vote", m, np.float32), value, axis=0)
    if m.shape[0] == m.shape[1] and np.array_equal(m, m[0, 0] * np.eye(m.shape[0])):
        return value if m[0, 0] == 1 else b.op("Mul", value, _const(ctx, "weight", m[0, 0]))
    return b.op("MatMul", value, b.tensor("readout", m, np.float32))


def _combine(ctx: ExportContext, x: str, members: list, kind: str, n_features: int) -> str:
    """Σ over ``members`` = [(est, features, m)] of the member's ``kind`` readout mapped through ``m``.

    ``kind`` is ``"probabilities"`` (P [B, k] @ m), ``"output"`` (Y [B, k] @ m) or
    ``"label"`` (row ``m[label]``); ``m`` has one row per member class or output.
    Tree members share one ``TreeEnsemble``.
    """
    trees = [(est.tree_, f, _tree_readout(est, kind) @ m) for est, f, m in members if _is_tree(est)]
    terms = [_add_trees(ctx, x, trees)] if trees else []
    for est, features, m in members:
        if not _is_tree(est):
            value = _member_value(ctx, est, _select_columns(ctx, x, features, n_features), kind, m.shape[0])
            terms.append(_apply_matrix(ctx, value, kind, m))
    return _sum(ctx, terms)


def _boosting_heads(ctx: ExportContext, decision: str, n_classes: int, *, scale: float, binary: str) -> dict:
    """Heads from a boosting decision [B, K] (K = 1 when binary).

    Multiclass: probabilities ``softmax(scale * decision)``, label argmax.
    Binary, ``binary="gb"`` (GradientBoosting): ``[1 - expit(z), expit(z)]``
    with ``z = 2 * scale * d`` as sklearn's float64 rounds it, label ``d >= 0``.
    Binary, ``binary="adaboost"``: ``softmax([-scale*d, scale*d])``, label ``d > 0``.
    Log-probabilities are ``-inf`` exactly where sklearn's float64 probabilities are 0.
    """
    b = ctx.builder
    if n_classes > 2:
        logits = decision if scale == 1 else b.op("Mul", decision, _const(ctx, "scale", scale))
        return {
            "decision": decision,
            "label": b.op("ArgMax", decision),
            "probabilities": b.op("Softmax", logits),
            "log_probabilities": b.op("LogSoftmaxFloat64", logits),
        }
    d = b.op("Squeeze", decision, axis=1)
    if binary == "gb":
        z = b.op("Mul", d, _const(ctx, "scale", 2 * scale))
        return {
            "decision": d,
            "label": b.op("GreaterEqual", d, threshold=0.0),
            "probabilities": b.op("LogisticPairFloat64", z, log=False),
            "log_probabilities": b.op("LogisticPairFloat64", z, log=True),
        }
    z = b.op("Mul", decision, _const(ctx, "scale", scale))
    logits = b.op("Concat", b.op("Neg", z), z, axis=1)
    return {
        "decision": d,
        "label": b.op("Greater", d, threshold=0.0),
        "probabilities": b.op("Softmax", logits),
        "log_probabilities": b.op("LogSoftmaxFloat64", logits),
    }


# --- gradient boosting ------------------------------------------------------------------


def _gb_init(model, x: str, ctx: ExportContext):
    """GradientBoosting's initial raw prediction: ``(constant [K] or None, value name [B, K] or None)``."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    init = model.init_
    k = model.n_trees_per_iteration_
    if isinstance(init, str):  # "zero"
        return np.zeros(k), None
    constant = isinstance(init, DummyRegressor) or (
        isinstance(init, DummyClassifier) and init.strategy in ("prior", "most_frequent", "constant")
    )
    if constant:  # sklearn's own float64 computation on any row
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model._raw_predict_init(np.zeros((1, model.n_features_in_), np.float32))[0], None
    b = ctx.builder
    if not hasattr(model, "classes_"):
        return None, _member_value(ctx, init, x, "output", 1)
    # _init_raw_predictions: clip probabilities to [eps, 1 - eps], then the loss's link.
    proba = _member_value(ctx, init, x, "probabilities", model.n_classes_)
    eps = _const(ctx, "eps", np.finfo(np.float64).eps)
    if k == 1:
        p = b.op("Take", proba, b.tensor("positive", np.array([1], np.int32)), axis=1)
        q = b.op("Sub", _const(ctx, "one", 1.0), p)
        raw = b.op("Sub", b.op("Log", b.op("Max", p, eps)), b.op("Log", b.op("Max", q, eps)))
        return None, raw if model.loss == "log_loss" else b.op("Mul", raw, _const(ctx, "half", 0.5))
    log_p = b.op("Log", b.op("Max", proba, eps))
    centre = np.eye(k) - 1.0 / k  # log p - mean(log p) = log(p / gmean(p))
    return None, b.op("MatMul", log_p, b.tensor("centre", centre, np.float32))


def convert_gradient_boosting(model, x: str, ctx: ExportContext) -> dict:
    """GradientBoostingClassifier/Regressor: init + learning_rate × Σ trees (K trees per stage)."""
    k = model.n_trees_per_iteration_
    lr = float(model.learning_rate)
    members = []
    for stage in model.estimators_:
        for col, est in enumerate(stage):
            values = np.zeros((est.tree_.node_count, k))
            values[:, col] = lr * est.tree_.value[:, 0, 0]
            members.append((est.tree_, None, values))
    base, init_raw = _gb_init(model, x, ctx)
    arrays = _member_trees(members)
    raw = add_tree_ensemble(ctx, x, arrays, aggregate="sum", base=base)
    # apply: node ids [B, n_estimators, K] (classifier) or [B, n_estimators] (regressor); sklearn gives float64
    leaves = add_leaf_index(ctx, x, arrays)
    out = {"leaf_index": ctx.builder.op("Reshape", leaves, shape=[len(model.estimators_), k]) if hasattr(model, "classes_") else leaves}
    if init_raw is not None:
        raw = ctx.builder.op("Add", raw, init_raw)
    if not hasattr(model, "classes_"):
        return out | {"output": ctx.builder.op("Squeeze", raw, axis=1)}
    set_classes(ctx, model.classes_)
    scale = 1.0 if (k > 1 or model.loss == "exponential") else 0.5
    return out | _boosting_heads(ctx, raw, model.n_classes_, scale=scale, binary="gb")


# --- AdaBoost ---------------------------------------------------------------------------


def convert_adaboost_classifier(model, x: str, ctx: ExportContext) -> dict:
    """AdaBoostClassifier (SAMME): Σ w_i·code(prediction_i) / Σw, softmax of decision/(K-1)."""
    n_classes = int(model.n_classes_)
    if n_classes < 2:
        raise UnsupportedModelError("AdaBoostClassifier fit on a single class is not supported")
    total = float(np.sum(model.estimator_weights_))
    members = []
    for est, w in zip(model.estimators_, model.estimator_weights_):
        pos = _class_positions(est.classes_, model.classes_, "AdaBoostClassifier")
        codes = np.where(np.eye(n_classes, dtype=bool)[pos], w, -w / (n_classes - 1)) / total  # [k_est, K]
        if n_classes == 2:  # decision = code[:, 1] - code[:, 0]
            codes = codes[:, 1:] - codes[:, :1]
        members.append((est, None, codes))
    decision = _combine(ctx, x, members, "label", model.n_features_in_)
    set_classes(ctx, model.classes_)
    return _boosting_heads(ctx, decision, n_classes, scale=1.0 / (n_classes - 1) if n_classes > 2 else 0.5, binary="adaboost")


def convert_adaboost_regressor(model, x: str, ctx: ExportContext) -> dict:
    """AdaBoostRegressor (AdaBoost.R2): weighted median of the member predictions."""
    n = len(model.estimators_)
    members = [(est, None, np.eye(n)[i : i + 1]) for i, est in enumerate(model.estimators_)]
    predictions = _combine(ctx, x, members, "output", model.n_features_in_)
    weights = ctx.builder.tensor("estimator_weights", model.estimator_weights_[:n], np.float32)
    return {"output": ctx.builder.op("WeightedMedian", predictions, weights)}


# --- bagging ----------------------------------------------------------------------------


def convert_bagging_classifier(model, x: str, ctx: ExportContext) -> dict:
    """BaggingClassifier: mean member probabilities, or vote fractions for members without predict_proba."""
    n_classes = int(model.n_classes_)
    n = len(model.estimators_)
    b = ctx.builder
    members = []
    for est, features in zip(model.estimators_, model.estimators_features_):
        kind = "probabilities" if hasattr(est, "predict_proba") else "label"
        members.append((est, features, kind, _scatter(est.classes_, n_classes, 1.0 / n)))
    out = _bagging_log_space(ctx, x, model)
    if out is None:
        parts = []
        for kind in ("probabilities", "label"):
            group = [(e, f, m) for e, f, k, m in members if k == kind]
            if group:
                parts.append(_combine(ctx, x, group, kind, model.n_features_in_))
        out = classifier_from_proba(ctx, _sum(ctx, parts))
    if hasattr(model, "decision_function"):
        if any(len(e.classes_) != n_classes for e in model.estimators_):
            raise UnsupportedModelError("BaggingClassifier.decision_function with members that saw only some classes")
        width = 1 if n_classes == 2 else n_classes
        group = [(e, f, np.eye(width) / n) for e, f in zip(model.estimators_, model.estimators_features_)]
        decision = _combine(ctx, x, group, "decision", model.n_features_in_)
        out["decision"] = b.op("Squeeze", decision, axis=1) if width == 1 else decision
    set_classes(ctx, model.classes_)
    return out


def _bagging_log_space(ctx: ExportContext, x: str, model) -> dict | None:
    """Members with ``predict_log_proba`` and every class: sklearn's log-space mean, else None.

    scikit-learn's ``predict_log_proba`` is then ``logaddexp`` over the members'
    log-probabilities minus ``log(n_estimators)``, which keeps probabilities
    near 1 (``log p`` near 0) that ``log(mean p)`` in float32 rounds away.
    """
    n_classes = int(model.n_classes_)
    if not all(hasattr(e, "predict_log_proba") and not _is_tree(e) and len(e.classes_) == n_classes for e in model.estimators_):
        return None
    b = ctx.builder
    probas, logs = [], []
    for est, features in zip(model.estimators_, model.estimators_features_):
        member = ctx.convert_member(est, _select_columns(ctx, x, features, model.n_features_in_))
        if "log_probabilities" not in member or "probabilities" not in member:
            return None
        probas.append(b.op("Reshape", member["probabilities"], shape=[n_classes]))
        logs.append(b.op("Reshape", member["log_probabilities"], shape=[1, n_classes]))
    n = len(model.estimators_)
    proba = b.op("Mul", _sum(ctx, probas), _const(ctx, "weight", 1.0 / n))
    log_mean = b.op("Sub", b.op("LogSumExp", b.op("Concat", *logs, axis=1), axis=1), _const(ctx, "log_n", np.log(n)))
    return {"probabilities": proba, "label": b.op("ArgMax", proba), "log_probabilities": log_mean}


def _output_width(est, n_in: int) -> int | None:
    """Number of columns of ``est.predict`` (``None`` when it returns 1-D), asked of ``est`` on one row."""
    if _is_tree(est):
        return None if est.n_outputs_ == 1 else est.n_outputs_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = np.asarray(est.predict(np.zeros((1, n_in), np.float32)))
    return None if y.ndim == 1 else y.shape[1]


def convert_bagging_regressor(model, x: str, ctx: ExportContext) -> dict:
    """BaggingRegressor: mean of the member predictions (multi-output too)."""
    n = len(model.estimators_)
    width = _output_width(model.estimators_[0], len(model.estimators_features_[0]))
    members = [(e, f, np.eye(width or 1) / n) for e, f in zip(model.estimators_, model.estimators_features_)]
    y = _combine(ctx, x, members, "output", model.n_features_in_)
    return {"output": y if width else ctx.builder.op("Squeeze", y, axis=1)}


# --- isolation forest -------------------------------------------------------------------


def _average_path_length(n) -> np.ndarray:
    from sklearn.ensemble._iforest import _average_path_length as apl

    return apl(np.asarray(n))


def convert_isolation_forest(model, x: str, ctx: ExportContext) -> dict:
    """IsolationForest: score = -2^(-Σ(depth + c(n_leaf) - 1) / (n_trees · c(max_samples)))."""
    b = ctx.builder
    denominator = len(model.estimators_) * float(_average_path_length([model._max_samples])[0])
    if denominator == 0:
        raise UnsupportedModelError("IsolationForest with max_samples=1 is not supported (its path length is 0)")
    subsample = model._max_features != model.n_features_in_
    members = []
    for est, features in zip(model.estimators_, model.estimators_features_):
        t = est.tree_
        path = t.compute_node_depths() + _average_path_length(t.n_node_samples) - 1.0
        members.append((t, features if subsample else None, (path / denominator)[:, None]))
    mean_path = b.op("Squeeze", _add_trees(ctx, x, members), axis=1)
    score = b.op("Neg", b.op("Pow", _const(ctx, "two", 2.0), b.op("Neg", mean_path)))
    decision = b.op("Sub", score, _const(ctx, "offset", model.offset_))
    inlier = b.op("GreaterEqual", decision, threshold=0.0)  # sklearn: -1 where decision < 0, else 1
    label = b.op("Sub", b.op("Mul", inlier, _const(ctx, "two", 2, np.int32)), _const(ctx, "one", 1, np.int32))
    return {"score_samples": score, "decision": decision, "output": label}


# --- voting -----------------------------------------------------------------------------


def _voting_weights(model) -> np.ndarray:
    n = len(model.estimators_)
    w = model._weights_not_none
    return np.ones(n) if w is None else np.asarray(w, dtype=np.float64)


def _member_proba(ctx: ExportContext, est, x: str, n_classes: int) -> str:
    """Member probabilities [B, K] over the ensemble's encoded classes (``est.classes_`` are 0..K-1 codes)."""
    p = _member_value(ctx, est, x, "probabilities", len(est.classes_))
    if np.array_equal(est.classes_, np.arange(n_classes)):
        return p
    return ctx.builder.op("MatMul", p, ctx.builder.tensor("classes", _scatter(est.classes_, n_classes), np.float32))


def _weighted_sum(ctx: ExportContext, values: list, weights) -> str:
    """Σ values[i] · weights[i]."""
    return _sum(ctx, [ctx.builder.op("Mul", v, _const(ctx, "weight", w)) for v, w in zip(values, weights)])


def convert_voting_classifier(model, x: str, ctx: ExportContext) -> dict:
    """VotingClassifier: soft (weighted mean probabilities) or hard (weighted vote, first class on ties)."""
    b = ctx.builder
    n_classes = len(model.classes_)
    weights = _voting_weights(model)
    if model.voting == "soft":
        probas = [_member_proba(ctx, e, x, n_classes) for e in model.estimators_]
        total = _weighted_sum(ctx, probas, weights / weights.sum())
        out = {"probabilities": total, "label": b.op("ArgMax", total)}
        if model.flatten_transform:
            out["transform"] = b.op("Concat", *probas, axis=1)
        else:  # scikit-learn's [members, rows, classes]: computed rows first, the rows moved to axis 1 on the host
            out["transform"] = b.op("Concat", *[b.op("Reshape", p, shape=[1, n_classes]) for p in probas], axis=1)
            ctx.options["batch_axis"] = {"transform": 1}
    else:
        labels = [_member_value(ctx, e, x, "label", 1) for e in model.estimators_]
        codes = [
            b.op("Reshape", b.op("Take", b.tensor("classes", e.classes_, np.float32), label, axis=0), shape=[1])
            for e, label in zip(model.estimators_, labels)
        ]
        votes = b.op("Concat", *codes, axis=1)  # [B, n_members] encoded labels, as sklearn's transform
        out = {"label": _hard_vote(ctx, model.estimators_, labels, votes, weights, n_classes), "transform": votes}
    set_classes(ctx, model.classes_)
    return out


def _hard_vote(ctx: ExportContext, members: list, labels: list, votes: str, weights: np.ndarray, n_classes: int) -> str:
    """argmax of the weighted bincount of each row's member votes, first class on ties (as sklearn)."""
    b = ctx.builder
    n = len(weights)
    if np.all(weights == np.round(weights)) and np.sum(np.abs(weights)) < 2**24:  # float32 sums are exact
        tallies = [
            b.op("Take", b.tensor("vote", _scatter(e.classes_, n_classes, w), np.float32), label, axis=0)
            for e, label, w in zip(members, labels, weights)
        ]
        return b.op("ArgMax", _sum(ctx, tallies))
    if n_classes**n > _MAX_VOTE_TABLE:
        raise UnsupportedModelError(
            f"VotingClassifier(voting='hard') with non-integer weights over {n} members and {n_classes} classes: "
            f"exact tie-breaking needs a table of {n_classes}**{n} entries (at most {_MAX_VOTE_TABLE}); "
            "use integer weights or voting='soft'"
        )
    # Every combination of votes, scored in float64 in sklearn's bincount order.
    combos = np.arange(n_classes**n)
    scores = np.zeros((len(combos), n_classes))
    for i, w in enumerate(weights):
        scores[combos, (combos // n_classes**i) % n_classes] += w
    table = np.argmax(scores, axis=1).astype(np.int32)
    radix = b.tensor("radix", (n_classes ** np.arange(n))[:, None], np.float32)
    code = b.op("Cast", b.op("Reshape", b.op("MatMul", votes, radix), shape=[]), dtype="int32")
    return b.op("Take", b.tensor("vote_table", table), code, axis=0)


def convert_voting_regressor(model, x: str, ctx: ExportContext) -> dict:
    """VotingRegressor: weighted mean of the member predictions; transform stacks them."""
    b = ctx.builder
    weights = _voting_weights(model)
    columns = [_member_value(ctx, e, x, "output", 1) for e in model.estimators_]
    total = _weighted_sum(ctx, columns, weights / weights.sum())
    return {"output": b.op("Squeeze", total, axis=1), "transform": b.op("Concat", *columns, axis=1)}


# --- stacking ---------------------------------------------------------------------------


def _stack_features(model, x: str, ctx: ExportContext) -> str:
    """StackingClassifier/Regressor ``transform``: member outputs (binary probabilities drop column 0), then X."""
    b = ctx.builder
    binary = hasattr(model, "classes_") and len(model.classes_) == 2
    parts = []
    for est, method in zip(model.estimators_, model.stack_method_):
        if method == "predict_proba":
            p = _member_value(ctx, est, x, "probabilities", len(est.classes_))
            parts.append(b.op("Take", p, b.tensor("columns", np.arange(1, len(est.classes_)), np.int32), axis=1) if binary else p)
        elif method == "decision_function":
            width = 1 if len(est.classes_) == 2 else len(est.classes_)
            parts.append(_member_value(ctx, est, x, "decision", width))
        elif hasattr(est, "classes_"):  # predict of a classifier: its (encoded) label as a number
            label = _member_value(ctx, est, x, "label", 1)
            value = b.op("Take", b.tensor("classes", np.asarray(est.classes_), np.float32), label, axis=0)
            parts.append(b.op("Reshape", value, shape=[1]))
        else:
            parts.append(_member_value(ctx, est, x, "output", 1))
    if model.passthrough:
        parts.append(x)
    return parts[0] if len(parts) == 1 else b.op("Concat", *parts, axis=1)


def convert_stacking_classifier(model, x: str, ctx: ExportContext) -> dict:
    """StackingClassifier: final_estimator_ on the stacked member outputs."""
    if not isinstance(model.classes_, np.ndarray):
        raise UnsupportedModelError("StackingClassifier on multilabel targets is not supported")
    meta = _stack_features(model, x, ctx)
    final = model.final_estimator_
    out = ctx.convert_member(final, meta)
    pos = np.asarray(final.classes_).astype(np.int64)  # final was fit on encoded labels 0..K-1
    if len(pos) != len(model.classes_):
        raise UnsupportedModelError("StackingClassifier whose final estimator saw only some classes")
    result = {k: v for k, v in out.items() if k in ("probabilities", "log_probabilities", "decision")}
    if "label" in out:
        label = out["label"]
        if not np.array_equal(pos, np.arange(len(pos))):
            label = ctx.builder.op("Take", ctx.builder.tensor("classes", pos, np.int32), label, axis=0)
        result["label"] = label
    result["transform"] = meta
    set_classes(ctx, model.classes_)
    return result


def convert_stacking_regressor(model, x: str, ctx: ExportContext) -> dict:
    """StackingRegressor: final_estimator_ on the stacked member outputs."""
    meta = _stack_features(model, x, ctx)
    out = ctx.convert_member(model.final_estimator_, meta)
    return {"output": out["output"], "transform": meta}


register_converter("sklearn.ExtraTreesClassifier", convert_tree_classifier)
register_converter("sklearn.ExtraTreesRegressor", convert_tree_regressor)
register_converter("sklearn.GradientBoostingClassifier", convert_gradient_boosting)
register_converter("sklearn.GradientBoostingRegressor", convert_gradient_boosting)
register_converter("sklearn.AdaBoostClassifier", convert_adaboost_classifier)
register_converter("sklearn.AdaBoostRegressor", convert_adaboost_regressor)
register_converter("sklearn.BaggingClassifier", convert_bagging_classifier)
register_converter("sklearn.BaggingRegressor", convert_bagging_regressor)
register_converter("sklearn.IsolationForest", convert_isolation_forest)
register_converter("sklearn.VotingClassifier", convert_voting_classifier)
register_converter("sklearn.VotingRegressor", convert_voting_regressor)
register_converter("sklearn.StackingClassifier", convert_stacking_classifier)
register_converter("sklearn.StackingRegressor", convert_stacking_regressor)
