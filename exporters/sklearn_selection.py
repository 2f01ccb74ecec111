"""scikit-learn feature selection: every fitted selector is a column selection (``get_support``).

RFE / RFECV also predict with their ``estimator_`` (fitted on the selected columns).
"""

from __future__ import annotations

import numpy as np

from ._host_encoding import raw_columns, record_raw_columns
from .registry import ExportContext, register_converter


def _selected(model, x: str, ctx: ExportContext) -> str:
    """``Take`` of the supported columns (still raw input columns when ``x`` is, for string encoders after it)."""
    b = ctx.builder
    support = np.asarray(model.get_support(indices=True))
    y = b.op("Take", x, b.tensor("selector.support", support, np.int32))
    raw = raw_columns(ctx, x, int(model.n_features_in_))
    if raw is not None:
        record_raw_columns(ctx, y, [raw[0][i] for i in support], raw[1])
    return y


def convert_selector(model, x: str, ctx: ExportContext) -> dict:
    """SelectKBest, SelectPercentile, GenericUnivariateSelect, VarianceThreshold, SelectFromModel, ...: ``transform``."""
    return {"transform": _selected(model, x, ctx)}


def convert_rfe(model, x: str, ctx: ExportContext) -> dict:
    """RFE / RFECV: ``transform`` plus the outputs of ``estimator_`` on the selected columns."""
    y = _selected(model, x, ctx)
    out = dict(ctx.convert(model.estimator_, y))
    out["transform"] = y
    return out


for _name in ("SelectKBest", "SelectPercentile", "SelectFpr", "SelectFdr", "SelectFwe", "GenericUnivariateSelect",
              "VarianceThreshold", "SelectFromModel", "SequentialFeatureSelector"):
    register_converter(f"sklearn.{_name}", convert_selector)
register_converter("sklearn.RFE", convert_rfe)
register_converter("sklearn.RFECV", convert_rfe)
