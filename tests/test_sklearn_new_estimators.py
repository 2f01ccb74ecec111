"""Estimators added for parity round 2 (issue 19) against scikit-learn's own methods.

Each model is checked on its training rows (float32 values, as mlejax computes),
on a single row and on a larger batch; labels exactly, floats within
1e-5 * (1 + |native|).
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

import mlejax as mle
from helpers import check_methods, roundtrip

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")


def _data(n_classes=3, n=300, f=6, labels=True, seed=0):
    X, y = make_classification(n, f, n_informative=4, n_redundant=0, n_classes=n_classes, random_state=seed)
    X = X.astype(np.float32).astype(np.float64)
    if labels:
        y = np.asarray(["cat", "dog", "eel", "fox", "gnu"], dtype=object)[y]
    return X, y


def _big(X, n=2000, seed=1):
    rng = np.random.default_rng(seed)
    return (X[rng.integers(0, len(X), n)] + rng.normal(0, 0.5, (n, X.shape[1]))).astype(np.float32).astype(np.float64)


def _check_all(model, X, tmp_path, methods=METHODS, tol=1e-5):
    m = roundtrip(model, X, tmp_path)
    worst = {}
    for rows in (X, X[:1], _big(X)):
        for k, v in check_methods(model, m, rows, methods=methods, tol=tol).items():
            worst[k] = max(worst.get(k, 0.0), v)
    return m, worst


# --- discriminant analysis --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["svd", "lsqr", "eigen"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_lda(solver, n_classes, tmp_path):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X, y = _data(n_classes)
    model = LinearDiscriminantAnalysis(solver=solver, shrinkage="auto" if solver != "svd" else None).fit(X, y)
    methods = tuple(mth for mth in METHODS if not (solver == "lsqr" and mth == "transform"))
    m, worst = _check_all(model, X, tmp_path, methods)
    assert ("transform" in m.methods) == (solver != "lsqr")
    print(worst)


def test_lda_zero_probability_log(tmp_path):
    """A probability that is exactly 0 in float64 has LDA's log of float64's smallest normal, not -inf."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X, y = _data(2, labels=False)
    model = LinearDiscriminantAnalysis().fit(X, y)
    far = (np.sign(model.coef_) * 60.0).reshape(1, -1)
    far = np.vstack([far, -far])
    native = model.predict_log_proba(far)
    assert np.isfinite(native).all() and native.min() < -700
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, far, methods=("predict", "predict_proba", "predict_log_proba"))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_qda(n_classes, tmp_path):
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    X, y = _data(n_classes)
    model = QuadraticDiscriminantAnalysis(reg_param=0.01).fit(X, y)
    _, worst = _check_all(model, X, tmp_path)
    print(worst)
