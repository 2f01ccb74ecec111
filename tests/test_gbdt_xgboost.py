"""Parity of XGBoost models (wrappers, Boosters, model files) against XGBoost itself.

Tolerance: the default 1e-5·(1+|native|). XGBoost sums leaves in float32 in
tree order and we sum in float32 in chunks, so margins differ by a few ulps of
the running sum; the slow 1000-tree test states its bound.
"""

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")
pd = pytest.importorskip("pandas")

import mlejax as mle  # noqa: E402
from mlejax.format.errors import UnsupportedModelError  # noqa: E402
from helpers import assert_close, check_methods, roundtrip  # noqa: E402
from helpers_gbdt import gbdt_data  # noqa: E402

METHODS = ("predict", "predict_proba", "apply")


def _data(n=400, f=6, nan=0.1, seed=0):
    return gbdt_data(n, f, nan, seed)


def _check(model, X, tmp_path, tol=1e-5, rows=64, single=False):
    """Every method on the first ``rows`` rows (one compiled batch bucket keeps the suite fast), single rows if ``single``."""
    X = X[:rows]
    m = roundtrip(model, X, tmp_path)
    worst = check_methods(model, m, X, methods=METHODS, tol=tol)
    worst["margin"] = assert_close(m.decision_function(X), model.predict(X, output_margin=True), tol=tol, what="margin")
    for row in (X[:1], X[-1:]) if single else ():
        if hasattr(model, "predict_proba"):
            assert_close(m.predict_proba(row), model.predict_proba(row), tol=tol)
        assert_close(m.decision_function(row), model.predict(row, output_margin=True), tol=tol)
    return m, worst


@pytest.mark.parametrize("objective,n_classes", [
    ("binary:logistic", 2), ("binary:logitraw", 2), ("binary:hinge", 2), ("multi:softprob", 3), ("multi:softmax", 4),
])
def test_classifier_objectives(objective, n_classes, tmp_path):
    X, s = _data()
    y = np.digitize(s, np.quantile(s, np.linspace(0, 1, n_classes + 1)[1:-1]))
    model = xgb.XGBClassifier(n_estimators=6, max_depth=3, objective=objective).fit(X, y)
    _check(model, X, tmp_path, single=objective in ("binary:logistic", "multi:softprob"))


REGRESSION = [
    "reg:squarederror", "reg:logistic", "reg:pseudohubererror", "reg:absoluteerror", "count:poisson",
    "reg:gamma", "reg:tweedie", "survival:cox", "reg:squaredlogerror",
]


@pytest.mark.parametrize("objective", REGRESSION)
def test_regressor_objectives(objective, tmp_path):
    X, s = _data()
    y = {"reg:logistic": 1 / (1 + np.exp(-s))}.get(objective, np.exp(s / 3))
    model = xgb.XGBRegressor(n_estimators=6, max_depth=3, objective=objective).fit(X, y)
    _check(model, X, tmp_path)


@pytest.mark.parametrize("objective", ["rank:pairwise", "rank:ndcg"])
def test_ranker(objective, tmp_path):
    X, s = _data()
    y = np.digitize(s, [-1, 0, 1])
    model = xgb.XGBRanker(n_estimators=6, max_depth=3, objective=objective).fit(X, y, qid=np.repeat(np.arange(40), 10))
    _check(model, X, tmp_path)


def test_multi_quantile_and_aft(tmp_path):
    X, s = _data()
    model = xgb.XGBRegressor(n_estimators=4, objective="reg:quantileerror", quantile_alpha=np.array([0.2, 0.5, 0.8])).fit(X, s)
    _check(model, X, tmp_path)
    lower = np.exp(s)
    booster = xgb.train({"objective": "survival:aft", "max_depth": 3},
                        xgb.DMatrix(X, label_lower_bound=lower, label_upper_bound=lower * 1.5), num_boost_round=4)
    path = tmp_path / "aft.mle"
    mle.export_model(booster, path)
    m = mle.load_model(path)
    assert_close(m.predict(X), booster.inplace_predict(X))
    assert_close(m.decision_function(X), booster.inplace_predict(X, predict_type="margin"))


