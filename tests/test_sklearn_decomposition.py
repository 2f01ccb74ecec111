"""Parity of decomposition converters (PCA, IncrementalPCA, TruncatedSVD, KernelPCA, FastICA) with scikit-learn.

Data are float32 values held in float64 arrays, so scikit-learn works in
float64 on exactly the values mlejax sees. ``digits`` has constant columns
(zero variance: whitening's clipped scale) and integer pixels; ``blobs`` is
offset from the origin, which stresses float32 centring.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.decomposition import NMF, PCA, FastICA, IncrementalPCA, KernelPCA, MiniBatchNMF, TruncatedSVD

import mlejax as mle
from mlejax.format.errors import UnsupportedModelError

from helpers import assert_close, check_methods, roundtrip

METHODS = ("transform", "score_samples")


def _blobs():
    X, _ = make_blobs(3000, 6, centers=5, cluster_std=2.0, random_state=0)
    return (X * 3 + 20).astype(np.float32).astype(np.float64)


def _digits():
    X, _ = load_digits(return_X_y=True)
    return X.astype(np.float32).astype(np.float64)


DATASETS = {"blobs": _blobs, "digits": _digits}


def _fit(model, data, n_fit=None):
    X = DATASETS[data]()
    n = n_fit or 2 * len(X) // 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FastICA convergence on digits
        model.fit(X[:n])
    return X[n:]


def _fit_check(model, data, tmp_path, n_fit=None):
    query = _fit(model, data, n_fit)
    m = roundtrip(model, query, tmp_path)
    worst = check_methods(model, m, query, methods=METHODS)
    check_methods(model, m, query[:1], methods=METHODS)
    return worst


LINEAR = [
    PCA(4),
    PCA(5, whiten=True),
    PCA(0.9, svd_solver="full", whiten=True),
    PCA(3, svd_solver="randomized", random_state=0),
    IncrementalPCA(4, batch_size=500),
    IncrementalPCA(3, whiten=True, batch_size=500),
    TruncatedSVD(4, random_state=0),
    TruncatedSVD(3, algorithm="arpack"),
    FastICA(3, random_state=0, max_iter=400),
    FastICA(3, whiten="arbitrary-variance", random_state=0, max_iter=400),
]


@pytest.mark.parametrize("model", LINEAR, ids=repr)
@pytest.mark.parametrize("data", DATASETS)
def test_linear_decompositions(model, data, tmp_path):
    _fit_check(model, data, tmp_path)


def test_fast_ica_without_whitening(tmp_path):
    """whiten=False: no centring (no mean_ is applied), sources are x @ components_.T."""
    X = _blobs()
    X = X - X.mean(axis=0)
    model = FastICA(whiten=False, random_state=0, max_iter=400).fit(X[:2000])
    m = roundtrip(model, X[2000:], tmp_path)
    check_methods(model, m, X[2000:], methods=METHODS)


def test_pca_full_rank_whiten_tiny_variance(tmp_path):
    """All components of digits, some with zero variance: whitening uses sklearn's eps-clipped scale.

    A zero-variance component is divided by ``eps`` (scale ~4.5e15), so its output is the rounding
    noise of ``(x - mean) · w`` amplified; no float32 program reproduces it to 1e-5. The float32
    forward error of that dot product is bounded by its conditioning, whatever the BLAS kernel
    (Higham's γ_n bound, with the rounding of ``x - mean`` and of ``W`` to float32 counted):
    ``|ours - native| <= (n + 2) · u32 · (|x - mean| @ |W|ᵀ)``, ``u32`` the float32 unit roundoff.
    Every value meets the default bound plus that term; components whose variance is not tiny
    meet the default bound alone. The covariance is singular, so scikit-learn's score_samples
    fails and the export leaves it out.
    """
    X = _digits()
    model = PCA(whiten=True).fit(X[:1200])
    query = X[1200:]
    assert model.explained_variance_.min() < 1e-10
    with pytest.raises(np.linalg.LinAlgError):
        model.score_samples(query)
    m = roundtrip(model, query, tmp_path)
    assert "score_samples" not in m.methods
    native, ours = model.transform(query), m.transform(query)

    eps = np.finfo(model.explained_variance_.dtype).eps
    weight = model.components_ / np.maximum(np.sqrt(model.explained_variance_), eps)[:, None]
    conditioning = np.abs(query - model.mean_) @ np.abs(weight).T
    rounding = (query.shape[1] + 2) * (np.finfo(np.float32).eps / 2) * conditioning
    err = np.abs(ours - native)
    assert (err <= 1e-5 * (1 + np.abs(native)) + rounding).all(), f"worst abs error {err.max()}"

    regular = model.explained_variance_ > 1e-6
    assert regular.sum() >= 50
    assert_close(ours[:, regular], native[:, regular], what="transform (regular components)")
    assert_close(m.transform(query[:1])[:, regular], native[:1, regular], what="transform, one row")


def _check_kernel_pca(model, data, tmp_path, n_fit=700):
    """Default bound plus the float32 rounding of the uncentred kernel entries.

    mlejax computes the kernel ``K`` against the training rows in float32 and
    centres the product ``K @ A`` (``A`` the scaled eigenvectors). Each entry
    of ``K`` carries a relative rounding error of a few float32 ulps, so the
    result can be off by about ``eps32 * (|K| @ |A| + mean|K| * |sum A|)``;
    for a poly kernel on data far from the origin, ``|K|`` reaches ~1e7 while
    the centred result is ~1e2, beyond the default bound. That term is added
    (times 8) to the default bound; for small kernels (rbf, cosine) it is negligible.
    """
    from sklearn.metrics.pairwise import pairwise_kernels

    query = _fit(model, data, n_fit)
    m = roundtrip(model, query, tmp_path)
    native, ours = model.transform(query), m.transform(query)
    params = {"gamma": model.gamma_, "degree": model.degree, "coef0": model.coef0}
    K = np.abs(pairwise_kernels(query, model.X_fit_, metric=model.kernel, filter_params=True, **params))
    nz = model.eigenvalues_ > 0
    A = np.zeros_like(model.eigenvectors_)
    A[:, nz] = model.eigenvectors_[:, nz] / np.sqrt(model.eigenvalues_[nz])
    rounding = np.finfo(np.float32).eps * (K @ np.abs(A) + K.mean(axis=1, keepdims=True) * np.abs(A.sum(axis=0)))
    err = np.abs(ours - native)
    assert (err <= 1e-5 * (1 + np.abs(native)) + 8 * rounding).all(), f"worst abs error {err.max()}"
    assert_close(m.transform(query[:1]), model.transform(query[:1]), tol=1e-5 + 8 * rounding[:1].max())
    return err.max()


@pytest.mark.parametrize(
    "model",
    [
        KernelPCA(4, kernel="poly", degree=3, gamma=1e-3, coef0=1.0),
        KernelPCA(4, kernel="poly", degree=2),
        KernelPCA(4, kernel="rbf", gamma=0.01),
        KernelPCA(3, kernel="rbf"),
        KernelPCA(4, kernel="sigmoid", gamma=1e-3, coef0=0.5),
        KernelPCA(4, kernel="cosine"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.filterwarnings("ignore:export check")  # export_model's own check uses the default bound
def test_kernel_pca(model, data, tmp_path):
    _check_kernel_pca(model, data, tmp_path)


@pytest.mark.parametrize("data", DATASETS)
def test_kernel_pca_linear(data, tmp_path):
    """The linear kernel is exported as the equivalent centred projection: default bound."""
    _fit_check(KernelPCA(4, kernel="linear"), data, tmp_path, n_fit=700)


def test_kernel_pca_chunked(tmp_path, monkeypatch):
    """The kernel against the training rows is built in many chunks (a ragged last one)."""
    from mlejax.lowering import ops_distance

    monkeypatch.setattr(ops_distance, "_MAX_WORK", 1024 * 61)
    _check_kernel_pca(KernelPCA(5, kernel="rbf", gamma=0.01), "digits", tmp_path)


@pytest.mark.parametrize("model", [NMF(5, solver="mu", max_iter=500, random_state=0), MiniBatchNMF(5, random_state=0)], ids=repr)
def test_nmf_unsupported(model, tmp_path):
    """NMF.transform's result for a row depends on the other rows scored with it, so it is refused."""
    X = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:1000])
        alone = model.transform(X[1000:1001])
        in_batch = model.transform(X[1000:1100])[:1]
    assert np.abs(alone - in_batch).max() > 1e-5  # the reason: no per-row function to compile
    with pytest.raises(UnsupportedModelError, match="NMF"):
        mle.export_model(model, tmp_path / "n.mle")
