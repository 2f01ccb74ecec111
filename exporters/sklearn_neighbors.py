"""scikit-learn nearest-neighbour estimators: brute force over the stored training set.

KNeighborsClassifier/Regressor, RadiusNeighborsClassifier/Regressor and
NearestCentroid. The training points (``_fit_X``) are stored in the file and
scanned in chunks (``KNearest``, ``RadiusNeighborsMean`` in
``lowering/ops_distance.py``), so memory stays bounded whatever the training
set size. Whichever ``algorithm`` the model was fitted with (kd-tree, ball
tree, brute), the neighbours are the same, with one exception: when several
training points tie exactly at the k-th distance (duplicated rows, integer
data), mlejax keeps the lowest training indices, while scikit-learn keeps
whichever tied points its bounded heap or tree walk leaves. Predictions can
then differ, only on such rows. The ``seuclidean`` (``metric_params`` V) and
``mahalanobis`` (V or VI) metrics are euclidean distances after a linear map
``x @ W`` (``W = diag(1/sqrt(V))``; ``W @ W.T = VI``), applied to the stored
training rows at export and to the query rows in the graph.

Deviation, documented: a ``RadiusNeighborsClassifier`` with
``outlier_label=None`` raises in scikit-learn on a row with no neighbour
within the radius. A compiled program cannot raise per row, so mlejax returns
NaN probabilities for such rows, and ``predict`` gives the first class
(``classes_[0]``).
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import set_classes
from .registry import ExportContext, register_converter

__all__ = ["resolve_metric"]

_ALIASES = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "sqeuclidean": "sqeuclidean",
    "manhattan": "manhattan",
    "cityblock": "manhattan",
    "l1": "manhattan",
    "chebyshev": "chebyshev",
    "infinity": "chebyshev",
    "minkowski": "minkowski",
    "cosine": "cosine",
}


def resolve_metric(estimator: str, metric, params: dict | None = None, p: float | None = None) -> dict:
    """The ``metric``/``p`` attrs of the distance ops for a scikit-learn metric name and its params.

    Raises :class:`UnsupportedModelError` naming the estimator for callables,
    ``precomputed`` and weighted or unknown metrics.
    """
    params = {k: v for k, v in (params or {}).items() if not (k == "w" and v is None)}
    if p is None:
        p = params.pop("p", 2)
    else:
        params.pop("p", None)
    if not isinstance(metric, str) or metric not in _ALIASES or params:
        raise UnsupportedModelError(
            f"{estimator} with metric={metric!r}{f' and metric_params={params}' if params else ''} is not supported; "
            f"supported metrics: {', '.join(sorted(_ALIASES))} (minkowski with p, no extra metric_params)"
        )
    name = _ALIASES[metric]
    if name == "minkowski":
        p = float(p)
        if p == 2:
            name = "euclidean"
        elif p == 1:
            name = "manhattan"
        elif np.isinf(p):
            name = "chebyshev"
        elif not p > 0:
            raise UnsupportedModelError(f"{estimator} with minkowski p={p} is not supported; p must be > 0")
        else:
            return {"metric": name, "p": p}
    return {"metric": name}


def _neighbors_metric(model) -> dict:
    return resolve_metric(type(model).__name__, model.effective_metric_, model.effective_metric_params_)


def _fit_points(model, ctx: ExportContext, w: np.ndarray | None = None) -> str:
    """The training points of a fitted neighbours estimator (mapped by ``w`` when given), stored as a tensor."""
    fit_x = getattr(model, "_fit_X", None)
    if model.effective_metric_ == "precomputed" or fit_x is None or not isinstance(fit_x, np.ndarray):
        raise UnsupportedModelError(
            f"{type(model).__name__} fitted on a precomputed or sparse distance matrix is not supported; "
            "fit it on dense feature rows"
        )
    return ctx.builder.tensor("neighbors.points", fit_x if w is None else np.asarray(fit_x, dtype=np.float64) @ w, np.float32)


def _metric_map(model) -> np.ndarray | None:
    """``W`` with ``d(x, y) = |x @ W - y @ W|`` for ``seuclidean`` (``diag(1/sqrt(V))``) and ``mahalanobis``
    (``VI = W @ W.T``); ``None`` for the other metrics."""
    metric, params = model.effective_metric_, dict(model.effective_metric_params_ or {})
    if metric == "seuclidean":
        return np.diag(1.0 / np.sqrt(np.asarray(params["V"], dtype=np.float64)))
    if metric == "mahalanobis":
        vi = np.asarray(params["VI"] if "VI" in params else np.linalg.inv(params["V"]), dtype=np.float64)
        eig, vec = np.linalg.eigh((vi + vi.T) / 2)
        if eig.min() < 0:
            raise UnsupportedModelError(f"{type(model).__name__} with a mahalanobis VI that is not positive semi-definite is not supported")
        return vec * np.sqrt(eig)
    return None


def _metric_inputs(model, x: str, ctx: ExportContext) -> tuple[str, str, dict]:
    """Query rows, stored training points and metric attrs; seuclidean and mahalanobis are euclidean after ``x @ W``."""
    w = _metric_map(model)
    if w is None:
        return x, _fit_points(model, ctx), _neighbors_metric(model)
    b = ctx.builder
    return b.op("MatMul", x, b.tensor("neighbors.metric_map", w, np.float32)), _fit_points(model, ctx, w), {"metric": "euclidean"}


def _check_weights(model) -> str:
    if model.weights not in ("uniform", "distance", None):
        raise UnsupportedModelError(
            f"{type(model).__name__} with a callable weights= is not supported; supported: 'uniform', 'distance'"
        )
    return model.weights or "uniform"


def _class_votes(model, ctx: ExportContext) -> str:
    """One-hot class rows of the training targets (the per-point votes), stored as a tensor."""
    if model.outputs_2d_:
        raise UnsupportedModelError(f"multi-output {type(model).__name__} is not supported; single-output is")
    set_classes(ctx, model.classes_)
    onehot = np.eye(len(model.classes_), dtype=np.float32)[np.asarray(model._y, dtype=np.int64)]
    return ctx.builder.tensor("neighbors.votes", onehot)


def _targets(model, ctx: ExportContext) -> str:
    y = np.asarray(model._y, dtype=np.float64)
    return ctx.builder.tensor("neighbors.targets", y.reshape(y.shape[0], -1), np.float32)


def _regression_output(model, ctx: ExportContext, mean: str) -> dict:
    if np.ndim(model._y) == 1:
        mean = ctx.builder.op("Squeeze", mean, axis=1)
    return {"output": mean}


def _k_neighbors_mean(model, x: str, ctx: ExportContext, values: str) -> str:
    b = ctx.builder
    weights = _check_weights(model)
    if model.n_neighbors > model.n_samples_fit_:
        raise UnsupportedModelError(
            f"{type(model).__name__} with n_neighbors={model.n_neighbors} > {model.n_samples_fit_} training rows "
            "cannot predict (scikit-learn raises too)"
        )
    x, points, metric = _metric_inputs(model, x, ctx)
    dist, idx = b.node("KNearest", [x, points], n_outputs=2, k=int(model.n_neighbors), **metric)
    return b.op("NeighborsMean", dist, idx, values, weights=weights)


def convert_kneighbors_classifier(model, x: str, ctx: ExportContext) -> dict:
    """KNeighborsClassifier: probabilities are the (weighted) share of each class among the k neighbours."""
    proba = _k_neighbors_mean(model, x, ctx, _class_votes(model, ctx))
    return {"probabilities": proba, "label": ctx.builder.op("ArgMax", proba)}


def convert_kneighbors_regressor(model, x: str, ctx: ExportContext) -> dict:
    """KNeighborsRegressor: (weighted) mean target of the k neighbours."""
    return _regression_output(model, ctx, _k_neighbors_mean(model, x, ctx, _targets(model, ctx)))


def _radius_mean(model, x: str, ctx: ExportContext, values: str, fallback: str | None) -> str:
    b = ctx.builder
    x, points, metric = _metric_inputs(model, x, ctx)
    inputs = [x, points, values] + ([fallback] if fallback else [])
    return b.op("RadiusNeighborsMean", *inputs, radius=float(model.radius), weights=_check_weights(model), **metric)


def convert_radius_neighbors_classifier(model, x: str, ctx: ExportContext) -> dict:
    """RadiusNeighborsClassifier: class shares among the neighbours within ``radius``.

    Rows with no neighbour get a one-hot row at ``outlier_label_`` (or NaN,
    see the module docstring, when there is none).
    """
    votes = _class_votes(model, ctx)
    fallback = None
    if model.outlier_label_ is not None:
        label = model.outlier_label_[0]
        where = np.flatnonzero(model.classes_ == label)
        if where.size != 1:
            raise UnsupportedModelError(
                f"RadiusNeighborsClassifier with outlier_label={label!r} outside classes_ is not supported; "
                "use a label among classes_, 'most_frequent' or None"
            )
        fallback = ctx.builder.tensor("neighbors.outlier", np.eye(len(model.classes_))[where[0]], np.float32)
    proba = _radius_mean(model, x, ctx, votes, fallback)
    return {"probabilities": proba, "label": ctx.builder.op("ArgMax", proba)}


def convert_radius_neighbors_regressor(model, x: str, ctx: ExportContext) -> dict:
    """RadiusNeighborsRegressor: (weighted) mean target within ``radius``; NaN without neighbours, as sklearn."""
    return _regression_output(model, ctx, _radius_mean(model, x, ctx, _targets(model, ctx), None))


def convert_nearest_centroid(model, x: str, ctx: ExportContext) -> dict:
    """NearestCentroid: nearest centroid (equal priors) or the ESL discriminant scores (eq. 18.2).

    The discriminant, ``-|x/s - c/s|² + 2 log prior`` with ``s`` the
    within-class standard deviation (1 where it is 0), also gives
    ``decision_function`` and the softmax ``predict_proba`` (euclidean only,
    as in scikit-learn).
    """
    b = ctx.builder
    set_classes(ctx, model.classes_)
    out: dict = {}
    n_classes = len(model.classes_)
    metric = resolve_metric("NearestCentroid", model.metric)
    if model.metric == "euclidean":
        std = np.asarray(model.within_class_std_dev_, dtype=np.float64)
        scale = np.where(std != 0, std, 1.0)
        xn = b.op("Div", x, b.tensor("centroid.scale", scale, np.float32))
        centroids = np.asarray(model.centroids_, dtype=np.float64) / scale
        sq = b.op("PairwiseDistance", xn, b.tensor("centroid.scaled", centroids, np.float32), metric="sqeuclidean")
        log_prior = 2.0 * np.log(np.asarray(model.class_prior_, dtype=np.float64))
        scores = b.op("Sub", b.tensor("centroid.log_prior", log_prior, np.float32), sq)
        out["probabilities"] = b.op("Softmax", scores)
        out["log_probabilities"] = b.op("LogSoftmax", scores)
        if n_classes == 2:
            diff = b.tensor("centroid.diff", np.array([[-1.0], [1.0]]), np.float32)
            out["decision"] = b.op("Squeeze", b.op("MatMul", scores, diff), axis=1)
        else:
            out["decision"] = scores
        out["label"] = b.op("ArgMax", scores)
    if np.isclose(model.class_prior_, 1 / n_classes).all():
        if metric["metric"] == "euclidean":
            metric = {"metric": "sqeuclidean"}  # same order, without merging near-ties through sqrt
        dist = b.op("PairwiseDistance", x, b.tensor("centroid.centroids", model.centroids_, np.float32), **metric)
        out["label"] = b.op("ArgMax", b.op("Neg", dist))
    return out


register_converter("sklearn.KNeighborsClassifier", convert_kneighbors_classifier)
register_converter("sklearn.KNeighborsRegressor", convert_kneighbors_regressor)
register_converter("sklearn.RadiusNeighborsClassifier", convert_radius_neighbors_classifier)
register_converter("sklearn.RadiusNeighborsRegressor", convert_radius_neighbors_regressor)
register_converter("sklearn.NearestCentroid", convert_nearest_centroid)
