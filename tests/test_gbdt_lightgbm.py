"""Parity of LightGBM models (wrappers, Boosters, ``.txt`` files) against LightGBM itself.

Tolerance: the default 1e-5·(1+|native|); LightGBM sums leaves in float64 and
we sum in float32 (a few float32 ulps of the running sum).
"""

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")

import mlejax as mle  # noqa: E402
from mlejax.format.errors import UnsupportedModelError  # noqa: E402
from helpers import assert_close, check_methods, roundtrip  # noqa: E402
from helpers_gbdt import quantile_labels  # noqa: E402

METHODS = ("predict", "predict_proba", "apply")
SMALL = dict(n_estimators=6, num_leaves=8, min_child_samples=5, verbose=-1)


def _data(n=400, f=6, nan=0.1, seed=0, cat=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    X[:, 4] = np.where(rng.random(n) < 0.2, 0.0, X[:, 4])  # exact zeros for zero_as_missing
    if cat:
        X[:, 5] = rng.integers(0, 30, n)
    signal = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3] + (np.isin(X[:, 5], [1, 4, 9, 17, 25]) if cat else 0)
    if nan:
        X[rng.random(X.shape) < nan] = np.nan
    return X, signal


def _check(model, X, tmp_path, tol=1e-5, rows=64, single=False):
    """Every method on the first ``rows`` rows (one compiled batch bucket keeps the suite fast), single rows if ``single``."""
    X = X[:rows]
    m = roundtrip(model, X, tmp_path)
    worst = check_methods(model, m, X, methods=("predict", "predict_proba"), tol=tol)
    worst["raw"] = assert_close(m.decision_function(X), model.predict(X, raw_score=True), tol=tol, what="raw_score")
    assert (m.apply(X) == model.predict(X, pred_leaf=True)).all(), "leaf indices differ"
    for row in (X[:1], X[-1:]) if single else ():
        assert_close(m.decision_function(row), model.predict(row, raw_score=True), tol=tol)
    return m, worst


@pytest.mark.parametrize("objective,k", [("binary", 2), ("multiclass", 3), ("multiclassova", 3), ("cross_entropy", 2)])
def test_classifier_objectives(objective, k, tmp_path):
    X, s = _data(cat=True)
    y = np.asarray(["ant", "bee", "cat"], dtype=object)[quantile_labels(s, k)]
    model = lgb.LGBMClassifier(objective=objective, **SMALL) if objective != "cross_entropy" else None
    if model is None:  # cross_entropy is a regression-style objective on [0, 1] labels
        model = lgb.LGBMRegressor(objective=objective, **SMALL).fit(X, quantile_labels(s, 2), categorical_feature=[5])
    else:
        model.fit(X, y, categorical_feature=[5])
    _check(model, X, tmp_path, single=objective in ("binary", "multiclass"))


@pytest.mark.parametrize("objective", [
    "regression", "regression_l1", "huber", "fair", "poisson", "gamma", "tweedie", "quantile", "mape",
])
def test_regressor_objectives(objective, tmp_path):
    X, s = _data(cat=True)
    model = lgb.LGBMRegressor(objective=objective, **SMALL).fit(X, np.exp(s / 3), categorical_feature=[5])
    _check(model, X, tmp_path)


@pytest.mark.parametrize("objective", ["lambdarank", "rank_xendcg"])
def test_ranker(objective, tmp_path):
    X, s = _data()
    model = lgb.LGBMRanker(objective=objective, **SMALL).fit(X, quantile_labels(s, 4), group=[10] * 40)
    _check(model, X, tmp_path)


@pytest.mark.parametrize("params", [
    {"zero_as_missing": True}, {"use_missing": False}, {"boosting_type": "dart", "drop_rate": 0.3},
    {"boosting_type": "rf", "bagging_fraction": 0.7, "bagging_freq": 1},
], ids=["zero_as_missing", "no_missing", "dart", "rf"])
def test_missing_types_and_boosting(params, tmp_path):
    X, s = _data(cat=True)
    model = lgb.LGBMClassifier(**SMALL, **params).fit(X, quantile_labels(s, 3), categorical_feature=[5])
    _check(model, X, tmp_path)


def test_categorical_edge_codes(tmp_path):
    """Unseen, negative, fractional, huge categories and NaN in a categorical column."""
    X, s = _data(cat=True, nan=0.05)
    model = lgb.LGBMRegressor(**SMALL, cat_smooth=1, min_data_per_group=5).fit(X, s, categorical_feature=[5])
    edge = np.repeat(X[:1], 12, axis=0)
    edge[:, 5] = [-1, -0.5, -1.5, 0.5, 29.9, 30, 31, 64, 1e9, np.nan, 3e9, 17]
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict(edge), model.predict(edge))
    assert (m.apply(edge) == model.predict(edge, pred_leaf=True)).all()


