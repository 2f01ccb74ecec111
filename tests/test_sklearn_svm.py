"""Parity of scikit-learn kernel SVMs (libsvm) with scikit-learn.

SVMs do not accept NaN. Float outputs are sums over support vectors, checked
with the float32 term bound of helpers_float32 (it matters for polynomial
kernels, whose terms are large and cancel). ``pytest -s`` prints the worst
error per case.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.svm import SVC, SVR, NuSVC, NuSVR, OneClassSVM

from helpers import assert_same_labels, roundtrip
from helpers_float32 import assert_close_with_terms
from mlejax.format.errors import UnsupportedModelError
from mlejax.lowering import ops_kernels

KERNELS = ["linear", "poly", "rbf", "sigmoid"]
METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "score_samples")
LABELS = np.array(["ant", "bee", "cat", "dog"], dtype=object)


def _clf_data(n_classes, strings, n=240, seed=0):
    X, y = make_classification(n, 5, n_informative=4, n_redundant=0, n_classes=n_classes, n_clusters_per_class=1,
                               class_sep=0.8, random_state=seed)
    return X.astype(np.float32), (LABELS[y] if strings else y)


def _kernel_scale(model, X):
    """Per row, ``sum_s |K(x, sv_s)| * sum_k |dual_coef[k, s]|``: the magnitude of the terms of every decision value."""
    params = {"gamma": model._gamma, "coef0": model.coef0, "degree": model.degree}
    K = pairwise_kernels(X.astype(np.float64), model.support_vectors_, metric=model.kernel, filter_params=True, **params)
    return np.abs(K) @ np.abs(model._dual_coef_).sum(axis=0) + np.abs(model._intercept_).max()


def _parity(model, X, tmp_path, name):
    """Every method on ``X`` and on one row; float outputs within the float32 term bound (helpers_float32).

    Probabilities move by at most ``max |probA|`` times the decision error, so they get that multiple of it.
    """
    m = roundtrip(model, X, tmp_path)
    scale = _kernel_scale(model, X) * (1.0 + np.abs(getattr(model, "probA_", np.zeros(1))).max(initial=0.0))
    worst = {}
    for rows in (slice(None), slice(0, 1)):
        for method in METHODS:
            if not hasattr(model, method):
                assert not hasattr(m, method), f"loaded model has {method} but the source does not"
                continue
            native, ours = getattr(model, method)(X[rows]), getattr(m, method)(X[rows])
            if method == "predict" and hasattr(model, "classes_"):
                assert_same_labels(ours, native, what=method)
            else:
                worst[method] = max(worst.get(method, 0.0), assert_close_with_terms(ours, native, scale[rows], method))
    print(f"WORST {name}: {worst} (max term scale {scale.max():.3g})")
    return worst


def _fit(model, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # probability=True is deprecated in scikit-learn 1.9; still supported
        return model.fit(X.astype(np.float64), y)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n_classes,strings", [(2, True), (4, True), (3, False)], ids=["binary-str", "4class-str", "3class"])
def test_svc(kernel, n_classes, strings, tmp_path):
    X, y = _clf_data(n_classes, strings)
    model = _fit(SVC(kernel=kernel, C=3.0, probability=True, random_state=0, coef0=0.5), X, y)
    _parity(model, X, tmp_path, f"SVC[{kernel}, {n_classes}]")


@pytest.mark.parametrize("kernel", ["poly", "rbf"])
def test_nu_svc(kernel, tmp_path):
    X, y = _clf_data(4, True)
    model = _fit(NuSVC(kernel=kernel, nu=0.3, probability=True, random_state=0, coef0=0.5), X, y)
    _parity(model, X, tmp_path, f"NuSVC[{kernel}, 4]")


@pytest.mark.parametrize("shape,ties", [("ovo", False), ("ovr", True)])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_svc_decision_shapes(shape, ties, n_classes, tmp_path):
    X, y = _clf_data(n_classes, True)
    model = _fit(SVC(kernel="rbf", C=3.0, decision_function_shape=shape, break_ties=ties), X, y)
    _parity(model, X, tmp_path, f"SVC[rbf, {n_classes}, {shape}, break_ties={ties}]")


def test_svc_without_probability_has_no_proba(tmp_path):
    X, y = _clf_data(3, False)
    model = _fit(SVC(gamma=0.3), X, y)
    assert not hasattr(roundtrip(model, X, tmp_path), "predict_proba")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cls", [SVR, NuSVR], ids=lambda c: c.__name__)
def test_svr(cls, kernel, tmp_path):
    X, y = make_regression(240, 5, n_informative=4, noise=1.0, random_state=0)
    X = X.astype(np.float32)
    model = _fit(cls(kernel=kernel, C=5.0, gamma="scale", coef0=0.3, degree=2), X, y / 20)
    _parity(model, X, tmp_path, f"{cls.__name__}[{kernel}]")


@pytest.mark.parametrize("kernel", KERNELS)
def test_one_class_svm(kernel, tmp_path):
    X, _ = _clf_data(2, False)
    model = _fit(OneClassSVM(kernel=kernel, nu=0.2, gamma=0.05, coef0=0.1), X)
    _parity(model, X, tmp_path, f"OneClassSVM[{kernel}]")


def test_kernel_expansion_chunks_support_vectors(tmp_path, monkeypatch):
    """A tiny block budget forces the chunked path (several support-vector chunks, last one padded)."""
    X, y = _clf_data(3, False, n=400)
    model = _fit(SVC(kernel="rbf", C=0.5, probability=True, random_state=0), X, y)
    monkeypatch.setattr(ops_kernels, "KERNEL_BLOCK_ELEMENTS", 512 * 37)
    assert model.support_vectors_.shape[0] > 37 and model.support_vectors_.shape[0] % 37
    _parity(model, X, tmp_path, "SVC[rbf, chunked]")


def test_svc_large_batch(tmp_path):
    X, y = _clf_data(4, True, n=3000, seed=1)
    model = _fit(SVC(kernel="rbf", C=2.0), X[:600], y[:600])
    _parity(model, X, tmp_path, "SVC[rbf, 3000 rows]")


def test_callable_kernel_is_refused(tmp_path):
    X, y = _clf_data(2, False, n=60)
    model = SVC(kernel=lambda a, b: a @ b.T).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="kernel"):
        roundtrip(model, X, tmp_path)
