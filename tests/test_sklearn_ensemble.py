"""Parity of scikit-learn ensembles (ExtraTrees, GradientBoosting, AdaBoost, Bagging, IsolationForest,
Voting, Stacking) against scikit-learn itself."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    AdaBoostClassifier,
    AdaBoostRegressor,
    BaggingClassifier,
    BaggingRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import mlejax as mle
from mlejax.format.errors import UnsupportedModelError

from helpers import assert_close, assert_same_labels

LABELS = {None: None, "str": ["cat", "dog", "émeu"]}


def _clf_data(n_classes=3, nan=False, labels=None, n=400, seed=0):
    X, y = make_classification(n, 6, n_informative=4, n_redundant=1, n_classes=n_classes, random_state=seed)
    X = X.astype(np.float32)
    if nan:
        X[np.random.default_rng(seed).random(X.shape) < 0.1] = np.nan
    if labels is not None:
        y = np.asarray(labels, dtype=object)[y]
    return X, y


def _reg_data(n_targets=1, nan=False, n=400, seed=0):
    X, y = make_regression(n, 6, n_informative=5, n_targets=n_targets, noise=0.5, random_state=seed)
    X = X.astype(np.float32)
    if nan:
        X[np.random.default_rng(seed).random(X.shape) < 0.1] = np.nan
    return X, y


#: Methods whose parity is checked.
METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform", "score_samples", "apply")


def _check(model, X, tmp_path, *, skip=(), single_row=False, tol=1e-5):
    """Export, load and compare every method of ``model`` on ``X`` (and on one row); return the worst
    relative errors ``|ours - native| / (1 + |native|)``.

    All graph outputs are computed by one ``run`` call (one compilation per batch
    size; labels come back mapped to ``classes_``) and compared with the native
    method reading that output. Every method the
    native model has, except those in ``skip``, must be exported.
    """
    path = tmp_path / "model.mle"
    mle.export_model(model, path)
    m = mle.load_model(path)
    assert set(m.methods) == {k for k in METHODS if hasattr(model, k) and k not in skip}
    if hasattr(model, "classes_"):
        assert list(m.classes_) == list(model.classes_)
    worst = {}
    for rows in (X, X[:1]) if single_row else (X,):
        outputs = dict(zip(m.outputs, m.run([rows])))
        for method, kind in m.methods.items():
            native = getattr(model, method)(rows)
            # run() gives graph outputs rows first; the method gives the source's layout
            # (VotingClassifier(flatten_transform=False).transform: [members, rows, classes])
            ours = m.transform(rows) if method == "transform" else outputs[kind]
            if kind == "label":
                assert_same_labels(ours, native, what=method)
                worst[method] = 0.0
            else:
                assert_close(ours, native, tol=tol, what=method)
                worst[method] = max(worst.get(method, 0.0), _relative_error(ours, native, method))
    return worst


def _relative_error(ours, native, what: str) -> float:
    """max |ours - native| / (1 + |native|), with infinities required to match exactly."""
    ours = np.asarray(ours, np.float64)
    native = np.asarray(native, np.float64)
    assert np.array_equal(np.isposinf(ours), np.isposinf(native)), f"{what}: +inf differs"
    assert np.array_equal(np.isneginf(ours), np.isneginf(native)), f"{what}: -inf differs"
    finite = np.isfinite(native)
    return float(np.max(np.abs(ours - native)[finite] / (1 + np.abs(native[finite])), initial=0.0))


#: (n_classes, labels, nan): binary, multiclass, string labels, with and without NaN.
CLF_CASES = [(2, None, True), (3, None, False), (3, "str", True)]
CASE_IDS = ["binary-nan", "multi", "str-nan"]


# --- ExtraTrees -------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes,labels,nan", CLF_CASES, ids=CASE_IDS)
def test_extra_trees_classifier(n_classes, labels, nan, tmp_path):
    X, y = _clf_data(n_classes, nan, LABELS[labels])
    model = ExtraTreesClassifier(n_estimators=10, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=nan)


@pytest.mark.parametrize("n_targets,nan", [(1, True), (2, False)])
def test_extra_trees_regressor(n_targets, nan, tmp_path):
    X, y = _reg_data(n_targets, nan)
    model = ExtraTreesRegressor(n_estimators=10, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=nan)


# --- GradientBoosting -------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_classes,labels,params",
    [
        (2, None, {}),
        (3, "str", {"subsample": 0.7, "max_depth": 4}),
        (2, "str", {"loss": "exponential"}),
        (2, None, {"init": "zero"}),
        (3, None, {"init": "zero", "learning_rate": 0.3}),
        (3, None, {"init": "dummy-most-frequent"}),
    ],
    ids=["binary", "str-subsample", "exponential", "zero-binary", "zero-multi", "dummy-init"],
)
def test_gradient_boosting_classifier(n_classes, labels, params, tmp_path):
    from sklearn.dummy import DummyClassifier

    if params.get("init") == "dummy-most-frequent":  # one-hot init probabilities, clipped to [eps, 1 - eps]
        params = {"init": DummyClassifier(strategy="most_frequent")}
    X, y = _clf_data(n_classes, False, LABELS[labels])
    model = GradientBoostingClassifier(n_estimators=15, random_state=0, **params).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=n_classes == 2)


def test_gradient_boosting_classifier_confident(tmp_path):
    """Scores where sklearn's float64 ``1 - expit(z)`` is coarse (z > 19) or exactly 0 (log -inf, z > 36.7)."""
    X, y = make_classification(400, 6, n_informative=4, n_redundant=1, class_sep=3, flip_y=0, random_state=0)
    X = X.astype(np.float32)
    model = GradientBoostingClassifier(loss="exponential", learning_rate=1.0, n_estimators=30, max_depth=5, random_state=0)
    model.fit(X[:300], y[:300])
    z = 2 * model.decision_function(X)
    assert (z > 36.7).any() and ((z > 19) & (z < 36.7)).any()
    with np.errstate(divide="ignore"):
        _check(model, X, tmp_path)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradient_boosting_classifier_convertible_init(n_classes, tmp_path):
    """Custom init estimators that mlejax converts: clipped probabilities through the loss link.

    The multiclass init is a tree whose leaves have probabilities exactly 0 and 1 (the clip matters).
    """
    X, y = _clf_data(n_classes)
    init = LogisticRegression() if n_classes == 2 else DecisionTreeClassifier(max_depth=3, random_state=0)
    model = GradientBoostingClassifier(n_estimators=10, init=init, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path)


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber", "quantile"])
def test_gradient_boosting_regressor(loss, tmp_path):
    X, y = _reg_data()
    model = GradientBoostingRegressor(loss=loss, n_estimators=20, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=loss == "huber")


