"""scikit-learn cross decomposition: PLSRegression, PLSCanonical, CCA, PLSSVD.

``transform`` is ``((X - _x_mean) / _x_std) @ x_rotations_`` (``x_weights_``
for PLSSVD); ``predict`` is ``(X - _x_mean) @ coef_.T + intercept_``, raveled
for a model fitted on a 1-D target. Only ``X`` is transformed (the ``y``
argument of scikit-learn's ``transform`` is not part of the exported model).
"""

from __future__ import annotations

import numpy as np

from ._common import linear
from .registry import ExportContext, register_converter


def _standardized(ctx: ExportContext, x: str, model) -> str:
    b = ctx.builder
    centred = b.op("Sub", x, b.tensor("pls.mean", np.asarray(model._x_mean).reshape(1, -1), np.float32))
    return b.op("Div", centred, b.tensor("pls.std", np.asarray(model._x_std).reshape(1, -1), np.float32))


def convert_pls(model, x: str, ctx: ExportContext) -> dict:
    """PLSRegression, PLSCanonical, CCA: ``transform`` and ``predict``."""
    b = ctx.builder
    out = {"transform": b.op("MatMul", _standardized(ctx, x, model), b.tensor("pls.rotations", model.x_rotations_, np.float32))}
    centred = b.op("Sub", x, b.tensor("pls.mean", np.asarray(model._x_mean).reshape(1, -1), np.float32))
    y = linear(ctx, centred, model.coef_, model.intercept_, hint="pls")
    out["output"] = b.op("Squeeze", y, axis=1) if model._predict_1d else y
    return out


def convert_pls_svd(model, x: str, ctx: ExportContext) -> dict:
    """PLSSVD: ``transform``."""
    return {"transform": ctx.builder.op("MatMul", _standardized(ctx, x, model), ctx.builder.tensor("pls.weights", model.x_weights_, np.float32))}


for _name in ("PLSRegression", "PLSCanonical", "CCA"):
    register_converter(f"sklearn.{_name}", convert_pls)
register_converter("sklearn.PLSSVD", convert_pls_svd)