def test_user_missing_value(tmp_path):
    """Entries equal to ``missing`` (and NaN) take the default direction."""
    X, s = _data(nan=0.05)
    X = np.round(X * 2) / 2  # many exact -0.5, 0, 0.5 ...
    model = xgb.XGBRegressor(n_estimators=6, max_depth=4, missing=0.5).fit(X, s)
    _check(model, X, tmp_path)


def test_categorical_partitions_and_onehot(tmp_path):
    """Partition splits and one-hot splits; unseen, negative, fractional, huge codes and NaN."""
    rng = np.random.default_rng(1)
    n = 600
    c1 = rng.integers(0, 40, n)
    c2 = rng.integers(0, 3, n)
    num = rng.normal(size=n).astype(np.float32)
    y = (c1 % 7 == 0) * 2.0 + (c2 == 1) + num
    frame = pd.DataFrame({"c1": pd.Categorical(c1, categories=range(45)), "c2": pd.Categorical(c2, categories=range(3)), "num": num})
    model = xgb.XGBRegressor(n_estimators=8, max_depth=4, enable_categorical=True, max_cat_to_onehot=4, tree_method="hist").fit(frame, y)
    X = frame.assign(c1=frame.c1.cat.codes, c2=frame.c2.cat.codes).to_numpy(np.float32)
    m = mle.load_model(_export(model, X, tmp_path))
    assert_close(m.predict(X), model.predict(frame))
    # Codes XGBoost itself receives as numbers: edge cases through the Booster with the same feature types.
    edge = X[:10].copy()
    edge[:, 0] = [-1, -0.5, 0.5, 44, 45, 1e9, np.nan, 2.7, 16777216, 16777215]
    dm = xgb.DMatrix(edge, feature_types=["c", "c", "q"], enable_categorical=True)
    booster = model.get_booster()
    assert_close(m.predict(edge), booster.predict(dm, validate_features=False))


def _export(model, X, tmp_path):
    path = tmp_path / "cat.mle"
    mle.export_model(model, path, input_shape=(None, X.shape[1]))
    return path


@pytest.mark.parametrize("strategy", ["one_output_per_tree", "multi_output_tree"])
def test_multi_target(strategy, tmp_path):
    X, s = _data()
    Y = np.c_[s, np.sin(s), -s]
    model = xgb.XGBRegressor(n_estimators=5, max_depth=3, multi_strategy=strategy, tree_method="hist").fit(X, Y)
    _check(model, X, tmp_path)


def test_dart(tmp_path):
    X, s = _data()
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3, booster="dart", rate_drop=0.3, skip_drop=0.0, random_state=0).fit(X, s > 0)
    weights = model.get_booster().save_raw("json")
    assert b"weight_drop" in weights
    _check(model, X, tmp_path)


def test_early_stopping_uses_best_iteration(tmp_path):
    X, s = _data(n=600)
    y = s + np.random.default_rng(0).normal(size=s.shape) * 2
    model = xgb.XGBRegressor(n_estimators=200, max_depth=3, learning_rate=0.3, early_stopping_rounds=3)
    model.fit(X[:300], y[:300], eval_set=[(X[300:], y[300:])], verbose=False)
    assert model.best_iteration + 1 < model.get_booster().num_boosted_rounds()
    _check(model, X, tmp_path, rows=None)  # every row


def test_random_forest(tmp_path):
    X, s = _data()
    _check(xgb.XGBRFClassifier(n_estimators=5, max_depth=4).fit(X, s > 0), X, tmp_path)


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_booster_and_model_files(suffix, tmp_path):
    X, s = _data()
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(X, label=s > 0), num_boost_round=6)
    path = str(tmp_path / f"model{suffix}")
    booster.save_model(path)
    mle.export_model(path, tmp_path / "m.mle", sample_input=X[:64])
    m = mle.load_model(tmp_path / "m.mle")
    assert_close(m.predict(X), booster.inplace_predict(X))
    assert_close(m.decision_function(X), booster.inplace_predict(X, predict_type="margin"))


