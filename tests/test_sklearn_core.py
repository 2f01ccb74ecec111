"""Parity of the first scikit-learn converters against scikit-learn itself."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from helpers import assert_close, assert_same_labels, check_methods, roundtrip


def _clf_data(n_classes=3, nan=False, labels=None, n=600, seed=0):
    X, y = make_classification(n, 8, n_informative=5, n_classes=n_classes, random_state=seed)
    X = X.astype(np.float32)
    if nan:
        rng = np.random.default_rng(seed)
        X[rng.random(X.shape) < 0.1] = np.nan
    if labels is not None:
        y = np.asarray(labels, dtype=object)[y]
    return X, y


def _reg_data(n_targets=1, nan=False, n=600, seed=0):
    X, y = make_regression(n, 8, n_informative=6, n_targets=n_targets, noise=0.5, random_state=seed)
    X = X.astype(np.float32)
    if nan:
        X[np.random.default_rng(seed).random(X.shape) < 0.1] = np.nan
    return X, y


TREE_CLASSIFIERS = [
    DecisionTreeClassifier(random_state=0),
    DecisionTreeClassifier(max_depth=4, random_state=0),
    RandomForestClassifier(n_estimators=15, random_state=0),
]


@pytest.mark.parametrize("model", TREE_CLASSIFIERS, ids=lambda m: type(m).__name__ + str(m.max_depth))
@pytest.mark.parametrize("n_classes,labels", [(2, None), (3, None), (3, ["cat", "dog", "émeu"])])
@pytest.mark.parametrize("nan", [False, True])
def test_tree_classifiers(model, n_classes, labels, nan, tmp_path):
    X, y = _clf_data(n_classes, nan, labels)
    model.fit(X[:400], y[:400])
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, X)
    assert list(m.classes_) == list(model.classes_)


@pytest.mark.parametrize("model", [DecisionTreeRegressor(random_state=0), RandomForestRegressor(n_estimators=10, random_state=0)], ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("n_targets", [1, 3])
@pytest.mark.parametrize("nan", [False, True])
def test_tree_regressors(model, n_targets, nan, tmp_path):
    X, y = _reg_data(n_targets, nan)
    model.fit(X[:400], y[:400])
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, X)


def test_tree_thresholds_at_float32_edges(tmp_path):
    """Inputs exactly at, just above and just below every threshold route as in sklearn."""
    X, y = _clf_data(2, n=300)
    model = DecisionTreeClassifier(random_state=0).fit(X, y)
    t = model.tree_.threshold[model.tree_.feature >= 0]
    f = model.tree_.feature[model.tree_.feature >= 0]
    rows = []
    for thr, feat in zip(t, f):
        for v in (np.float32(thr), np.nextafter(np.float32(thr), np.float32(np.inf)), np.nextafter(np.float32(thr), np.float32(-np.inf))):
            r = X[len(rows) % len(X)].copy()
            r[feat] = v
            rows.append(r)
    E = np.asarray(rows, dtype=np.float32)
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict_proba(E), model.predict_proba(E))
    assert_same_labels(m.predict(E), model.predict(E))


@pytest.mark.parametrize("n_classes,labels", [(2, None), (4, None), (2, ["no", "yes"])])
def test_logistic_regression(n_classes, labels, tmp_path):
    # float32 values in float64 arrays: sklearn then computes in float64, the accurate reference
    # (on float32 arrays it computes 1 - expit(d) in float32 and loses ~1e-3 in log-probabilities).
    X, y = _clf_data(n_classes, labels=labels)
    X = X.astype(np.float64)
    model = LogisticRegression(max_iter=500).fit(X, y)
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, X)


@pytest.mark.parametrize("model", [LinearRegression(), Ridge(alpha=2.0)], ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("n_targets", [1, 2])
def test_linear_regressors(model, n_targets, tmp_path):
    X, y = _reg_data(n_targets)
    model.fit(X, y)
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, X)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_mlp_classifier(activation, n_classes, tmp_path):
    X, y = _clf_data(n_classes)
    X = X.astype(np.float64)  # float64 reference, as in test_logistic_regression
    model = MLPClassifier(hidden_layer_sizes=(16, 8), activation=activation, max_iter=300, random_state=0).fit(X, y)
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, X)


@pytest.mark.parametrize("n_targets,loss", [(1, "squared_error"), (2, "squared_error"), (1, "poisson")])
def test_mlp_regressor(n_targets, loss, tmp_path):
    X, y = _reg_data(n_targets)
    y = np.abs(y) / 100 if loss == "poisson" else y / 100
    model = MLPRegressor(loss=loss, hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, X)


def test_standard_scaler_and_pipeline(tmp_path):
    X, y = _clf_data(3)
    X = X * 50 + 7
    scaler = StandardScaler().fit(X)
    check_methods(scaler, roundtrip(scaler, X, tmp_path, "s.mle"), X)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    check_methods(pipe, roundtrip(pipe, X, tmp_path, "p.mle"), X)
    pipe = make_pipeline(StandardScaler(with_mean=False), MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0)).fit(X, y)
    check_methods(pipe, roundtrip(pipe, X, tmp_path, "p2.mle"), X)


def test_single_row_and_large_batch(tmp_path):
    X, y = _clf_data(3, nan=True, n=3000)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict_proba(X[:1]), model.predict_proba(X[:1]))
    big = np.tile(X, (30, 1))  # 90k rows: crosses the 65536-row tile
    assert_same_labels(m.predict(big), model.predict(big))
