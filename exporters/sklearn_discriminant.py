"""scikit-learn discriminant analysis: LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis.

LDA is a linear classifier (``X @ coef_.T + intercept_``, every solver):
binary models have one decision column, ``predict_proba`` is
``[1 - expit(d), expit(d)]``, multiclass is ``softmax(d)``; its
``predict_log_proba`` is ``log(predict_proba)`` where a probability of
exactly 0 becomes float64's smallest normal first (log ``-708.396...``).
``transform`` is ``(X - xbar_) @ scalings_`` (svd) or ``X @ scalings_``
(eigen), cut to ``_max_components`` columns; the lsqr solver has none.

QDA scores class ``k`` with ``-0.5 * (|(X - means_[k]) @ (R_k / sqrt(S_k))|^2 +
sum(log S_k)) + log(priors_[k])``; ``predict`` is the argmax, probabilities
are the softmax of the scores, binary ``decision_function`` is the score
difference.
"""

from __future__ import annotations

import numpy as np

from ._common import classifier_from_decision, linear, set_classes
from .registry import ExportContext, register_converter

#: ``log`` of float64's smallest normal: scikit-learn's LDA log-probability where the probability is 0.
_LOG_SMALLEST_NORMAL = float(np.log(np.finfo(np.float64).smallest_normal))


def _floor_log(ctx: ExportContext, log_proba: str) -> str:
    """Replace ``-inf`` (a probability of exactly 0) by ``log(smallest_normal)``, as LDA does."""
    b = ctx.builder
    is_zero = b.op("Compare", log_proba, b.tensor("lda.neg_inf", np.float32(-np.inf)), direction="eq")
    return b.op("Where", is_zero, b.tensor("lda.log_tiny", np.float32(_LOG_SMALLEST_NORMAL)), log_proba)


def convert_lda(model, x: str, ctx: ExportContext) -> dict:
    """LinearDiscriminantAnalysis (svd, lsqr, eigen): decision, labels, probabilities, transform."""
    b = ctx.builder
    set_classes(ctx, model.classes_)
    n_classes = len(model.classes_)
    decision = linear(ctx, x, model.coef_, model.intercept_, hint="lda")
    out = classifier_from_decision(ctx, decision, n_classes, proba="softmax" if n_classes > 2 else "logistic")
    out["log_probabilities"] = _floor_log(ctx, out["log_probabilities"])
    k = int(model._max_components)
    if model.solver == "svd":
        centred = b.op("Sub", x, b.tensor("lda.xbar", np.asarray(model.xbar_, np.float64).reshape(1, -1), np.float32))
        out["transform"] = b.op("MatMul", centred, b.tensor("lda.scalings", np.asarray(model.scalings_)[:, :k], np.float32))
    elif model.solver == "eigen":
        out["transform"] = b.op("MatMul", x, b.tensor("lda.scalings", np.asarray(model.scalings_)[:, :k], np.float32))
    return out


def convert_qda(model, x: str, ctx: ExportContext) -> dict:
    """QuadraticDiscriminantAnalysis: per-class Mahalanobis scores, softmax probabilities."""
    b = ctx.builder
    set_classes(ctx, model.classes_)
    n_classes = len(model.classes_)
    scores = []
    for k in range(n_classes):
        w = np.asarray(model.rotations_[k]) * np.asarray(model.scalings_[k]) ** -0.5
        centred = b.op("Sub", x, b.tensor("qda.mean", np.asarray(model.means_[k]).reshape(1, -1), np.float32))
        proj = b.op("MatMul", centred, b.tensor("qda.rotation", w, np.float32))
        norm2 = b.op("Reduce", b.op("Square", proj), reduction="sum", axes=[1], keepdims=True)
        const = -0.5 * np.sum(np.log(model.scalings_[k])) + np.log(model.priors_[k])
        scores.append(b.op("Add", b.op("Mul", norm2, b.tensor("qda.half", np.float32(-0.5))), b.tensor("qda.const", np.float32(const))))
    score = b.op("Concat", *scores, axis=1)
    log_proba = b.op("LogSoftmax", score)
    out = {"label": b.op("ArgMax", score), "probabilities": b.op("Exp", log_proba), "log_probabilities": log_proba}
    if n_classes == 2:
        first, second = b.node("Split", [score], n_outputs=2, axis=1, sizes=[1, 1])
        out["decision"] = b.op("Squeeze", b.op("Sub", second, first), axis=1)
    else:
        out["decision"] = score
    return out


register_converter("sklearn.LinearDiscriminantAnalysis", convert_lda)
register_converter("sklearn.QuadraticDiscriminantAnalysis", convert_qda)
