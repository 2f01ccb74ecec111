"""Estimators added for parity round 2 (issue 19) against scikit-learn's own methods.

Each model is checked on its training rows (float32 values, as mlejax computes),
on a single row and on a larger batch; labels exactly, floats within
1e-5 * (1 + |native|).
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

import mlejax as mle
from helpers import assert_close, assert_same_labels, check_methods, roundtrip

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")
SLOW = pytest.mark.slow


def _cases(values, fast):
    """``values`` as parameters; all but those in ``fast`` run only with ``-m slow`` (the default run's time budget)."""
    return [v if v in fast else pytest.param(*(v if isinstance(v, tuple) else (v,)), marks=SLOW) for v in values]


def _data(n_classes=3, n=300, f=6, labels=True, seed=0):
    X, y = make_classification(n, f, n_informative=4, n_redundant=0, n_classes=n_classes, random_state=seed)
    X = X.astype(np.float32).astype(np.float64)
    if labels:
        y = np.asarray(["cat", "dog", "eel", "fox", "gnu"], dtype=object)[y]
    return X, y


def _big(X, n=700, seed=1):
    rng = np.random.default_rng(seed)
    return (X[rng.integers(0, len(X), n)] + rng.normal(0, 0.5, (n, X.shape[1]))).astype(np.float32).astype(np.float64)


def _check_all(model, X, tmp_path, methods=METHODS, tol=1e-5):
    m = roundtrip(model, X, tmp_path)
    worst = {}
    for rows in (X[:1], np.vstack([X, _big(X)])):  # a single row; the training rows and nearby ones
        for k, v in check_methods(model, m, rows, methods=methods, tol=tol).items():
            worst[k] = max(worst.get(k, 0.0), v)
    return m, worst


# --- discriminant analysis --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", _cases(["svd", "lsqr", "eigen"], ["svd"]))
@pytest.mark.parametrize("n_classes", _cases([2, 3], [3]))
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


@pytest.mark.parametrize("n_classes", _cases([2, 4], [4]))
def test_qda(n_classes, tmp_path):
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    X, y = _data(n_classes)
    model = QuadraticDiscriminantAnalysis(reg_param=0.01).fit(X, y)
    _, worst = _check_all(model, X, tmp_path)
    print(worst)


# --- dummy estimators ---------------------------------------------------------------------------------


def _check_stacked(model, m, rows, methods=("predict", "predict_proba", "predict_log_proba", "decision_function")):
    """Like check_methods, for models whose methods return a list per output (compared side by side)."""
    worst = {}
    for method in methods:
        if not hasattr(model, method):
            assert not hasattr(m, method) or method not in m.methods, method
            continue
        native = getattr(model, method)(rows)
        native = np.hstack(native) if isinstance(native, list) else native
        ours = getattr(m, method)(rows)
        if method == "predict" and np.asarray(native).dtype.kind in "OUb" or (method == "predict" and hasattr(model, "classes_") and "label" in m.graph.outputs):
            assert_same_labels(ours, native, what=method)
            worst[method] = 0.0
        else:
            worst[method] = assert_close(ours, native, what=method)
    return worst


@pytest.mark.parametrize("strategy", _cases(["most_frequent", "prior", "constant"], ["prior"]))
def test_dummy_classifier(strategy, tmp_path):
    from sklearn.dummy import DummyClassifier

    X, y = _data(3)
    model = DummyClassifier(strategy=strategy, constant="eel").fit(X, y)
    _check_all(model, X, tmp_path)


@SLOW
def test_dummy_classifier_multioutput(tmp_path):
    from sklearn.dummy import DummyClassifier

    X, y = _data(3, labels=False)
    Y = np.stack([y, (X[:, 0] > 0).astype(int) + 5], axis=1)
    for strategy in ("prior", "constant"):
        model = DummyClassifier(strategy=strategy, constant=[2, 6]).fit(X, Y)
        m = roundtrip(model, X, tmp_path, name=f"{strategy}.mle")
        for rows in (X, X[:1]):
            _check_stacked(model, m, rows)


@pytest.mark.parametrize("strategy", ["stratified", "uniform"])
def test_dummy_classifier_random_is_refused(strategy, tmp_path):
    from sklearn.dummy import DummyClassifier

    X, y = _data(3)
    model = DummyClassifier(strategy=strategy).fit(X, y)
    with pytest.raises(mle.UnsupportedModelError, match="at random"):
        mle.export_model(model, tmp_path / "m.mle")


@pytest.mark.parametrize("strategy,n_targets", _cases([("mean", 1), ("median", 2), ("quantile", 1), ("constant", 1)], [("median", 2)]))
def test_dummy_regressor(strategy, n_targets, tmp_path):
    from sklearn.dummy import DummyRegressor

    X, y = make_regression(200, 5, n_targets=n_targets, random_state=0)
    model = DummyRegressor(strategy=strategy, quantile=0.3, constant=[1.5] * n_targets).fit(X, y)
    _check_all(model, X, tmp_path, methods=("predict",))


# --- multi-output meta-estimators -----------------------------------------------------------------


def _multilabel(n=300, f=6, seed=0):
    from sklearn.datasets import make_multilabel_classification

    X, Y = make_multilabel_classification(n, f, n_classes=3, random_state=seed)
    return X.astype(np.float64), Y


@SLOW
def test_multioutput_regressor(tmp_path):
    from sklearn.linear_model import Ridge
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.tree import DecisionTreeRegressor

    X, Y = make_regression(300, 5, n_targets=3, random_state=0)
    X, Y = X.astype(np.float32).astype(np.float64), Y / Y.std(axis=0)  # targets of unit scale
    for base in (Ridge(), DecisionTreeRegressor(max_depth=4, random_state=0)):
        model = MultiOutputRegressor(base).fit(X, Y)
        _check_all(model, X, tmp_path, methods=("predict",))


def test_multioutput_classifier(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier

    X, y = _data(3)
    Y = np.stack([y, np.where(X[:, 1] > 0, "hi", "lo"), np.where(X[:, 2] > 0.5, "hi", "mid")], axis=1)
    model = MultiOutputClassifier(LogisticRegression(max_iter=500)).fit(X, Y)
    m = roundtrip(model, X, tmp_path)
    for rows in (X[:1], np.vstack([X, _big(X)])):
        _check_stacked(model, m, rows)


@pytest.mark.parametrize("order", _cases([None, [2, 0, 1]], [[2, 0, 1]]))
def test_regressor_chain(order, tmp_path):
    from sklearn.linear_model import Ridge
    from sklearn.multioutput import RegressorChain

    X, Y = make_regression(300, 5, n_targets=3, random_state=0)
    X, Y = X.astype(np.float32).astype(np.float64), Y / Y.std(axis=0)  # targets of unit scale
    model = RegressorChain(Ridge(), order=order).fit(X, Y)
    _check_all(model, X, tmp_path, methods=("predict",))


@pytest.mark.parametrize("chain_method", _cases(["predict", "predict_proba", "decision_function"], ["predict_proba"]))
def test_classifier_chain(chain_method, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import ClassifierChain

    X, Y = _multilabel()
    model = ClassifierChain(LogisticRegression(max_iter=500), order=[1, 2, 0], chain_method=chain_method).fit(X, Y)
    m = roundtrip(model, X, tmp_path)
    for rows in (X[:1], np.vstack([X, _big(X)])):
        _check_stacked(model, m, rows)


# --- one-vs-one -----------------------------------------------------------------------------------


@pytest.mark.parametrize("base", _cases(["logistic", "tree", "svc", "gnb"], ["logistic"]))
@pytest.mark.parametrize("n_classes", _cases([2, 4], [4]))
def test_one_vs_one(base, n_classes, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsOneClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    estimator = {"logistic": LogisticRegression(max_iter=500), "tree": DecisionTreeClassifier(max_depth=4, random_state=0),
                 "svc": SVC(), "gnb": GaussianNB()}[base]
    X, y = _data(n_classes)
    model = OneVsOneClassifier(estimator).fit(X, y)
    _check_all(model, X, tmp_path, methods=("predict", "decision_function"))


# --- calibration --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", _cases(["sigmoid", "isotonic"], ["isotonic"]))
@pytest.mark.parametrize("ensemble", _cases([True, False], [False]))
@pytest.mark.parametrize("base,n_classes", _cases([("svc", 2), ("svc", 3), ("gnb", 3), ("tree", 2)], [("svc", 3)]))
def test_calibrated_classifier(method, ensemble, base, n_classes, tmp_path):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.naive_bayes import GaussianNB
    from sklearn.svm import LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    estimator = {"svc": LinearSVC(), "gnb": GaussianNB(), "tree": DecisionTreeClassifier(max_depth=3, random_state=0)}[base]
    X, y = _data(n_classes)
    model = CalibratedClassifierCV(estimator, method=method, ensemble=ensemble, cv=3).fit(X, y)
    # Isotonic calibrators of GaussianNB probabilities have slopes up to ~900 here: the float32 rounding
    # of the base probability (~3e-8) becomes up to ~8e-5 after calibration. Decision-based bases stay within 1e-6.
    tol = 1e-4 if (base, method) == ("gnb", "isotonic") else 1e-5
    _, worst = _check_all(model, X, tmp_path, tol=tol)
    print(worst)


def test_calibrated_temperature_is_refused(tmp_path):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    X, y = _data(3)
    model = CalibratedClassifierCV(LinearSVC(), method="temperature", cv=3).fit(X, y)
    with pytest.raises(mle.UnsupportedModelError, match="temperature"):
        mle.export_model(model, tmp_path / "m.mle")


# --- multi-output trees and multilabel networks ---------------------------------------------------------


@pytest.mark.parametrize("kind", _cases(["DecisionTree", "RandomForest", "ExtraTrees"], ["DecisionTree"]))
def test_multioutput_tree_classifier(kind, tmp_path):
    from sklearn import ensemble, tree

    cls = getattr(tree if kind == "DecisionTree" else ensemble, f"{kind}Classifier")
    params = {} if kind == "DecisionTree" else {"n_estimators": 5}
    X, y = _data(3)
    Y = np.stack([y, np.where(X[:, 1] > 0, "hi", "lo")], axis=1)  # outputs with different classes
    model = cls(max_depth=5, random_state=0, **params).fit(X, Y)
    m = roundtrip(model, X, tmp_path)
    for rows in (X[:1], np.vstack([X, _big(X)])):
        _check_stacked(model, m, rows)
        np.testing.assert_array_equal(m.apply(rows), model.apply(rows))
    Xl, Yl = _multilabel()  # multilabel indicator targets
    model = cls(max_depth=5, random_state=0, **params).fit(Xl, Yl)
    m = roundtrip(model, Xl, tmp_path, name="multilabel.mle")
    for rows in (Xl[:1], np.vstack([Xl, _big(Xl)])):
        _check_stacked(model, m, rows)


@pytest.mark.parametrize("kind", _cases(["DecisionTree", "RandomForest", "ExtraTrees"], ["DecisionTree"]))
def test_multioutput_tree_regressor(kind, tmp_path):
    from sklearn import ensemble, tree

    cls = getattr(tree if kind == "DecisionTree" else ensemble, f"{kind}Regressor")
    params = {} if kind == "DecisionTree" else {"n_estimators": 5}
    X, Y = make_regression(300, 5, n_targets=3, random_state=0)
    X = X.astype(np.float32).astype(np.float64)
    model = cls(max_depth=5, random_state=0, **params).fit(X, Y)
    _check_all(model, X, tmp_path, methods=("predict",))


def test_mlp_multilabel(tmp_path):
    from sklearn.neural_network import MLPClassifier

    X, Y = _multilabel()
    model = MLPClassifier((16,), max_iter=300, random_state=0).fit(X / 10, Y)
    m = roundtrip(model, X / 10, tmp_path)
    for rows in (X[:1] / 10, np.vstack([X, _big(X)]) / 10):
        check_methods(model, m, rows, methods=("predict", "predict_proba", "predict_log_proba"))
    assert m.predict(X[:3] / 10).dtype.kind in "iu"


# --- cross decomposition ------------------------------------------------------------------------------


@pytest.mark.parametrize("name,n_targets", _cases([("PLSRegression", 1), ("PLSRegression", 2), ("PLSCanonical", 2), ("CCA", 2), ("PLSSVD", 2)], [("PLSRegression", 2)]))
def test_cross_decomposition(name, n_targets, tmp_path):
    import sklearn.cross_decomposition as cd

    X, Y = make_regression(300, 6, n_targets=n_targets, noise=1.0, random_state=0)
    X, Y = X.astype(np.float32).astype(np.float64), Y / Y.std(axis=0)
    model = getattr(cd, name)(n_components=2).fit(X, Y)
    _, worst = _check_all(model, X, tmp_path, methods=("predict", "transform"))
    print(worst)


# --- imputers -------------------------------------------------------------------------------------------


def _with_missing(n=200, f=5, rate=0.2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)) @ rng.normal(size=(f, f))
    X = X.astype(np.float32).astype(np.float64)
    X[rng.random(X.shape) < rate] = np.nan
    return X


@pytest.mark.parametrize("weights", _cases(["uniform", "distance"], ["distance"]))
@pytest.mark.parametrize("extras", _cases([False, True], [True]))
def test_knn_imputer(weights, extras, tmp_path):
    from sklearn.impute import KNNImputer

    X = _with_missing()
    train = X.copy()
    if extras:
        train[:, 2] = np.nan  # a column missing in every training row
    model = KNNImputer(n_neighbors=4, weights=weights, add_indicator=extras, keep_empty_features=extras).fit(train)
    test = np.vstack([X, np.full((1, X.shape[1]), np.nan), _with_missing(300, seed=1)])  # an all-missing row too
    m = roundtrip(model, X, tmp_path)
    for rows in (test, test[200:201]):
        check_methods(model, m, rows, methods=("transform",))


@pytest.mark.parametrize("estimator", _cases(["bayesian_ridge", "tree"], ["bayesian_ridge"]))
def test_iterative_imputer(estimator, tmp_path):
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer
    from sklearn.linear_model import BayesianRidge
    from sklearn.tree import DecisionTreeRegressor

    est = {"bayesian_ridge": BayesianRidge(), "tree": DecisionTreeRegressor(max_depth=4, random_state=0)}[estimator]
    X = _with_missing()
    model = IterativeImputer(est, max_iter=5, random_state=0, add_indicator=True, min_value=-5.0, max_value=6.0).fit(X)
    test = np.vstack([X, _with_missing(300, seed=1)])
    m = roundtrip(model, X, tmp_path)
    for rows in (test, test[:1]):
        check_methods(model, m, rows, methods=("transform",))
    with pytest.raises(mle.UnsupportedModelError, match="sample_posterior"):
        mle.export_model(IterativeImputer(sample_posterior=True, max_iter=2).fit(X), tmp_path / "post.mle")


# --- neighbours: seuclidean / mahalanobis, KNeighborsTransformer, MeanShift ---------------------------


@pytest.mark.parametrize("metric,key,algorithm", _cases([("seuclidean", "V", "brute"), ("mahalanobis", "VI", "brute"), ("mahalanobis", "V", "ball_tree")], [("mahalanobis", "VI", "brute")]))
def test_knn_weighted_metrics(metric, key, algorithm, tmp_path):
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, RadiusNeighborsRegressor

    X, y = _data(3)
    cov = np.cov(X.T) + 0.1 * np.eye(X.shape[1])
    params = {"V": X.var(axis=0) + 0.1} if metric == "seuclidean" else {"VI": np.linalg.inv(cov)} if key == "VI" else {"V": cov}
    clf = KNeighborsClassifier(5, metric=metric, metric_params=params, weights="distance", algorithm=algorithm).fit(X, y)
    _check_all(clf, X, tmp_path, methods=("predict", "predict_proba"))
    reg = KNeighborsRegressor(4, metric=metric, metric_params=params, algorithm=algorithm).fit(X, X[:, 0])
    m = roundtrip(reg, X, tmp_path, name="reg.mle")
    check_methods(reg, m, _big(X, 500), methods=("predict",))
    rad = RadiusNeighborsRegressor(radius=3.0, metric=metric, metric_params=params, algorithm=algorithm).fit(X, X[:, 0])
    m = roundtrip(rad, X, tmp_path, name="rad.mle")
    check_methods(rad, m, X, methods=("predict",))


@pytest.mark.parametrize("mode", _cases(["distance", "connectivity"], ["distance"]))
def test_kneighbors_transformer(mode, tmp_path):
    from sklearn.neighbors import KNeighborsTransformer

    X, _ = _data(3, n=150)
    model = KNeighborsTransformer(n_neighbors=4, mode=mode).fit(X)
    m = roundtrip(model, X, tmp_path)
    for rows in (X[:1], np.vstack([X, _big(X, 300)])):
            assert_close(m.transform(rows), model.transform(rows).toarray(), what="transform")


def test_mean_shift(tmp_path):
    from sklearn.cluster import MeanShift

    X, _ = _data(3, n=200)
    model = MeanShift(bandwidth=2.5, bin_seeding=True).fit(X[:, :3])
    X = X[:, :3]
    m = roundtrip(model, X, tmp_path)
    for rows in (X[:1], np.vstack([X, _big(X)])):
        np.testing.assert_array_equal(m.predict(rows), model.predict(rows))


# --- precomputed kernels ----------------------------------------------------------------------------


def _kernel_rows(A, B):
    from sklearn.metrics.pairwise import rbf_kernel

    return rbf_kernel(A, B, gamma=0.2).astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("n_classes,probability", _cases([(2, False), (3, True)], [(2, False)]))
def test_svc_precomputed(n_classes, probability, tmp_path):
    from sklearn.svm import SVC, SVR

    X, y = _data(n_classes, n=150)
    K = _kernel_rows(X, X)
    model = SVC(kernel="precomputed", probability=probability, random_state=0).fit(K, y)
    test = _kernel_rows(_big(X, 400), X)
    m = roundtrip(model, K, tmp_path)
    for rows in (K[:1], np.vstack([K, test])):
        check_methods(model, m, rows, methods=("predict", "predict_proba", "decision_function"))
    reg = SVR(kernel="precomputed").fit(K, X[:, 0])
    m = roundtrip(reg, K, tmp_path, name="svr.mle")
    check_methods(reg, m, test, methods=("predict",))


def test_kernel_pca_precomputed(tmp_path):
    from sklearn.decomposition import KernelPCA

    X, _ = _data(3, n=150)
    K = _kernel_rows(X, X)
    model = KernelPCA(4, kernel="precomputed").fit(K)
    m = roundtrip(model, K, tmp_path)
    for rows in (K[:1], np.vstack([K, _kernel_rows(_big(X, 400), X)])):
        check_methods(model, m, rows, methods=("transform",))


# --- LightGBM with a custom objective -----------------------------------------------------------------


def _l2_objective(y_true, y_pred):
    return y_pred - y_true, np.ones_like(y_pred)


def _logloss_objective(y_true, y_pred):
    p = 1.0 / (1.0 + np.exp(-y_pred))
    return p - y_true, p * (1.0 - p)


def test_lightgbm_custom_objective_classifier(tmp_path):
    """LightGBM's predict returns the raw score for a callable objective (a classifier's predict_proba too): so does the export."""
    import lightgbm as lgb

    X, y = _data(2, labels=False)
    clf = lgb.LGBMClassifier(objective=_logloss_objective, n_estimators=20, num_leaves=8, verbose=-1).fit(X, y)
    m = roundtrip(clf, X, tmp_path, name="clf.mle")
    for rows in (X[:1], np.vstack([X, _big(X)])):
        with pytest.warns(UserWarning, match="raw scores"):
            native = clf.predict(rows), clf.predict_proba(rows)
        assert_close(m.predict(rows), native[0], what="predict")
        assert_close(m.predict_proba(rows), native[1], what="predict_proba")


@SLOW
def test_lightgbm_custom_objective_regressor(tmp_path):
    import lightgbm as lgb

    X, y = _data(2, labels=False)
    reg = lgb.LGBMRegressor(objective=_l2_objective, n_estimators=20, num_leaves=8, verbose=-1).fit(X, X[:, 0] + y)
    m = roundtrip(reg, X, tmp_path)
    for rows in (X[:1], np.vstack([X, _big(X)])):
        check_methods(reg, m, rows, methods=("predict",))
    booster = lgb.train({"objective": lambda pred, data: _l2_objective(data.get_label(), pred), "num_leaves": 8, "verbose": -1}, lgb.Dataset(X, y), num_boost_round=10)
    m = roundtrip(booster, X, tmp_path, name="booster.mle")
    assert_close(m.predict(X), booster.predict(X), what="Booster.predict")