def test_pandas_categorical_columns(tmp_path):
    """A DataFrame with string category columns: the file maps values to LightGBM's codes on the host."""
    pd = pytest.importorskip("pandas")
    X, s = _data(cat=True, nan=0.05)
    words = np.asarray(["w%02d" % i for i in range(30)], dtype=object)
    frame = pd.DataFrame(X[:, :5], columns=[f"f{i}" for i in range(5)])
    frame.insert(2, "city", pd.Categorical(words[np.nan_to_num(X[:, 5]).astype(int)], categories=words[::-1]))
    frame.loc[::17, "city"] = np.nan
    model = lgb.LGBMRegressor(**SMALL).fit(frame, s)
    path = tmp_path / "m.mle"
    mle.export_model(model, path, sample_input=frame[:64])
    m = mle.load_model(path)
    assert_close(m.predict(frame), model.predict(frame))
    unseen = frame[:8].copy()
    unseen["city"] = pd.Categorical(["w03", "zz", None, "w29", "w00", "w11", "new", "w17"], categories=list(words) + ["zz", "new"])
    assert_close(m.predict(unseen), model.predict(unseen))


def test_early_stopping_and_num_iteration(tmp_path):
    X, s = _data(n=600)
    y = s + np.random.default_rng(0).normal(size=s.shape) * 2
    model = lgb.LGBMRegressor(n_estimators=300, learning_rate=0.3, num_leaves=8, verbose=-1)
    model.fit(X[:300], y[:300], eval_X=X[300:], eval_y=y[300:], callbacks=[lgb.early_stopping(3, verbose=False)])
    assert 0 < model.best_iteration_ < 300
    _check(model, X, tmp_path, rows=None)  # every row


def test_booster_and_model_file(tmp_path):
    X, s = _data(cat=True)
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "num_leaves": 8, "verbose": -1},
                        lgb.Dataset(X, quantile_labels(s, 3), categorical_feature=[5]), num_boost_round=5)
    path = tmp_path / "model.txt"
    booster.save_model(path)
    mle.export_model(str(path), tmp_path / "m.mle", sample_input=X[:64])
    m = mle.load_model(tmp_path / "m.mle")
    loaded = lgb.Booster(model_file=path)
    assert_close(m.predict(X), loaded.predict(X))
    assert_close(m.decision_function(X), loaded.predict(X, raw_score=True))
    assert (m.apply(X) == loaded.predict(X, pred_leaf=True)).all()


def test_thresholds_at_float32_edges(tmp_path):
    """Values at and around every float64 threshold (rounded to float32 both ways), zeros and subnormals."""
    X, s = _data(nan=0)
    model = lgb.LGBMRegressor(**SMALL).fit(X, s)
    df = model.booster_.trees_to_dataframe()
    splits = df[df.split_feature.notna()]
    rows = []
    for feat, thr in zip(splits.split_feature, splits.threshold):
        t = np.float32(thr)
        for v in (t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))):
            r = X[len(rows) % len(X)].copy()
            r[int(feat.split("_")[1])] = v
            rows.append(r)
    for feat in range(X.shape[1]):
        for v in (-0.0, 0.0, 1e-45, -1e-45, 1e-36, -1e-36, 1e-35, -1e-35):
            r = X[feat].copy()
            r[feat] = v
            rows.append(r)
    E = np.asarray(rows, np.float32)
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict(E), model.predict(E))
    assert (m.apply(E) == model.predict(E, pred_leaf=True)).all()


def test_single_leaf_trees(tmp_path):
    X, _ = _data(nan=0)
    model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, np.ones(len(X)))
    _check(model, X, tmp_path)


