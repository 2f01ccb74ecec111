"""Parity of scikit-learn linear models (regressors, GLMs, classifiers, CV variants) with scikit-learn.

None of these estimators accepts NaN in ``X``, so there is no NaN case here.
Each case also runs a single row. ``pytest -s`` prints the worst error per case.
"""

import warnings

import numpy as np
import pytest
from sklearn import linear_model as lm
from sklearn.datasets import make_classification, make_regression
from sklearn.svm import LinearSVC, LinearSVR

from helpers import assert_close, assert_same_labels, check_methods, roundtrip
from helpers_float32 import assert_close_with_terms


def _clf_data(n_classes, labels=None, n=400, seed=0):
    """float32 rows (what the tests feed both sides) and labels; models are fitted on the float64 copy."""
    X, y = make_classification(n, 6, n_informative=4, n_classes=n_classes, n_clusters_per_class=1, random_state=seed)
    X = (X * 3 + 1).astype(np.float32)
    return X, (np.asarray(labels, dtype=object)[y] if labels is not None else y)


def _reg_data(n_targets=1, n=400, seed=0):
    X, y = make_regression(n, 6, n_informative=5, n_targets=n_targets, noise=1.0, random_state=seed)
    return X.astype(np.float32), y / 10


METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "score_samples")

def _parity(model, X, tmp_path, name):
    """Export, load, compare every method on ``X`` and on a single row; print and return the worst errors."""
    m = roundtrip(model, X, tmp_path)
    worst = check_methods(model, m, X, methods=METHODS)
    check_methods(model, m, X[:1], methods=tuple(worst))
    print(f"WORST {name}: {worst}")
    return worst


def _term_scale(model, X):
    """Per row, the largest ``|X| @ |coef|.T + |intercept|`` over the model's decision columns."""
    return np.max(np.abs(X.astype(np.float64)) @ np.abs(np.atleast_2d(model.coef_).T) + np.abs(model.intercept_), axis=1)


def _classifier_parity(model, X, tmp_path, name):
    """Like :func:`_parity` with the float32 term-magnitude allowance (helpers_float32) on float outputs."""
    m = roundtrip(model, X, tmp_path)
    scale = _term_scale(model, X)
    worst = {}
    for rows in (slice(None), slice(0, 1)):
        for method in METHODS:
            if not hasattr(model, method):
                assert not hasattr(m, method), f"loaded model has {method} but the source does not"
                continue
            native, ours = getattr(model, method)(X[rows]), getattr(m, method)(X[rows])
            if method == "predict":
                assert_same_labels(ours, native, what=method)
            else:
                err = assert_close_with_terms(ours, native, scale[rows], method)
                worst[method] = max(worst.get(method, 0.0), err)
    print(f"WORST {name}: {worst} (max term scale {scale.max():.3g})")
    return worst


