"""scikit-learn kernel SVMs (libsvm): SVC, NuSVC, SVR, NuSVR, OneClassSVM.

Decision values are libsvm's: ``sum_s K(x, sv_s) coef_s + intercept`` per
one-vs-one pair, with classes in ``classes_`` order and pairs ordered (0,1),
(0,2), ..., (1,2), .... The linear kernel folds the support vectors into one
weight matrix; other kernels use ``KernelExpansion`` (chunked over support
vectors). Heads follow scikit-learn: binary SVC flips the sign of its
decision, ``decision_function_shape="ovr"`` applies ``_ovr_decision_function``,
``predict`` is libsvm's vote (argmax of the ovr decision with ``break_ties``),
and ``predict_proba`` is libsvm's pairwise coupling of Platt probabilities.
With ``kernel="precomputed"`` the input is the kernel row and the decision is
affine in it (:mod:`.sklearn_precomputed`).
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import linear, set_classes, split64
from .registry import ExportContext, register_converter
from .sklearn_precomputed import precomputed_kernel_sum

_KERNELS = ("linear", "poly", "rbf", "sigmoid")


def _dense(a) -> np.ndarray:
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a, dtype=np.float64)


def _kernel_sum(model, x: str, ctx: ExportContext, coef: np.ndarray, intercept: np.ndarray) -> str:
    """``sum_s K(x, sv_s) coef[s, :] + intercept`` → [B, M] for a libsvm model; ``coef`` is [n_SV, M]."""
    kernel = model.kernel
    if kernel == "precomputed":  # the input is the kernel row: affine in it
        return precomputed_kernel_sum(model, x, ctx, coef, intercept)
    if not isinstance(kernel, str) or kernel not in _KERNELS:
        raise UnsupportedModelError(
            f"{type(model).__name__}(kernel={kernel!r}) is not supported; supported kernels: {', '.join(_KERNELS)}"
        )
    sv = _dense(model.support_vectors_)
    if kernel == "linear":
        return linear(ctx, x, coef.T @ sv, intercept, hint="svm")
    b = ctx.builder
    coef_hi, coef_lo = split64(coef)
    bias = np.stack(split64(np.broadcast_to(np.asarray(intercept, np.float64), (coef.shape[1],))))
    return b.op(  # summed in float64 inside the op: kernel sums cancel
        "KernelExpansion", x, b.tensor("svm.support_vectors", sv, np.float32), b.tensor("svm.coef", coef_hi, np.float32),
        b.tensor("svm.coef_lo", coef_lo, np.float32), b.tensor("svm.intercept", bias, np.float32),
        kernel=kernel, gamma=float(model._gamma), coef0=float(model.coef0), degree=int(model.degree),
    )


def _pair_coefficients(dual_coef: np.ndarray, n_support: np.ndarray) -> np.ndarray:
    """libsvm's packed ``sv_coef`` [K-1, n_SV] → dense per-pair coefficients [n_SV, P].

    For pair (i, j), support vectors of class i carry ``sv_coef[j-1]`` and
    those of class j carry ``sv_coef[i]``; all others carry 0.
    """
    k = len(n_support)
    start = np.concatenate([[0], np.cumsum(n_support)])
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    w = np.zeros((dual_coef.shape[1], len(pairs)))
    for p, (i, j) in enumerate(pairs):
        w[start[i] : start[i + 1], p] = dual_coef[j - 1, start[i] : start[i + 1]]
        w[start[j] : start[j + 1], p] = dual_coef[i, start[j] : start[j + 1]]
    return w


def convert_svc(model, x: str, ctx: ExportContext) -> dict:
    """SVC / NuSVC: decision_function (ovo or ovr), predict (libsvm vote or break_ties), predict_proba."""
    set_classes(ctx, model.classes_)
    b = ctx.builder
    k = len(model.classes_)
    w = _pair_coefficients(_dense(model._dual_coef_), np.asarray(model._n_support))
    dec = _kernel_sum(model, x, ctx, w, np.asarray(model._intercept_, dtype=np.float64))
    out: dict = {"label": b.op("OvoVote", dec, n_classes=k)}
    if k == 2:
        out["decision"] = b.op("Neg", b.op("Squeeze", dec, axis=1))
    elif model.decision_function_shape == "ovr":
        out["decision"] = b.op("OvoToOvr", dec, n_classes=k)
        if model.break_ties:
            out["label"] = b.op("ArgMax", out["decision"])
    else:
        out["decision"] = dec
    prob_a, prob_b = np.asarray(model._probA), np.asarray(model._probB)
    if prob_a.size and prob_b.size:
        proba = b.op(
            "SVCProbability", dec, b.tensor("svm.probA", prob_a, np.float32), b.tensor("svm.probB", prob_b, np.float32),
            n_classes=k,
        )
        out["probabilities"] = proba
        out["log_probabilities"] = b.op("Log", proba)
    return out


def convert_svr(model, x: str, ctx: ExportContext) -> dict:
    """SVR / NuSVR: ``predict`` is the libsvm decision value."""
    dec = _kernel_sum(model, x, ctx, _dense(model._dual_coef_).T, np.asarray(model._intercept_, dtype=np.float64))
    return {"output": ctx.builder.op("Squeeze", dec, axis=1)}


def convert_one_class_svm(model, x: str, ctx: ExportContext) -> dict:
    """OneClassSVM: ``score_samples`` = kernel sum, ``decision_function`` = it + intercept, ``predict`` = ±1."""
    b = ctx.builder
    set_classes(ctx, np.array([-1, 1]))
    score = b.op("Squeeze", _kernel_sum(model, x, ctx, _dense(model._dual_coef_).T, np.zeros(1)), axis=1)
    dec = b.op("Add", score, b.tensor("svm.intercept", np.asarray(model._intercept_, dtype=np.float64), np.float32))
    return {"score_samples": score, "decision": dec, "label": b.op("Greater", dec, threshold=0.0)}


register_converter("sklearn.SVC", convert_svc)
register_converter("sklearn.NuSVC", convert_svc)
register_converter("sklearn.SVR", convert_svr)
register_converter("sklearn.NuSVR", convert_svr)
register_converter("sklearn.OneClassSVM", convert_one_class_svm)
