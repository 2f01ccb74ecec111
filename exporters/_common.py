"""Small IR patterns shared by converters."""

from __future__ import annotations

import numpy as np

from .registry import ExportContext

__all__ = [
    "linear",
    "classifier_from_decision",
    "classifier_from_proba",
    "logistic_pair",
    "softmax_heads",
    "set_classes",
]


def linear(ctx: ExportContext, x: str, coef: np.ndarray, intercept, *, hint: str = "linear") -> str:
    """``x @ coef.T + intercept`` with ``coef`` of shape [K, F] (sklearn's layout) → [B, K]."""
    b = ctx.builder
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (coef.shape[0],))
    return b.op(
        "MatMulAdd", x, b.tensor(f"{hint}.weight", coef.T, np.float32), b.tensor(f"{hint}.bias", intercept, np.float32)
    )


def set_classes(ctx: ExportContext, classes) -> None:
    ctx.classes = np.asarray(classes)


def classifier_from_decision(ctx: ExportContext, decision: str, n_classes: int, *, proba: str | None = None) -> dict:
    """Heads of a linear-style classifier from its decision values [B, K].

    Binary models have one column: it is squeezed to [B] and the label is
    ``decision > 0`` (sklearn's ``LinearClassifierMixin``); otherwise argmax.
    ``proba`` picks the probability head: ``"logistic"`` (sigmoid, [1-p, p]
    for binary, OvR-normalised for multiclass), ``"softmax"`` or ``None``.
    """
    b = ctx.builder
    out: dict = {}
    if n_classes == 2:
        d = b.op("Squeeze", decision, axis=1)
        out["decision"] = d
        out["label"] = b.op("Greater", d, threshold=0.0)
        if proba is not None:
            out.update(logistic_pair(ctx, d))
        return out
    out["decision"] = decision
    out["label"] = b.op("ArgMax", decision)
    if proba == "softmax":
        out.update(softmax_heads(ctx, decision))
    elif proba == "logistic":
        out["probabilities"] = b.op("NormalizeRows", b.op("Sigmoid", decision), norm="l1")
        out["log_probabilities"] = b.op("Log", out["probabilities"])
    return out


def logistic_pair(ctx: ExportContext, z: str) -> dict:
    """``[1 - expit(z), expit(z)]`` and its log for a [B] margin, rounded as sklearn's float64 does."""
    b = ctx.builder
    return {"probabilities": b.op("LogisticPairFloat64", z), "log_probabilities": b.op("LogisticPairFloat64", z, log=True)}


def softmax_heads(ctx: ExportContext, logits: str) -> dict:
    """``softmax(logits)`` and sklearn's ``log(softmax)`` (``-inf`` where float64 underflows)."""
    b = ctx.builder
    return {"probabilities": b.op("Softmax", logits), "log_probabilities": b.op("LogSoftmaxFloat64", logits)}


def classifier_from_proba(ctx: ExportContext, proba: str) -> dict:
    """Heads of a classifier whose label is the argmax of its probabilities."""
    b = ctx.builder
    return {"probabilities": proba, "label": b.op("ArgMax", proba), "log_probabilities": b.op("Log", proba)}