CLASSIFIERS = {
    "LogisticRegression": lambda: lm.LogisticRegression(max_iter=1000),
    "LogisticRegression-C100": lambda: lm.LogisticRegression(C=100.0, max_iter=2000),
    "LogisticRegressionCV": lambda: lm.LogisticRegressionCV(Cs=3, cv=3, max_iter=500),
    "RidgeClassifier": lambda: lm.RidgeClassifier(alpha=0.5),
    "RidgeClassifierCV": lambda: lm.RidgeClassifierCV(alphas=(0.1, 1.0, 10.0)),
    "SGDClassifier-hinge": lambda: lm.SGDClassifier(random_state=0),
    "SGDClassifier-log_loss": lambda: lm.SGDClassifier(loss="log_loss", random_state=0),
    "SGDClassifier-modified_huber": lambda: lm.SGDClassifier(loss="modified_huber", random_state=0),
    "Perceptron": lambda: lm.Perceptron(random_state=0),
    "PassiveAggressiveClassifier": lambda: lm.PassiveAggressiveClassifier(random_state=0),
    "LinearSVC": lambda: LinearSVC(random_state=0),
}


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
@pytest.mark.parametrize("n_classes,labels", [(2, None), (4, ["ant", "bee", "cat", "dog"])], ids=["binary", "4class-str"])
def test_linear_classifiers(name, n_classes, labels, tmp_path):
    X, y = _clf_data(n_classes, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence / deprecation warnings of the fit are not under test
        model = CLASSIFIERS[name]().fit(X.astype(np.float64), y)
    _classifier_parity(model, X, tmp_path, f"{name}[{n_classes}]")


@pytest.mark.parametrize("make", [lambda: lm.LogisticRegression(C=100.0, max_iter=2000), lambda: lm.SGDClassifier(loss="log_loss", random_state=0)], ids=["LogisticRegression", "SGDClassifier"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_float32_fitted_models(make, n_classes, tmp_path):
    """Models fitted on float32 keep float32 coefficients, and scikit-learn then evaluates float32 input in float32.

    Its ``1 - expit(d)`` is then rounded to float32's grid (relative error up to 1e-3 for d in 8..16, and 0
    beyond 16.6 or -88.7), so for ``predict_log_proba`` (and the tiny probabilities behind it) the reference is
    scikit-learn's own float64 evaluation of the same model (float64 input). Everything else is compared
    with the float32 evaluation, as elsewhere.
    """
    X, y = _clf_data(n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make().fit(X, y)
    m = roundtrip(model, X, tmp_path)
    scale = _term_scale(model, X)
    assert_same_labels(m.predict(X), model.predict(X))
    assert_close_with_terms(m.decision_function(X), model.decision_function(X), scale, "decision_function")
    X64 = X.astype(np.float64)
    for method in ("predict_proba", "predict_log_proba"):
        assert_close_with_terms(getattr(m, method)(X), getattr(model, method)(X64), scale, method)


def test_logistic_regression_extreme_margins(tmp_path):
    """Rows far from the boundary: probabilities near 0/1 and their logs stay accurate (log space heads)."""
    X, y = _clf_data(3)
    model = lm.LogisticRegression(max_iter=1000).fit(X.astype(np.float64), y)
    E = X[:50] * 4  # decision values of tens: softmax terms near 1e-15
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict_log_proba(E), model.predict_log_proba(E))
    assert_close(m.predict_proba(E), model.predict_proba(E))


def test_modified_huber_all_zero_rows(tmp_path):
    """Rows where every class has decision <= -1 get uniform probabilities, as in scikit-learn."""
    X, y = _clf_data(3)
    model = lm.SGDClassifier(loss="modified_huber", random_state=0).fit(X.astype(np.float64), y)
    E = np.vstack([X, -X * 50]).astype(np.float32)
    native = model.predict_proba(E)
    assert np.any(np.all(model.decision_function(E) <= -1, axis=1)), "test needs rows whose decisions are all <= -1"
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict_proba(E), native)


REGRESSORS = {
    "LinearRegression": lm.LinearRegression,
    "Ridge": lambda: lm.Ridge(alpha=2.0),
    "RidgeCV": lambda: lm.RidgeCV(alphas=(0.1, 1.0, 10.0)),
    "Lasso": lambda: lm.Lasso(alpha=0.1),
    "LassoCV": lambda: lm.LassoCV(cv=3, alphas=10),
    "ElasticNet": lambda: lm.ElasticNet(alpha=0.1, l1_ratio=0.3),
    "ElasticNetCV": lambda: lm.ElasticNetCV(cv=3, alphas=10),
    "MultiTaskLasso": lambda: lm.MultiTaskLasso(alpha=0.1),
    "Lars": lm.Lars,
    "LassoLars": lambda: lm.LassoLars(alpha=0.01),
    "OrthogonalMatchingPursuit": lambda: lm.OrthogonalMatchingPursuit(n_nonzero_coefs=3),
    "BayesianRidge": lm.BayesianRidge,
    "ARDRegression": lm.ARDRegression,
    "HuberRegressor": lambda: lm.HuberRegressor(max_iter=500),
    "QuantileRegressor": lambda: lm.QuantileRegressor(quantile=0.7, alpha=0.0),
    "TheilSenRegressor": lambda: lm.TheilSenRegressor(random_state=0, max_subpopulation=200),
    "RANSACRegressor": lambda: lm.RANSACRegressor(random_state=0),
    "SGDRegressor": lambda: lm.SGDRegressor(random_state=0),
    "PassiveAggressiveRegressor": lambda: lm.PassiveAggressiveRegressor(random_state=0),
    "LinearSVR": lambda: LinearSVR(random_state=0, max_iter=5000),
}
MULTI_TARGET = {"LinearRegression", "Ridge", "RidgeCV", "Lasso", "ElasticNet", "MultiTaskLasso", "Lars", "OrthogonalMatchingPursuit"}


REGRESSOR_CASES = [(n, 1) for n in sorted(REGRESSORS) if n != "MultiTaskLasso"] + [(n, 2) for n in sorted(MULTI_TARGET)]


@pytest.mark.parametrize("name,n_targets", REGRESSOR_CASES)
def test_linear_regressors(name, n_targets, tmp_path):
    X, y = _reg_data(n_targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = REGRESSORS[name]().fit(X, y)
    _parity(model, X, tmp_path, f"{name}[{n_targets}]")


GLMS = {
    "PoissonRegressor": lambda: lm.PoissonRegressor(alpha=0.1),
    "GammaRegressor": lambda: lm.GammaRegressor(alpha=0.1),
    "TweedieRegressor-1.5-auto": lambda: lm.TweedieRegressor(power=1.5, alpha=0.1),
    "TweedieRegressor-0-auto": lambda: lm.TweedieRegressor(power=0.0, alpha=0.1),
    "TweedieRegressor-0-log": lambda: lm.TweedieRegressor(power=0.0, link="log", alpha=0.1),
    "TweedieRegressor-2-identity": lambda: lm.TweedieRegressor(power=2.0, link="identity", alpha=0.1),
}


@pytest.mark.parametrize("name", sorted(GLMS))
@pytest.mark.parametrize("seed", [0, 1])
def test_glm_regressors(name, seed, tmp_path):
    X, y = _reg_data(seed=seed)
    X = X / 4
    y = np.exp(y / np.abs(y).max() * 2) + (50.0 if "identity" in name else 0.0)  # positive; identity link needs y far from 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GLMS[name]().fit(X, y)
    _parity(model, X, tmp_path, f"{name}[seed={seed}]")


def test_sgd_one_class_svm(tmp_path):
    X, _ = _reg_data()
    model = lm.SGDOneClassSVM(nu=0.2, random_state=0).fit(X)
    _parity(model, X, tmp_path, "SGDOneClassSVM")


def test_large_batch_float32_input(tmp_path):
    """A few thousand rows, fed as float32, through a multinomial logistic regression."""
    X, y = _clf_data(4, n=3000, seed=3)
    model = lm.LogisticRegression(max_iter=1000).fit(X.astype(np.float64), y)
    _parity(model, X, tmp_path, "LogisticRegression[3000 rows]")
