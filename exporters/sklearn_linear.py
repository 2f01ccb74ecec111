"""scikit-learn linear models: regressors, GLMs, linear classifiers and their CV variants.

Every model here is ``X @ coef_.T + intercept_`` followed by a head:
regressors return it (GLMs through their inverse link), classifiers follow
``LinearClassifierMixin`` (binary: one column, ``> 0`` is ``classes_[1]``;
multiclass: argmax). Probability heads match scikit-learn's:
LogisticRegression uses a sigmoid (binary) or softmax (multiclass);
SGDClassifier(loss="log_loss") uses one-vs-rest sigmoids normalised to sum 1;
loss="modified_huber" uses ``(clip(d, -1, 1) + 1) / 2``. Log-probabilities are
computed in log space (``LogisticLogProba``, ``LogSoftmax``) so that they
stay accurate in float32 where a probability is tiny; ``LogisticLogProba``
also reproduces where scikit-learn's float64 ``1 - expit(d)`` rounds to a
multiple of 2^-52 or to 0 (``-inf`` log-probability).
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import classifier_from_decision, linear, logistic_pair, set_classes, softmax_heads
from .registry import ExportContext, register_converter


def _linear_output(model, x: str, ctx: ExportContext) -> str:
    """``X @ coef_.T + intercept_``: [B] for a 1-D ``coef_``, else [B, n_targets]."""
    coef = np.asarray(model.coef_)
    y = linear(ctx, x, coef, getattr(model, "intercept_", 0.0))
    return ctx.builder.op("Squeeze", y, axis=1) if coef.ndim == 1 else y


def convert_linear_regressor(model, x: str, ctx: ExportContext) -> dict:
    """LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor, Huber, ...: ``X @ coef_.T + intercept_``."""
    return {"output": _linear_output(model, x, ctx)}


def convert_glm(model, x: str, ctx: ExportContext) -> dict:
    """Poisson/Gamma/Tweedie regressors: the inverse link of ``X @ coef_ + intercept_``."""
    eta = _linear_output(model, x, ctx)
    link = type(model._base_loss.link).__name__
    if link == "IdentityLink":
        return {"output": eta}
    if link == "LogLink":
        return {"output": ctx.builder.op("Exp", eta)}
    raise UnsupportedModelError(f"{type(model).__name__} with link {link} is not supported; supported links: identity, log")


def _logistic_heads(ctx: ExportContext, decision: str, n_classes: int, mode: str) -> dict:
    """Labels, decision and probability heads from linear decision values [B, K].

    ``mode``: ``"softmax"`` (multinomial; binary models use ``"ovr"``),
    ``"ovr"`` (scikit-learn's ``_predict_proba_lr``: sigmoids, normalised to
    sum 1 for multiclass) or ``"modified_huber"``.
    """
    b = ctx.builder
    out = classifier_from_decision(ctx, decision, n_classes, proba=None)
    if mode == "modified_huber":
        proba = b.op("ModifiedHuberProba", out["decision"])
        out.update(probabilities=proba, log_probabilities=b.op("Log", proba))
    elif n_classes == 2:
        out.update(logistic_pair(ctx, out["decision"]))
    elif mode == "softmax":
        out.update(softmax_heads(ctx, decision))
    else:
        log_proba = b.op("LogisticLogProba", decision)
        out.update(probabilities=b.op("Exp", log_proba), log_probabilities=log_proba)
    return out


def convert_logistic_regression(model, x: str, ctx: ExportContext) -> dict:
    """LogisticRegression / LogisticRegressionCV: binary sigmoid, multinomial softmax (sklearn ≥ 1.5 semantics)."""
    set_classes(ctx, model.classes_)
    decision = linear(ctx, x, model.coef_, model.intercept_)
    return _logistic_heads(ctx, decision, len(model.classes_), "softmax")


#: SGDClassifier losses with a predict_proba, and the head each one uses.
_SGD_PROBA = {"log_loss": "ovr", "modified_huber": "modified_huber"}


def convert_linear_classifier(model, x: str, ctx: ExportContext) -> dict:
    """RidgeClassifier(CV), SGDClassifier, Perceptron, PassiveAggressiveClassifier, LinearSVC.

    ``decision_function`` and ``predict`` for all; ``predict_proba`` for
    SGDClassifier with ``loss="log_loss"`` or ``"modified_huber"``.
    """
    set_classes(ctx, model.classes_)
    n_classes = len(model.classes_)
    decision = linear(ctx, x, model.coef_, model.intercept_)
    mode = _SGD_PROBA.get(getattr(model, "loss", None)) if hasattr(model, "predict_proba") else None
    if mode is None:
        return classifier_from_decision(ctx, decision, n_classes, proba=None)
    return _logistic_heads(ctx, decision, n_classes, mode)


def convert_linear_outlier(model, x: str, ctx: ExportContext) -> dict:
    """SGDOneClassSVM: ``score_samples = X @ coef_``, ``decision = score - offset_``, ``predict`` = ±1."""
    b = ctx.builder
    set_classes(ctx, np.array([-1, 1]))
    score = b.op("Squeeze", linear(ctx, x, np.atleast_2d(model.coef_), 0.0), axis=1)
    dec = b.op("Sub", score, b.tensor("offset", np.asarray(model.offset_, dtype=np.float64).reshape(()), np.float32))
    return {"score_samples": score, "decision": dec, "label": b.op("Greater", dec, threshold=0.0)}


def convert_ransac(model, x: str, ctx: ExportContext) -> dict:
    """RANSACRegressor: its fitted ``estimator_``."""
    return ctx.convert(model.estimator_, x)


_REGRESSORS = [
    "LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet", "ElasticNetCV",
    "MultiTaskLasso", "MultiTaskLassoCV", "MultiTaskElasticNet", "MultiTaskElasticNetCV",
    "Lars", "LarsCV", "LassoLars", "LassoLarsCV", "LassoLarsIC", "OrthogonalMatchingPursuit",
    "OrthogonalMatchingPursuitCV", "BayesianRidge", "ARDRegression", "HuberRegressor", "QuantileRegressor",
    "TheilSenRegressor", "SGDRegressor", "PassiveAggressiveRegressor", "LinearSVR",
]
_CLASSIFIERS = [
    "RidgeClassifier", "RidgeClassifierCV", "SGDClassifier", "Perceptron", "PassiveAggressiveClassifier", "LinearSVC",
]

for _name in _REGRESSORS:
    register_converter(f"sklearn.{_name}", convert_linear_regressor)
for _name in _CLASSIFIERS:
    register_converter(f"sklearn.{_name}", convert_linear_classifier)
for _name in ("PoissonRegressor", "GammaRegressor", "TweedieRegressor"):
    register_converter(f"sklearn.{_name}", convert_glm)
register_converter("sklearn.LogisticRegression", convert_logistic_regression)
register_converter("sklearn.LogisticRegressionCV", convert_logistic_regression)
register_converter("sklearn.SGDOneClassSVM", convert_linear_outlier)
register_converter("sklearn.RANSACRegressor", convert_ransac)
