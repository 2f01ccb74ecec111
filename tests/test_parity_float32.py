"""Issue 19 (parity round 2), float32 findings: outputs that lost more than the bound to float32 arithmetic.

Each configuration is one a peer converter suite runs; each is checked against the
native model on the same float32-valued inputs, within the default bound
``1e-5 * (1 + |native|)``. The figures in comments are the worst relative errors
before the fix (float32 accumulation) on the same configuration.
"""

import warnings

import numpy as np
import pytest

from helpers import assert_close, roundtrip


def _data(name):
    from sklearn import datasets

    if name == "digits":
        d = datasets.load_digits()
    elif name == "cancer":
        d = datasets.load_breast_cancer()
    elif name == "iris":
        d = datasets.load_iris()
    else:
        d = datasets.load_diabetes()
    return d.data.astype(np.float32), d.target


def _check(model, X, tmp_path, methods):
    m = roundtrip(model, X, tmp_path)
    worst = 0.0
    for method in methods:
        for rows in (X, X[:1]):
            with np.errstate(all="ignore"):
                native = getattr(model, method)(rows.astype(np.float64))
            worst = max(worst, assert_close(getattr(m, method)(rows), native, what=method))
    return worst


# --- sums of large cancelling terms: float64 inside the op (LinearFloat64) -------------------

@pytest.mark.parametrize("loss,data", [
    ("squared_error", "digits"),   # was 4.6e-4
    ("squared_hinge", "iris"),     # was 1.3e-3
    ("hinge", "cancer"),           # was 1.9e-4
])
def test_sgd_classifier_unscaled(loss, data, tmp_path):
    """SGD on unscaled data: coefficients in the thousands whose products cancel in the decision value."""
    from sklearn.linear_model import SGDClassifier

    X, y = _data(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SGDClassifier(loss=loss, max_iter=50, random_state=0).fit(X, y)
    _check(model, X, tmp_path, ["decision_function"])


def test_sgd_log_loss_int64_input(tmp_path):
    """Integer inputs (exact in float32): the error was arithmetic alone (1.2e-5)."""
    from sklearn.linear_model import SGDClassifier

    rng = np.random.default_rng(0)
    X = rng.integers(0, 100, size=(300, 10)).astype(np.int64)
    y = (X[:, 0] + X[:, 1] > 100).astype(int) + (X[:, 2] > 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    m = roundtrip(model, X.astype(np.float32), tmp_path)
    for method in ("decision_function", "predict_proba", "predict_log_proba"):
        assert_close(getattr(m, method)(X), getattr(model, method)(X), what=method)


@pytest.mark.parametrize("data", ["digits", "counts"])
def test_multinomial_nb_log_proba(data, tmp_path):
    """Joint log-likelihoods of count data are large and close: the log-softmax is taken before rounding (was 1.6e-4)."""
    from sklearn.naive_bayes import MultinomialNB

    if data == "digits":
        X, y = _data("digits")
    else:
        rng = np.random.default_rng(0)
        X, y = rng.integers(0, 50, (200, 30)).astype(np.float32), rng.integers(0, 5, 200)
    _check(MultinomialNB().fit(X, y), X, tmp_path, ["predict_proba", "predict_log_proba"])