@pytest.mark.parametrize("kind", ["regression", "binary", "multiclass", "rf"])
def test_linear_tree(kind, tmp_path):
    """Leaves with linear models: NaN in a leaf's features falls back to its plain value, as LightGBM."""
    X, s = _data(n=1200, nan=0.1)
    params = dict(n_estimators=25, num_leaves=8, linear_tree=True, verbose=-1)
    if kind == "regression":
        model = lgb.LGBMRegressor(**params).fit(X, s)
    elif kind == "rf":
        model = lgb.LGBMRegressor(boosting_type="rf", bagging_freq=1, bagging_fraction=0.7, **params).fit(X, s)
    else:
        model = lgb.LGBMClassifier(**params).fit(X, quantile_labels(s, 2 if kind == "binary" else 3))
    has_coefficients = any(
        line.startswith("num_features=") and set(line.split("=")[1].split()) != {"0"}
        for line in model.booster_.model_to_string().splitlines())
    assert has_coefficients
    rows = X[:256]
    m = roundtrip(model, X, tmp_path)
    assert_close(m.decision_function(rows), model.predict(rows, raw_score=True), what="raw_score")
    if kind == "regression" or kind == "rf":
        assert_close(m.predict(rows), model.predict(rows))
    else:
        assert_close(m.predict_proba(rows), model.predict_proba(rows))
        assert (m.predict(rows) == model.predict(rows)).all()
    assert (m.apply(rows) == model.predict(rows, pred_leaf=True)).all()
    for row in (X[:1], X[7:8]):
        assert_close(m.decision_function(row), model.predict(row, raw_score=True))


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"use_missing": False}])
def test_exact_float64_inputs(params, tmp_path):
    """``exact_float64=True``: float64 inputs at and next to every float64 threshold decide as LightGBM."""
    X, s = _data(n=600, nan=0.05)
    X = X.astype(np.float64) + np.random.default_rng(1).normal(size=X.shape) * 1e-9  # more precision than float32
    model = lgb.LGBMRegressor(n_estimators=20, num_leaves=8, verbose=-1, **params).fit(X, s)
    rows = []
    for line in model.booster_.model_to_string().splitlines():
        if line.startswith("split_feature="):
            features = [int(v) for v in line.split("=")[1].split()]
        if line.startswith("threshold="):
            for f, t in zip(features, (float(v) for v in line.split("=")[1].split())):
                for v in (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), 1e-35, -1.0000000180025095e-35,
                          np.nextafter(-1.0000000180025095e-35, -np.inf), 5e-300, -0.0):
                    r = X[len(rows) % len(X)].copy()
                    r[f] = v
                    rows.append(r)
    E = np.asarray(rows)
    path = tmp_path / "exact.mle"
    mle.export_model(model, path, exact_float64=True)
    m = mle.load_model(path)
    assert (m.apply(E) == model.predict(E, pred_leaf=True)).all()
    assert_close(m.predict(E), model.predict(E))
    assert_close(m.predict(X[:50]), model.predict(X[:50]))
    # Without the option, float64 inputs are rounded to float32 first: some of these rows decide differently.
    plain = roundtrip(model, X, tmp_path)
    assert (plain.apply(E) != model.predict(E, pred_leaf=True)).any()
    assert (plain.apply(E.astype(np.float32)) == model.predict(E.astype(np.float32), pred_leaf=True)).all()


def test_exact_float64_is_refused_elsewhere(tmp_path):
    from sklearn.tree import DecisionTreeRegressor

    X, s = _data(nan=0)
    with pytest.raises(UnsupportedModelError, match="exact_float64"):
        mle.export_model(DecisionTreeRegressor(max_depth=2).fit(X, s), tmp_path / "never.mle", exact_float64=True)
    linear = lgb.LGBMRegressor(n_estimators=2, linear_tree=True, verbose=-1).fit(X, s)
    with pytest.raises(UnsupportedModelError, match="linear_tree"):
        mle.export_model(linear, tmp_path / "never.mle", exact_float64=True)


def test_unsupported_options_are_named(tmp_path):
    X, s = _data(nan=0)
    model = lgb.LGBMRegressor(n_estimators=2, reg_sqrt=True, verbose=-1).fit(X, np.abs(s))
    with pytest.raises(UnsupportedModelError, match="reg_sqrt"):
        mle.export_model(model, tmp_path / "never.mle")


@pytest.mark.slow
@pytest.mark.parametrize("config", ["1000trees", "depth12", "50classes"])
def test_large_models(config, tmp_path):
    """Bigger models. 1000 float32 additions vs LightGBM's float64 sum: allow 1e-4 (observed worst printed)."""
    X, s = _data(n=3000, f=10)
    if config == "50classes":
        model = lgb.LGBMClassifier(n_estimators=20, num_leaves=15, verbose=-1).fit(X, quantile_labels(s, 50))
    elif config == "depth12":
        model = lgb.LGBMClassifier(n_estimators=30, max_depth=12, num_leaves=2000, min_child_samples=2, verbose=-1).fit(X, s > 0)
    else:
        model = lgb.LGBMRegressor(n_estimators=1000, num_leaves=31, learning_rate=0.1, verbose=-1).fit(X, s)
    m, worst = _check(model, X, tmp_path, tol=1e-4, rows=None)
    print(config, worst)
