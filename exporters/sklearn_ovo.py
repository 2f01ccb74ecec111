"""scikit-learn one-vs-one: ``OneVsOneClassifier`` over any convertible binary estimator.

Member ``k`` decides the pair (i, j), i < j, in scikit-learn's order. Its
prediction (0: class i, 1: class j) gives a vote; its confidence is its
``decision_function`` when it has one, else ``predict_proba[:, 1]``
(``_predict_binary``). scikit-learn's ``_ovr_decision_function`` then adds to
the votes ``s / (3 (|s| + 1))``, where ``s[c]`` sums the confidences of the
pairs whose second class is ``c`` minus those whose first class is ``c``.
``predict`` is the first argmax (binary: ``decision > 0``, or ``> 0.5`` for
members without ``decision_function``, as scikit-learn thresholds); the binary
``decision_function`` is column 1. Models fitted on a precomputed kernel
(``pairwise_indices_``) are not supported.
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import set_classes
from .registry import ExportContext, register_converter
from .sklearn_multioutput import column


def _pair_matrices(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """[P, K] one-hot rows of each pair's first and second class, pairs in scikit-learn's order."""
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    eye = np.eye(n_classes)
    return eye[[i for i, _ in pairs]], eye[[j for _, j in pairs]]


def _confidence(ctx: ExportContext, est, out: dict) -> str:
    """scikit-learn's ``_predict_binary``: ``decision_function`` (raveled) or ``predict_proba[:, 1]``, [B]."""
    if "decision" in out and hasattr(est, "decision_function"):
        return out["decision"]
    if "probabilities" in out:
        return ctx.builder.op("Index", out["probabilities"], axis=1, index=1)
    raise UnsupportedModelError(f"OneVsOneClassifier member {type(est).__name__} gives neither decision values nor probabilities")


def convert_one_vs_one(model, x: str, ctx: ExportContext) -> dict:
    """OneVsOneClassifier: votes plus scaled summed confidences; labels and decision function."""
    if getattr(model, "pairwise_indices_", None) is not None:
        raise UnsupportedModelError("OneVsOneClassifier over a precomputed kernel (pairwise estimators) is not supported")
    b = ctx.builder
    n_classes = len(model.classes_)
    preds, confs = [], []
    for est in model.estimators_:
        out = ctx.convert_member(est, x)
        if "label" not in out:
            raise UnsupportedModelError(f"OneVsOneClassifier member {type(est).__name__} is not a classifier; classifiers are supported")
        preds.append(column(ctx, b.op("Cast", out["label"], dtype="float32")))  # members' classes_ are [0, 1]
        confs.append(column(ctx, _confidence(ctx, est, out)))
    set_classes(ctx, model.classes_)
    pred = b.op("Concat", *preds, axis=1) if len(preds) > 1 else preds[0]
    conf = b.op("Concat", *confs, axis=1) if len(confs) > 1 else confs[0]
    first, second = _pair_matrices(n_classes)
    one = b.tensor("ovo.one", np.float32(1.0))
    votes = b.op("Add", b.op("MatMul", b.op("Sub", one, pred), b.tensor("ovo.first", first, np.float32)),
                 b.op("MatMul", pred, b.tensor("ovo.second", second, np.float32)))
    s = b.op("MatMul", conf, b.tensor("ovo.signs", second - first, np.float32))
    scale = b.op("Mul", b.tensor("ovo.three", np.float32(3.0)), b.op("Add", b.op("Abs", s), one))
    decision = b.op("Add", votes, b.op("Div", s, scale))
    if n_classes == 2:
        d = b.op("Index", decision, axis=1, index=1)
        threshold = 0.0 if hasattr(model.estimators_[0], "decision_function") else 0.5  # _threshold_for_binary_predict
        return {"decision": d, "label": b.op("Greater", d, threshold=threshold)}
    return {"decision": decision, "label": b.op("ArgMax", decision)}


register_converter("sklearn.OneVsOneClassifier", convert_one_vs_one)
