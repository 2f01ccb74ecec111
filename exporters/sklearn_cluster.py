"""scikit-learn clustering: KMeans, MiniBatchKMeans, DBSCAN, AgglomerativeClustering.

Labels are the cluster ids themselves (no ``classes_``), as the ``label``
output. KMeans and MiniBatchKMeans mirror ``predict`` (nearest centre) and
``transform`` (euclidean distances to the centres).

DBSCAN and AgglomerativeClustering cannot label new data in scikit-learn;
mlejax gives both a ``predict`` with a documented meaning:

- DBSCAN: the label of the nearest core sample if it lies within ``eps``
  (``distance <= eps``, DBSCAN's own neighbourhood test), else -1 (noise).
  Core samples and their labels are stored in the file.
- AgglomerativeClustering: the label of the nearest training point. The
  model keeps no training points, so ``export_model(..., training_data=X)``
  must pass the rows it was fitted on.

Distances use the estimator's metric; exact ties go to the lower index.
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from .registry import ExportContext, register_converter
from .sklearn_neighbors import resolve_metric

#: Tells export_model to expose ``predict`` although the native estimator has none.
_FORCED_PREDICT = {"predict": "label"}


def _nearest_label(ctx: ExportContext, x: str, points, labels, metric: dict, **attrs) -> str:
    b = ctx.builder
    return b.op(
        "NearestLabel",
        x,
        b.tensor("cluster.points", points, np.float32),
        b.tensor("cluster.labels", labels, np.int32),
        **metric,
        **attrs,
    )


def convert_kmeans(model, x: str, ctx: ExportContext) -> dict:
    """KMeans / MiniBatchKMeans: nearest centre (ties → lower id) and distances to every centre."""
    centers = np.asarray(model.cluster_centers_)
    transform = ctx.builder.op(
        "PairwiseDistance", x, ctx.builder.tensor("kmeans.centers", centers, np.float32), metric="euclidean"
    )
    label = _nearest_label(ctx, x, centers, np.arange(len(centers)), {"metric": "sqeuclidean"})
    return {"label": label, "transform": transform}


def convert_dbscan(model, x: str, ctx: ExportContext) -> dict:
    """DBSCAN ``predict``: the label of the nearest core sample within ``eps``, else -1."""
    metric = resolve_metric("DBSCAN", model.metric, model.metric_params, model.p)
    core = np.asarray(model.core_sample_indices_, dtype=np.int64)
    points = np.asarray(model.components_, dtype=np.float64).reshape(len(core), model.n_features_in_)
    labels = np.asarray(model.labels_)[core]
    label = _nearest_label(ctx, x, points, labels, metric, radius=float(model.eps), fill=-1)
    return {"label": label, "__methods__": _FORCED_PREDICT}


def convert_agglomerative(model, x: str, ctx: ExportContext) -> dict:
    """AgglomerativeClustering ``predict``: the label of the nearest training point (``training_data=``)."""
    data = ctx.options.get("training_data")
    if data is None:
        raise UnsupportedModelError(
            "AgglomerativeClustering keeps no training points, so its predict (label of the nearest training "
            "point) needs them: pass export_model(..., training_data=X) with the rows it was fitted on"
        )
    data = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data, dtype=np.float64)
    labels = np.asarray(model.labels_)
    if data.ndim != 2 or data.shape[0] != labels.shape[0]:
        raise UnsupportedModelError(
            f"training_data must be the {labels.shape[0]} rows AgglomerativeClustering was fitted on; "
            f"got an array of shape {data.shape}"
        )
    metric = resolve_metric("AgglomerativeClustering", model.metric)
    return {"label": _nearest_label(ctx, x, data, labels, metric), "__methods__": _FORCED_PREDICT}


register_converter("sklearn.KMeans", convert_kmeans)
register_converter("sklearn.MiniBatchKMeans", convert_kmeans)
register_converter("sklearn.DBSCAN", convert_dbscan)
register_converter("sklearn.AgglomerativeClustering", convert_agglomerative)
