"""Small IR patterns shared by converters."""

from __future__ import annotations

import numpy as np

from .registry import ExportContext

__all__ = [
    "linear",
    "split64",
    "classifier_from_decision",
    "classifier_from_proba",
    "logistic_pair",
    "softmax_heads",
    "set_classes",
]


def split64(value) -> tuple[np.ndarray, np.ndarray]:
    """A float64 array as float32 ``hi`` and the float32 rounding of its remainder ``lo`` (48 bits in all)."""
    v = np.asarray(value, dtype=np.float64)
    hi = v.astype(np.float32)
    with np.errstate(invalid="ignore"):  # inf - inf: the remainder of an infinite value is 0
        lo = np.where(np.isfinite(v), v - hi.astype(np.float64), 0.0).astype(np.float32)
    return hi, lo


def linear(ctx: ExportContext, x: str, coef: np.ndarray, intercept, *, hint: str = "linear", head: str = "identity",
           float64: bool = True) -> str:
    """``head(x @ coef.T + intercept)`` with ``coef`` of shape [K, F] (sklearn's layout) → [B, K].

    Computed in float64 inside the op (``LinearFloat64``, parameters as float32
    hi + lo pairs): sums of large terms that cancel keep scikit-learn's
    float64 result to float32 rounding. ``head``: ``identity``,
    ``log_softmax`` or ``softmax``, applied before rounding. ``float64=False``:
    a float32 ``MatMulAdd`` (network layers, which ``quantize=`` compresses).
    """
    b = ctx.builder
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (coef.shape[0],))
    if not float64:
        if head != "identity":
            raise ValueError("a float32 linear layer has no head")
        return b.op("MatMulAdd", x, b.tensor(f"{hint}.weight", coef.T, np.float32), b.tensor(f"{hint}.bias", intercept, np.float32))
    (w_hi, w_lo), (b_hi, b_lo) = split64(coef.T), split64(intercept)
    names = [b.tensor(f"{hint}.{n}", t, np.float32) for n, t in (("weight", w_hi), ("weight_lo", w_lo), ("bias", b_hi), ("bias_lo", b_lo))]
    return b.op("LinearFloat64", x, *names, **({} if head == "identity" else {"head": head}))


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