@pytest.mark.parametrize("init", ["zero", "linear"])
def test_gradient_boosting_regressor_init(init, tmp_path):
    X, y = _reg_data()
    init = LinearRegression() if init == "linear" else init
    model = GradientBoostingRegressor(n_estimators=30, init=init, n_iter_no_change=3, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path)


def test_gradient_boosting_unconvertible_init(tmp_path):
    from sklearn.isotonic import IsotonicRegression

    X, y = _reg_data()
    model = GradientBoostingRegressor(n_estimators=3, init=IsotonicRegression()).fit(X[:100, :1], y[:100])
    with pytest.raises(UnsupportedModelError, match="IsotonicRegression"):
        mle.export_model(model, tmp_path / "m.mle")


# --- AdaBoost ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes,labels", [(2, None), (3, "str")])
def test_adaboost_classifier_trees(n_classes, labels, tmp_path):
    X, y = _clf_data(n_classes, False, LABELS[labels])
    model = AdaBoostClassifier(DecisionTreeClassifier(max_depth=2), n_estimators=15, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=True)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_adaboost_classifier_mixed_members(n_classes, tmp_path):
    """Non-tree members (logistic regression) go through their own converter."""
    X, y = _clf_data(n_classes)
    model = AdaBoostClassifier(LogisticRegression(), n_estimators=4, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path)


@pytest.mark.parametrize("base", ["tree", "ridge"])
def test_adaboost_regressor(base, tmp_path):
    X, y = _reg_data()
    est = DecisionTreeRegressor(max_depth=3) if base == "tree" else Ridge()
    model = AdaBoostRegressor(est, n_estimators=15 if base == "tree" else 5, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=base == "tree")


