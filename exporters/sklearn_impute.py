"""scikit-learn imputers beyond SimpleImputer: KNNImputer and IterativeImputer.

``KNNImputer`` keeps its training rows (``_fit_X``) in the file and imputes
with the ``KNNImpute`` op (nan-euclidean distances, uniform or distance
weights, the column mean where no training row is at a defined distance).
Columns missing in every training row are dropped, or set to 0 with
``keep_empty_features``, as scikit-learn does.

``IterativeImputer`` starts from its ``initial_imputer_``'s statistics, then
replays ``imputation_sequence_``: each step predicts one feature's missing
values from its neighbour features with the fitted estimator (any supported
regressor), clipped to ``[min_value, max_value]``; present values are never
changed. ``sample_posterior=True`` draws at random and is refused.
scikit-learn returns the initial imputation unchanged when every value of the
batch is missing; mlejax decides per row and still runs the estimators.

Both add ``MissingIndicator`` columns (as floats) with ``add_indicator``.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..format.errors import UnsupportedModelError
from .registry import ExportContext, register_converter
from .sklearn_multioutput import column
from .sklearn_preprocessing import _indicator, _missing_attr


def _with_indicator(ctx: ExportContext, model, x: str, y: str) -> dict:
    b = ctx.builder
    if model.add_indicator:
        y = b.op("Concat", y, b.op("Cast", _indicator(model.indicator_, x, ctx), dtype="float32"), axis=1)
    return {"transform": y}


def convert_knn_imputer(model, x: str, ctx: ExportContext) -> dict:
    """KNNImputer (metric ``nan_euclidean``, uniform or distance weights)."""
    b = ctx.builder
    if model.metric != "nan_euclidean" or model.weights not in ("uniform", "distance"):
        raise UnsupportedModelError(
            f"KNNImputer(metric={model.metric!r}, weights={model.weights!r}) is not supported; "
            "supported: metric='nan_euclidean' with weights 'uniform' or 'distance'"
        )
    missing = _missing_attr(model)
    fit_x = np.asarray(model._fit_X, dtype=np.float64).copy()
    mask_fit = np.asarray(model._mask_fit_X, dtype=bool)
    fit_x[mask_fit] = np.nan
    nan_x = x
    if missing != "nan":  # the op reads NaN as missing
        nan_x = b.op("Where", b.op("MissingMask", x, missing=missing), b.tensor("knn_imputer.nan", np.float32(np.nan)), x)
    with warnings.catch_warnings():  # an all-missing column has no mean; it is dropped or zeroed below
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nan_to_num(np.nanmean(fit_x, axis=0))
    k = int(min(model.n_neighbors, fit_x.shape[0]))
    y = b.op("KNNImpute", nan_x, b.tensor("knn_imputer.points", fit_x, np.float32), b.tensor("knn_imputer.fill", means, np.float32),
             k=k, weights=model.weights)
    valid = np.asarray(model._valid_mask, dtype=bool)
    if not valid.all():
        if model.keep_empty_features:
            y = b.op("Mul", y, b.tensor("knn_imputer.keep", valid.reshape(1, -1), np.float32))
        else:
            y = b.op("Take", y, b.tensor("knn_imputer.valid", np.flatnonzero(valid), np.int32))
    return _with_indicator(ctx, model, x, y)


def convert_iterative_imputer(model, x: str, ctx: ExportContext) -> dict:
    """IterativeImputer: initial statistics, then each fitted estimator in ``imputation_sequence_``."""
    b = ctx.builder
    if model.sample_posterior:
        raise UnsupportedModelError("IterativeImputer(sample_posterior=True) draws imputations at random; "
                                    "supported: sample_posterior=False")
    missing = _missing_attr(model)
    stats = np.nan_to_num(np.asarray(model.initial_imputer_.statistics_, dtype=np.float64))
    empty = np.asarray(model._is_empty_feature, dtype=bool)
    kept = np.arange(len(empty)) if model.keep_empty_features else np.flatnonzero(~empty)
    filled = b.op("FillMissing", x, b.tensor("iterative.initial", stats, np.float32), missing=missing)
    mask = b.op("MissingMask", x, missing=missing)
    if len(kept) != len(empty):
        keep = b.tensor("iterative.kept", kept, np.int32)
        filled, mask = b.op("Take", filled, keep), b.op("Take", mask, keep)
    cols = [b.op("Slice", filled, axes=[1], starts=[j], stops=[j + 1]) for j in range(len(kept))]
    lo = np.broadcast_to(np.asarray(model._min_value, dtype=np.float64), (len(kept),))
    hi = np.broadcast_to(np.asarray(model._max_value, dtype=np.float64), (len(kept),))
    for step in model.imputation_sequence_:
        j = int(step.feat_idx)
        if model.keep_empty_features and empty[j]:
            continue  # never marked missing: scikit-learn skips it
        inputs = b.op("Concat", *(cols[i] for i in step.neighbor_feat_idx), axis=1)
        pred = column(ctx, ctx.convert_member(step.estimator, inputs)["output"])
        pred = b.op("Min", b.op("Max", pred, b.tensor("iterative.min", np.float32(lo[j]))), b.tensor("iterative.max", np.float32(hi[j])))
        missing_j = b.op("Slice", mask, axes=[1], starts=[j], stops=[j + 1])
        cols[j] = b.op("Where", missing_j, pred, cols[j])
    return _with_indicator(ctx, model, x, b.op("Concat", *cols, axis=1))


register_converter("sklearn.KNNImputer", convert_knn_imputer)
register_converter("sklearn.IterativeImputer", convert_iterative_imputer)
