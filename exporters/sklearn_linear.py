"""scikit-learn linear models."""

from __future__ import annotations

import numpy as np

from ._common import classifier_from_decision, linear, set_classes
from .registry import ExportContext, register_converter


def convert_linear_regressor(model, x: str, ctx: ExportContext) -> dict:
    """LinearRegression, Ridge and friends: ``X @ coef_.T + intercept_``."""
    coef = np.asarray(model.coef_)
    y = linear(ctx, x, coef, model.intercept_)
    if coef.ndim == 1:
        y = ctx.builder.op("Squeeze", y, axis=1)
    return {"output": y}


def convert_logistic_regression(model, x: str, ctx: ExportContext) -> dict:
    """LogisticRegression: binary sigmoid, multinomial softmax (sklearn ≥ 1.5 semantics)."""
    set_classes(ctx, model.classes_)
    decision = linear(ctx, x, model.coef_, model.intercept_)
    return classifier_from_decision(ctx, decision, len(model.classes_), proba="logistic" if len(model.classes_) == 2 else "softmax")


register_converter("sklearn.LinearRegression", convert_linear_regressor)
register_converter("sklearn.Ridge", convert_linear_regressor)
register_converter("sklearn.LogisticRegression", convert_logistic_regression)