def test_weighted_median_op_ties():
    """``WeightedMedian`` against sklearn's argsort/cumsum rule, with many ties and exact half-weight sums."""
    import jax.numpy as jnp

    from mlejax.format.graph import Node
    from mlejax.lowering.ops_ensemble import _weighted_median

    P = np.random.default_rng(0).integers(0, 4, (500, 6)).astype(np.float32)
    w = np.array([1, 1, 2, 1, 1, 2], np.float32)  # total 8: cumulative weights hit exactly 4 often
    sorted_idx = np.argsort(P, axis=1)
    cdf = np.cumsum(w[sorted_idx], axis=1)
    med = sorted_idx[np.arange(len(P)), (cdf >= 0.5 * cdf[:, -1:]).argmax(axis=1)]
    got = _weighted_median(Node("WeightedMedian", 1, "n", (), ("o",), {}), jnp.asarray(P), jnp.asarray(w))
    np.testing.assert_array_equal(np.asarray(got), P[np.arange(len(P)), med])


# --- Bagging ----------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes,labels,nan", CLF_CASES, ids=CASE_IDS)
def test_bagging_classifier_trees(n_classes, labels, nan, tmp_path):
    """Trees on column subsets (features drawn with replacement)."""
    X, y = _clf_data(n_classes, nan, LABELS[labels])
    model = BaggingClassifier(n_estimators=10, max_samples=0.5, max_features=0.6, bootstrap_features=True, random_state=0)
    model.fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=nan)


@pytest.mark.parametrize("base,n_classes", [("logistic", 3), ("svc", 2), ("svc", 3), ("knn", 3)])
def test_bagging_classifier_other_members(base, n_classes, tmp_path):
    """Probability averaging (logistic); vote fractions and summed decision_function (SVC without probability);
    members that saw only some classes (k-NN takes no sample weights, so bootstrap rows are really drawn).

    k-NN uses distance weights: with uniform weights the averaged probabilities are sums of
    fractions whose exact ties sklearn breaks by float64 rounding noise, which float32 cannot mirror.
    """
    X, y = _clf_data(n_classes, labels=LABELS["str"][:n_classes])
    est = {"logistic": LogisticRegression(), "svc": SVC(), "knn": KNeighborsClassifier(3, weights="distance")}[base]
    model = BaggingClassifier(est, n_estimators=5, max_samples=5 if base == "knn" else 1.0, max_features=0.7, random_state=0)
    model.fit(X[:300], y[:300])
    if base == "knn":
        assert any(len(e.classes_) < n_classes for e in model.estimators_)
    _check(model, X, tmp_path)


@pytest.mark.parametrize("n_targets,nan", [(1, True), (2, False)])
def test_bagging_regressor_trees(n_targets, nan, tmp_path):
    X, y = _reg_data(n_targets, nan)
    model = BaggingRegressor(n_estimators=10, max_features=0.5, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=nan)


def test_bagging_regressor_linear(tmp_path):
    X, y = _reg_data()
    model = BaggingRegressor(LinearRegression(), n_estimators=5, max_features=0.7, random_state=0).fit(X[:300], y[:300])
    _check(model, X, tmp_path)


# --- IsolationForest --------------------------------------------------------------------


@pytest.mark.parametrize(
    "params,nan",
    [
        ({}, False),
        ({"contamination": 0.1}, True),
        ({"max_features": 0.5, "max_samples": 64}, False),
        ({"max_features": 3, "bootstrap": True}, True),
    ],
    ids=["default", "contamination-nan", "max-features", "bootstrap-nan"],
)
def test_isolation_forest(params, nan, tmp_path):
    X, _ = _clf_data(2, nan)
    model = IsolationForest(n_estimators=15, random_state=0, **params).fit(X[:300])
    worst = _check(model, X, tmp_path, single_row=nan)
    assert worst["predict"] == 0.0  # ±1 values, compared as numbers


# --- Voting -----------------------------------------------------------------------------


