"""scikit-learn KNeighborsTransformer and MeanShift.

``KNeighborsTransformer.transform`` is scikit-learn's ``kneighbors_graph`` of
the query rows against the training rows, with ``n_neighbors + 1``
neighbours in ``mode="distance"`` (as scikit-learn does for new data) and
``n_neighbors`` in ``mode="connectivity"``. scikit-learn returns it as a
sparse CSR matrix; mlejax returns the dense [B, n_samples_fit_] array
(``.toarray()`` of scikit-learn's), distances (or ones) at the neighbours and
0 elsewhere. Neighbours and metrics as :mod:`.sklearn_neighbors` (ties to
the lower training index).

``MeanShift.predict`` is the nearest cluster centre (euclidean; ties to the
lower centre), as ``pairwise_distances_argmin``.
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from .registry import ExportContext, register_converter
from .sklearn_neighbors import _metric_inputs


def convert_kneighbors_transformer(model, x: str, ctx: ExportContext) -> dict:
    """KNeighborsTransformer: the dense k-neighbours graph (distances or connectivity)."""
    b = ctx.builder
    k = int(model.n_neighbors) + (model.mode == "distance")
    n = int(model.n_samples_fit_)
    if k > n:
        raise UnsupportedModelError(f"KNeighborsTransformer asks for {k} neighbours of {n} training rows (scikit-learn raises too)")
    x, points, metric = _metric_inputs(model, x, ctx)
    dist, idx = b.node("KNearest", [x, points], n_outputs=2, k=k, **metric)
    hit = b.op("Compare", b.op("Unsqueeze", idx, axes=[2]), b.tensor("kntrans.ids", np.arange(n), np.int32), direction="eq")
    hit = b.op("Cast", hit, dtype="float32")  # [B, k, n]
    if model.mode == "distance":
        hit = b.op("Mul", hit, b.op("Unsqueeze", dist, axes=[2]))
    return {"transform": b.op("Reduce", hit, reduction="sum", axes=[1])}


def convert_mean_shift(model, x: str, ctx: ExportContext) -> dict:
    """MeanShift ``predict``: index of the nearest cluster centre."""
    b = ctx.builder
    centers = np.asarray(model.cluster_centers_, dtype=np.float64)
    label = b.op("NearestLabel", x, b.tensor("meanshift.centers", centers, np.float32),
                 b.tensor("meanshift.labels", np.arange(len(centers)), np.int32), metric="sqeuclidean")
    return {"label": label}


register_converter("sklearn.KNeighborsTransformer", convert_kneighbors_transformer)
register_converter("sklearn.MeanShift", convert_mean_shift)
