"""scikit-learn preprocessing transformers."""

from __future__ import annotations

import numpy as np

from .registry import ExportContext, register_converter


def convert_standard_scaler(model, x: str, ctx: ExportContext) -> dict:
    """StandardScaler: ``(x - mean_) / scale_`` (each step only when fitted with it)."""
    b = ctx.builder
    y = x
    if model.mean_ is not None and model.with_mean:
        y = b.op("Sub", y, b.tensor("scaler.mean", model.mean_, np.float32))
    if model.scale_ is not None:
        y = b.op("Div", y, b.tensor("scaler.scale", model.scale_, np.float32))
    return {"transform": y}


register_converter("sklearn.StandardScaler", convert_standard_scaler)
