"""Parity of clustering and mixture converters with scikit-learn.

KMeans/MiniBatchKMeans and Gaussian mixtures are compared with
scikit-learn's own methods; labels are cluster ids (no ``classes_``) and
must match exactly. DBSCAN and AgglomerativeClustering have no ``predict``
in scikit-learn: mlejax's documented rule is checked against the same rule
computed independently in numpy/scikit-learn (``pairwise_distances``).

Data are float32 values held in float64 arrays, so scikit-learn works in
float64 on exactly the values mlejax sees.
"""

import numpy as np
import pytest
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.datasets import load_iris, make_blobs
from sklearn.metrics import pairwise_distances
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

import mlejax as mle
from mlejax.format.errors import UnsupportedModelError

from helpers import assert_close, roundtrip

METHODS = ("predict", "predict_proba", "transform", "score_samples")


def _blobs():
    """3000 rows, 5 features, offset from the origin (tests float32 cancellation)."""
    X, _ = make_blobs(3000, 5, centers=4, cluster_std=1.5, random_state=0)
    return (X * 3 + 10).astype(np.float32).astype(np.float64)


def _iris():
    X, _ = load_iris(return_X_y=True)
    return X.astype(np.float32).astype(np.float64)[np.random.default_rng(0).permutation(150)]


DATASETS = {"blobs": _blobs, "iris": _iris}


def _fit_query(data):
    X = DATASETS[data]()
    n = 2 * len(X) // 3
    return X[:n], X[n:]


def _check_labels_and_floats(model, m, query):
    """Exact cluster ids, floats within the default bound; on the whole query and on one row."""
    worst = {}
    for rows in (query, query[:1]):
        for method in METHODS:
            if not hasattr(model, method):
                assert not hasattr(m, method)
                continue
            native, ours = getattr(model, method)(rows), getattr(m, method)(rows)
            if method == "predict":
                assert np.array_equal(ours, native), f"{int((ours != native).sum())} labels differ"
            else:
                worst[method] = max(worst.get(method, 0.0), assert_close(ours, native, what=method))
    return worst


@pytest.mark.parametrize(
    "model",
    [KMeans(4, n_init=2, random_state=0), KMeans(3, algorithm="elkan", n_init=1, random_state=1),
     MiniBatchKMeans(5, n_init=2, random_state=0)],
    ids=repr,
)
@pytest.mark.parametrize("data", DATASETS)
def test_kmeans(model, data, tmp_path):
    X_fit, query = _fit_query(data)
    model.fit(X_fit)
    m = roundtrip(model, query, tmp_path)
    _check_labels_and_floats(model, m, query)
    assert m.predict(query).dtype.kind == "i"


COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("data", DATASETS)
def test_gaussian_mixture(covariance_type, data, tmp_path):
    X_fit, query = _fit_query(data)
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X_fit)
    m = roundtrip(model, query, tmp_path)
    _check_labels_and_floats(model, m, query)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("prior", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("data", DATASETS)
def test_bayesian_gaussian_mixture(covariance_type, prior, data, tmp_path):
    X_fit, query = _fit_query(data)
    model = BayesianGaussianMixture(
        n_components=5, covariance_type=covariance_type, weight_concentration_prior_type=prior,
        max_iter=200, random_state=0,
    ).fit(X_fit)
    m = roundtrip(model, query, tmp_path)
    _check_labels_and_floats(model, m, query)


def _nearest_rule(query, points, labels, metric="euclidean", eps=None):
    """Reference: label of the nearest point (first on ties), -1 beyond ``eps``; computed in float64."""
    if len(points) == 0:
        return np.full(len(query), -1)
    d = pairwise_distances(query, points, metric=metric)
    j = d.argmin(axis=1)
    label = labels[j]
    return label if eps is None else np.where(d[np.arange(len(query)), j] <= eps, label, -1)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
@pytest.mark.parametrize("data", DATASETS)
def test_dbscan_predict(metric, data, tmp_path):
    """DBSCAN.predict (mlejax extension): nearest core sample within eps, else noise (-1)."""
    X_fit, query = _fit_query(data)
    eps = {"blobs": 5.0, "iris": 0.4}[data] * (1.5 if metric == "manhattan" else 1.0)
    model = DBSCAN(eps=eps, min_samples=6, metric=metric).fit(X_fit)
    query = np.vstack([query, X_fit[:20], query + 0.25])
    mle.export_model(model, tmp_path / "db.mle", sample_input=query[:8])
    m = mle.load_model(tmp_path / "db.mle")
    core = model.core_sample_indices_
    expected = _nearest_rule(query, X_fit[core], model.labels_[core], metric, eps)
    assert 0 < (expected == -1).sum() < len(query) and len(set(expected)) > 2  # noise and clusters both occur
    assert np.array_equal(m.predict(query), expected)
    assert np.array_equal(m.predict(query[:1]), expected[:1])
    # On core training rows it reproduces the fitted labels.
    assert np.array_equal(m.predict(X_fit[core]), model.labels_[core])


def test_dbscan_all_noise(tmp_path):
    X_fit, query = _fit_query("iris")
    model = DBSCAN(eps=1e-3, min_samples=50).fit(X_fit)
    assert len(model.core_sample_indices_) == 0
    mle.export_model(model, tmp_path / "db.mle")
    assert np.array_equal(mle.load_model(tmp_path / "db.mle").predict(query), np.full(len(query), -1))


@pytest.mark.parametrize("linkage, metric", [("ward", "euclidean"), ("average", "manhattan"), ("complete", "cosine")])
@pytest.mark.parametrize("data", DATASETS)
def test_agglomerative_predict(linkage, metric, data, tmp_path):
    """AgglomerativeClustering.predict (mlejax extension): label of the nearest training row."""
    X_fit, query = _fit_query(data)
    X_fit = X_fit[:600]
    model = AgglomerativeClustering(4, linkage=linkage, metric=metric).fit(X_fit)
    mle.export_model(model, tmp_path / "ag.mle", training_data=X_fit, sample_input=query[:8])
    m = mle.load_model(tmp_path / "ag.mle")
    expected = _nearest_rule(query, X_fit, model.labels_, metric)
    assert np.array_equal(m.predict(query), expected)
    assert np.array_equal(m.predict(query[:1]), expected[:1])
    assert np.array_equal(m.predict(X_fit), model.labels_)


def test_agglomerative_needs_training_data(tmp_path):
    X_fit, _ = _fit_query("iris")
    model = AgglomerativeClustering(3).fit(X_fit)
    with pytest.raises(UnsupportedModelError, match="training_data"):
        mle.export_model(model, tmp_path / "ag.mle")
    with pytest.raises(UnsupportedModelError, match="training_data"):
        mle.export_model(model, tmp_path / "ag.mle", training_data=X_fit[:10])
