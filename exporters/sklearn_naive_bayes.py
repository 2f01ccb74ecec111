"""scikit-learn naive Bayes: GaussianNB, MultinomialNB, ComplementNB, BernoulliNB, CategoricalNB.

Each converter builds the joint log-likelihood ``jll`` [B, K] exactly as the
estimator's ``_joint_log_likelihood``; the heads are scikit-learn's:
``predict`` = argmax of ``jll``, ``predict_log_proba`` = ``jll - logsumexp(jll)``
and ``predict_proba`` its exponential.

CategoricalNB reads category codes as floats truncated toward zero (as
scikit-learn's integer conversion does). scikit-learn raises on a code
outside the categories seen in training; mlejax cannot raise inside a
compiled program, so such a code (or NaN) contributes nothing to any class:
the feature is marginalised out for that row.
"""

from __future__ import annotations

import numpy as np

from ._common import linear, set_classes
from .registry import ExportContext, register_converter


def _nb_heads(ctx: ExportContext, model, jll: str) -> dict:
    set_classes(ctx, model.classes_)
    b = ctx.builder
    return {"label": b.op("ArgMax", jll), "probabilities": b.op("Softmax", jll), "log_probabilities": b.op("LogSoftmax", jll)}


def _linear_nb_heads(ctx: ExportContext, model, x: str, coef, intercept) -> dict:
    """Heads of a linear joint log-likelihood, each taken from the float64 sum (``linear``'s ``head``).

    The likelihoods of count data are large and nearly equal; rounding them to
    float32 before the softmax would cost ``|jll| * 6e-8`` in every log-probability.
    """
    set_classes(ctx, model.classes_)
    b = ctx.builder
    heads = {k: linear(ctx, x, coef, intercept, hint="nb", head=h) for k, h in
             (("jll", "identity"), ("probabilities", "softmax"), ("log_probabilities", "log_softmax"))}
    return {"label": b.op("ArgMax", heads.pop("jll"))} | heads


def convert_gaussian_nb(model, x: str, ctx: ExportContext) -> dict:
    """GaussianNB: ``log prior - 0.5 sum log(2π var) - 0.5 sum (x - θ)² / var`` per class."""
    b = ctx.builder
    var = np.asarray(model.var_, dtype=np.float64)
    bias = np.log(model.class_prior_) - 0.5 * np.sum(np.log(2.0 * np.pi * var), axis=1)
    jll = b.op(
        "GaussianJointLogLikelihood", x,
        b.tensor("gnb.theta", model.theta_, np.float32), b.tensor("gnb.inv_var", 1.0 / var, np.float32),
        b.tensor("gnb.bias", bias, np.float32),
    )
    return _nb_heads(ctx, model, jll)


def convert_multinomial_nb(model, x: str, ctx: ExportContext) -> dict:
    """MultinomialNB: ``X @ feature_log_prob_.T + class_log_prior_``."""
    return _linear_nb_heads(ctx, model, x, model.feature_log_prob_, model.class_log_prior_)


def convert_complement_nb(model, x: str, ctx: ExportContext) -> dict:
    """ComplementNB: ``X @ feature_log_prob_.T`` (plus the prior only when there is a single class)."""
    prior = model.class_log_prior_ if len(model.classes_) == 1 else 0.0
    return _linear_nb_heads(ctx, model, x, model.feature_log_prob_, prior)


def convert_bernoulli_nb(model, x: str, ctx: ExportContext) -> dict:
    """BernoulliNB: binarise at ``binarize`` (``x > t``), then ``X @ (log p - log(1-p)).T + prior + sum log(1-p)``."""
    b = ctx.builder
    if model.binarize is not None:
        x = b.op("Cast", b.op("Greater", x, threshold=float(model.binarize)), dtype="float32")
    flp = np.asarray(model.feature_log_prob_, dtype=np.float64)
    neg = np.log(1.0 - np.exp(flp))
    return _linear_nb_heads(ctx, model, x, flp - neg, model.class_log_prior_ + neg.sum(axis=1))


def convert_categorical_nb(model, x: str, ctx: ExportContext) -> dict:
    """CategoricalNB: ``class_log_prior_ + sum_f feature_log_prob_[f][:, x_f]`` (out-of-range codes contribute 0)."""
    b = ctx.builder
    tables = [np.asarray(t, dtype=np.float64).T for t in model.feature_log_prob_]
    n_cats = np.array([t.shape[0] for t in tables], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(n_cats)[:-1]]).astype(np.int32)
    jll = b.op(
        "CategoricalJointLogLikelihood", x,
        b.tensor("cnb.table", np.concatenate(tables, axis=0), np.float32),
        b.tensor("cnb.offsets", offsets, np.int32), b.tensor("cnb.n_categories", n_cats, np.int32),
    )
    jll = b.op("Add", jll, b.tensor("cnb.prior", model.class_log_prior_, np.float32))
    return _nb_heads(ctx, model, jll)


register_converter("sklearn.GaussianNB", convert_gaussian_nb)
register_converter("sklearn.MultinomialNB", convert_multinomial_nb)
register_converter("sklearn.ComplementNB", convert_complement_nb)
register_converter("sklearn.BernoulliNB", convert_bernoulli_nb)
register_converter("sklearn.CategoricalNB", convert_categorical_nb)