def _voters():
    return [
        ("lr", make_pipeline(StandardScaler(), LogisticRegression())),
        ("rf", RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0)),
        ("dt", DecisionTreeClassifier(max_depth=3, random_state=0)),
    ]


@pytest.mark.parametrize(
    "n_classes,labels,voting,weights,flatten",
    [
        (2, None, "soft", None, True),
        (3, "str", "soft", [2, 1, 0.5], False),
        (3, None, "hard", None, True),
        (2, "str", "hard", [2, 1, 1], True),
        (3, "str", "hard", [0.1, 0.2, 0.3], True),
    ],
    ids=["soft", "soft-weighted-3d-transform", "hard", "hard-int-weights", "hard-float-weights"],
)
def test_voting_classifier(n_classes, labels, voting, weights, flatten, tmp_path):
    X, y = _clf_data(n_classes, False, LABELS[labels])
    model = VotingClassifier(_voters(), voting=voting, weights=weights, flatten_transform=flatten).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=voting == "hard")


def test_voting_hard_float_weight_ties_are_sklearns(tmp_path):
    """Weights 0.1 + 0.2 against 0.3: float64 sums break these ties for the pair, float32 sums would tie."""
    assert np.float32(0.1) + np.float32(0.2) == np.float32(0.3) and 0.1 + 0.2 > 0.3
    X, y = _clf_data(3)
    model = VotingClassifier(_voters(), voting="hard", weights=[0.1, 0.2, 0.3]).fit(X[:300], y[:300])
    votes = model.transform(X)
    tied = (votes[:, 0] == votes[:, 1]) & (votes[:, 0] != votes[:, 2])
    assert tied.any()
    _check(model, X, tmp_path)


def test_voting_hard_table_limit(tmp_path):
    X, y = _clf_data(3)
    members = [(f"dt{i}", DecisionTreeClassifier(max_depth=2, random_state=i)) for i in range(13)]
    model = VotingClassifier(members, voting="hard", weights=np.linspace(0.1, 1.3, 13)).fit(X[:100], y[:100])
    with pytest.raises(UnsupportedModelError, match="integer weights"):
        mle.export_model(model, tmp_path / "m.mle")


def test_voting_regressor(tmp_path):
    X, y = _reg_data()
    members = [("lr", LinearRegression()), ("dt", DecisionTreeRegressor(max_depth=4, random_state=0)), ("ridge", Ridge())]
    model = VotingRegressor(members, weights=[1, 2, 0.5]).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=True)


# --- Stacking ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes,labels,passthrough", [(2, None, False), (3, "str", True)])
def test_stacking_classifier(n_classes, labels, passthrough, tmp_path):
    X, y = _clf_data(n_classes, False, LABELS[labels])
    members = [
        ("rf", RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0)),
        ("svc", SVC()),  # stack_method_ 'decision_function'
        ("knn", KNeighborsClassifier(5)),
    ]
    model = StackingClassifier(members, passthrough=passthrough, cv=3).fit(X[:300], y[:300])
    assert model.stack_method_ == ["predict_proba", "decision_function", "predict_proba"]
    _check(model, X, tmp_path, single_row=passthrough)


def test_stacking_classifier_predict_method(tmp_path):
    """stack_method='predict' feeds each member's (encoded) label to the final estimator."""
    X, y = _clf_data(3, labels=LABELS["str"])
    members = [("dt", DecisionTreeClassifier(max_depth=3, random_state=0)), ("lr", LogisticRegression())]
    final = DecisionTreeClassifier(max_depth=3, random_state=0)
    model = StackingClassifier(members, final_estimator=final, stack_method="predict", cv=3).fit(X[:300], y[:300])
    _check(model, X, tmp_path)


@pytest.mark.parametrize("passthrough", [False, True])
def test_stacking_regressor(passthrough, tmp_path):
    X, y = _reg_data()
    members = [("lr", LinearRegression()), ("dt", DecisionTreeRegressor(max_depth=4, random_state=0))]
    model = StackingRegressor(members, final_estimator=Ridge(), passthrough=passthrough, cv=3).fit(X[:300], y[:300])
    _check(model, X, tmp_path, single_row=passthrough)