def test_thresholds_at_float32_edges(tmp_path):
    """Values at, just above and just below every split condition route as in XGBoost."""
    X, s = _data(nan=0)
    X[::3, 1] = np.round(X[::3, 1])  # splits at exact integers, 0 included: x < 0 becomes x <= -1.4e-45
    model = xgb.XGBRegressor(n_estimators=4, max_depth=4).fit(X, s)
    df = model.get_booster().trees_to_dataframe()
    splits = df[df.Feature != "Leaf"]
    rows = []
    for feat, thr in zip(splits.Feature, splits.Split):
        t = np.float32(thr)
        for v in (t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))):
            r = X[len(rows) % len(X)].copy()
            r[int(feat[1:])] = v
            rows.append(r)
    for feat in range(X.shape[1]):  # zeros and subnormals (XLA's CPU flushes subnormals; we must not)
        for v in (-0.0, 0.0, 1e-45, -1e-45, 1e-40, -1e-40):
            r = X[feat].copy()
            r[feat] = v
            rows.append(r)
    E = np.asarray(rows, np.float32)
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict(E), model.predict(E))
    assert (m.apply(E) == model.apply(E)).all()


@pytest.mark.parametrize("kind", ["binary", "regressor", "multiclass", "rf"])
def test_apply_shape_of_one_tree(kind, tmp_path):
    """pred_leaf is [n] when the prediction uses exactly one tree (XGBoost's CalcPredictShape), else [n, trees]."""
    X, s = _data()
    y = (s > 0).astype(int)
    model = {
        "binary": lambda: xgb.XGBClassifier(n_estimators=1, max_depth=3).fit(X, y),
        "regressor": lambda: xgb.XGBRegressor(n_estimators=3, max_depth=3).fit(X, s),
        "multiclass": lambda: xgb.XGBClassifier(n_estimators=1, max_depth=3).fit(X, np.digitize(s, [-1, 1])),
        "rf": lambda: xgb.XGBRFRegressor(n_estimators=1, max_depth=3).fit(X, s),
    }[kind]()
    m = roundtrip(model, X, tmp_path)
    leaves = model.apply
    for rows in (X, X[:1]):
        native = leaves(rows)
        assert m.apply(rows).shape == native.shape
        assert np.array_equal(m.apply(rows), native)
        if kind == "regressor":  # one tree through iteration_range: [n] too; two trees: [n, 2]
            for end in (1, 2):
                native = leaves(rows, iteration_range=(0, end))
                assert m.apply(rows, iteration_range=(0, end)).shape == native.shape
                assert np.array_equal(m.apply(rows, iteration_range=(0, end)), native)


def test_unsupported_gblinear():
    X, s = _data(nan=0)
    model = xgb.XGBRegressor(n_estimators=2, booster="gblinear").fit(X, s)
    with pytest.raises(UnsupportedModelError, match="gblinear"):
        mle.export_model(model, "/tmp/never.mle", input_shape=(None, X.shape[1]))


@pytest.mark.slow
@pytest.mark.parametrize("config", ["1000trees", "depth12", "50classes"])
def test_large_models(config, tmp_path):
    """Bigger models. 1000 float32 additions of ~1e-1 leaves: allow 1e-4 on margins (observed worst printed)."""
    X, s = _data(n=3000, f=10)
    if config == "50classes":
        y = np.digitize(s, np.quantile(s, np.linspace(0, 1, 51)[1:-1]))
        model = xgb.XGBClassifier(n_estimators=20, max_depth=4).fit(X, y)
    elif config == "depth12":
        model = xgb.XGBClassifier(n_estimators=30, max_depth=12, min_child_weight=0).fit(X, s > 0)
    else:
        model = xgb.XGBRegressor(n_estimators=1000, max_depth=6, learning_rate=0.1).fit(X, s)
    m, worst = _check(model, X, tmp_path, tol=1e-4, rows=None)
    print(config, worst)
