"""scikit-learn ``CalibratedClassifierCV`` (sigmoid and isotonic; ensemble or not).

Each of ``calibrated_classifiers_`` scores rows with its estimator's
``decision_function`` (else ``predict_proba``; a binary model gives its
positive column), maps each class's score through that class's calibrator,
and normalises: binary ``[1 - p, p]``; multiclass divides by the row sum
(uniform ``1 / n_classes`` where the sum is 0). Classes an estimator never saw
keep 0. ``predict_proba`` is the mean over the calibrated classifiers,
``predict`` its first argmax. Calibrators:

- sigmoid: ``expit(-(a_ * s + b_))``;
- isotonic: scikit-learn's piecewise-linear interpolation through
  ``(X_thresholds_, y_thresholds_)``, clipped to the end points: the segment
  ``x_k <= s < x_{k+1}`` gives ``y_k + (y_{k+1} - y_k) * (s - x_k) / (x_{k+1} - x_k)``.

scikit-learn sets probabilities in ``(1, 1 + 1e-5]`` to 1; calibrated
probabilities cannot exceed 1 by more, so they are clipped at 1. The
``temperature`` method is not supported: it decides per call, from the
values, whether its input holds probabilities.
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import classifier_from_proba, set_classes
from .registry import ExportContext, register_converter
from .sklearn_multioutput import column


def _scores(ctx: ExportContext, est, out: dict) -> list[str]:
    """``_get_response_values(est, X, ["decision_function", "predict_proba"])`` as [B] columns, one per class scored."""
    b = ctx.builder
    if hasattr(est, "decision_function") and "decision" in out:
        d = out["decision"]
        binary = len(est.classes_) == 2
    elif "probabilities" in out:
        d = out["probabilities"]
        binary = len(est.classes_) == 2
        if binary:
            return [b.op("Index", d, axis=1, index=1)]
    else:
        raise UnsupportedModelError(f"CalibratedClassifierCV: {type(est).__name__} gives neither decision values nor probabilities")
    if binary:
        return [d]
    return [b.op("Index", d, axis=1, index=k) for k in range(len(est.classes_))]


def _sigmoid(ctx: ExportContext, s: str, cal) -> str:
    b = ctx.builder
    z = b.op("Add", b.op("Mul", s, b.tensor("cal.a", np.float32(-cal.a_))), b.tensor("cal.b", np.float32(-cal.b_)))
    return b.op("Sigmoid", z)


def _isotonic(ctx: ExportContext, s: str, cal) -> str:
    """Interpolation through the calibrator's thresholds, clipped at the ends, [B].

    Only the segment holding ``s`` contributes (``y_k + dy_k * (s - x_k) / (x_{k+1} - x_k)``), so a
    flat segment gives exactly ``y_k``, and classes that tie in scikit-learn's float64 tie here too.
    """
    b = ctx.builder
    xk = np.asarray(cal.X_thresholds_, dtype=np.float64)
    yk = np.asarray(cal.y_thresholds_, dtype=np.float64)
    if len(xk) == 1:
        return b.op("BroadcastTo", b.tensor("cal.y0", yk[:1], np.float32), s, shape=["B"])
    with np.errstate(divide="ignore"):
        inv_width = 1.0 / np.diff(xk)
    s = column(ctx, b.op("Clip", s, min=float(xk[0]), max=float(xk[-1])))
    lo = b.tensor("cal.x", xk[:-1], np.float32)
    hi = b.tensor("cal.x_next", np.append(xk[1:-1], np.inf), np.float32)  # the last segment holds x_max too
    inside = b.op("And", b.op("Compare", s, lo, direction="ge"), b.op("Compare", s, hi, direction="lt"))
    t = b.op("Mul", b.op("Sub", s, lo), b.tensor("cal.inv_width", inv_width, np.float32))
    value = b.op("Add", b.op("Mul", t, b.tensor("cal.dy", np.diff(yk), np.float32)), b.tensor("cal.y", yk[:-1], np.float32))
    value = b.op("Where", inside, value, b.tensor("cal.neg_inf", np.float32(-np.inf)))
    return b.op("Reduce", value, reduction="max", axes=[1])


def _calibrated_proba(ctx: ExportContext, x: str, cc, classes: np.ndarray) -> str:
    """One ``_CalibratedClassifier``'s ``predict_proba``, [B, n_classes]."""
    b = ctx.builder
    n_classes = len(classes)
    out = ctx.convert_member(cc.estimator, x)
    positions = np.searchsorted(classes, cc.estimator.classes_)
    cols: dict[int, str] = {}
    for pos, s, cal in zip(positions, _scores(ctx, cc.estimator, out), cc.calibrators):
        p = _sigmoid(ctx, s, cal) if cc.method == "sigmoid" else _isotonic(ctx, s, cal)
        cols[int(pos) + 1 if n_classes == 2 else int(pos)] = column(ctx, p)
    if n_classes == 2:
        p1 = cols[1]
        return b.op("Concat", b.op("Sub", b.tensor("cal.one", np.float32(1.0)), p1), p1, axis=1)
    zero = None
    parts = []
    for k in range(n_classes):
        if k not in cols:
            zero = zero or b.op("BroadcastTo", b.tensor("cal.zero", np.zeros((1, 1)), np.float32), x, shape=["B", 1])
        parts.append(cols.get(k, zero))
    proba = b.op("Concat", *parts, axis=1)
    total = b.op("Reduce", proba, reduction="sum", axes=[1], keepdims=True)
    is_zero = b.op("Compare", total, b.tensor("cal.zero_sum", np.float32(0.0)), direction="eq")
    return b.op("Where", is_zero, b.tensor("cal.uniform", np.float32(1.0 / n_classes)), b.op("Div", proba, total))


def convert_calibrated_classifier(model, x: str, ctx: ExportContext) -> dict:
    """CalibratedClassifierCV: mean of the calibrated classifiers' probabilities; label = first argmax."""
    b = ctx.builder
    classes = np.asarray(model.classes_)
    members = model.calibrated_classifiers_
    if any(cc.method not in ("sigmoid", "isotonic") for cc in members):
        raise UnsupportedModelError(
            f"CalibratedClassifierCV(method={members[0].method!r}) is not supported: temperature scaling decides per "
            "call, from the values, whether its input holds probabilities; supported methods: sigmoid, isotonic"
        )
    probas = [_calibrated_proba(ctx, x, cc, classes) for cc in members]
    set_classes(ctx, classes)
    total = probas[0]
    for p in probas[1:]:
        total = b.op("Add", total, p)
    if len(probas) > 1:
        total = b.op("Div", total, b.tensor("cal.n", np.float32(len(probas))))
    return classifier_from_proba(ctx, b.op("Clip", total, min=None, max=1.0))


register_converter("sklearn.CalibratedClassifierCV", convert_calibrated_classifier)
