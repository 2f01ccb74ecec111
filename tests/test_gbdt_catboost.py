"""Parity of CatBoost models (wrappers and ``.cbm`` files) against CatBoost itself.

Tolerance: the default 1e-5·(1+|native|); CatBoost sums leaves in float64
and we sum in float32.
"""

import numpy as np
import pytest

cb = pytest.importorskip("catboost")
pd = pytest.importorskip("pandas")

import mlejax as mle  # noqa: E402
from helpers import assert_close, check_methods, roundtrip  # noqa: E402
from helpers_gbdt import gbdt_data, quantile_labels  # noqa: E402

SMALL = dict(iterations=6, depth=3, verbose=0, random_seed=0, thread_count=1)


def _data(n=400, f=5, nan=0.1, seed=0):
    return gbdt_data(n, f, nan, seed)


def _check(model, X, tmp_path, tol=1e-5, rows=64, native_X=None, single=False):
    """predict (labels exact), predict_proba, raw margins and leaf indexes on ``rows`` rows, single rows if ``single``."""
    X = X[:rows]
    nX = X if native_X is None else native_X[:rows]
    m = roundtrip(model, X, tmp_path) if native_X is None else _load(model, tmp_path)
    worst = {}
    if type(model).__name__ == "CatBoostClassifier":
        worst = check_methods(model, m, X, methods=("predict", "predict_proba"), tol=tol) if native_X is None else {}
    else:
        worst["predict"] = assert_close(m.predict(X), model.predict(nX), tol=tol, what="predict")
    worst["raw"] = assert_close(m.decision_function(X), _raw(model, nX), tol=tol, what="raw")
    assert (m.apply(X) == model.calc_leaf_indexes(nX)).all(), "leaf indexes differ"
    if native_X is None and single:
        for row in (X[:1], X[-1:]):
            assert_close(m.decision_function(row), _raw(model, row), tol=tol)
    return m, worst


def _raw(model, X):
    """CatBoost's RawFormulaVal (CatBoostRanker.predict has no prediction_type and is always raw)."""
    return model.predict(X) if isinstance(model, cb.CatBoostRanker) else model.predict(X, prediction_type="RawFormulaVal")


def _load(model, tmp_path):
    path = tmp_path / "m.mle"
    mle.export_model(model, path)
    return mle.load_model(path)


@pytest.mark.parametrize("loss,k,names", [
    ("Logloss", 2, ["no", "yes"]), ("CrossEntropy", 2, None), ("MultiClass", 3, ["a", "b", "c"]), ("MultiClassOneVsAll", 3, None),
])
def test_classifier(loss, k, names, tmp_path):
    X, s = _data()
    model = cb.CatBoostClassifier(loss_function=loss, **SMALL).fit(X, quantile_labels(s, k, names))
    _check(model, X, tmp_path, single=loss in ("Logloss", "MultiClass"))


@pytest.mark.parametrize("loss", ["RMSE", "MAE", "Quantile:alpha=0.8", "Poisson", "Tweedie:variance_power=1.5", "MAPE", "Huber:delta=1.0"])
def test_regressor(loss, tmp_path):
    X, s = _data()
    y = np.round(np.exp(s / 2)) if loss.startswith(("Poisson", "Tweedie")) else np.exp(s / 3)
    model = cb.CatBoostRegressor(loss_function=loss, **SMALL).fit(X, y)
    _check(model, X, tmp_path)


def test_multi_rmse(tmp_path):
    X, s = _data()
    model = cb.CatBoostRegressor(loss_function="MultiRMSE", **SMALL).fit(X, np.c_[s, -s, np.sin(s)])
    _check(model, X, tmp_path)


@pytest.mark.parametrize("loss", ["YetiRank", "PairLogit"])
def test_ranker(loss, tmp_path):
    X, s = _data()
    model = cb.CatBoostRanker(loss_function=loss, **SMALL).fit(X, quantile_labels(s, 4), group_id=np.repeat(np.arange(40), 10))
    _check(model, X, tmp_path)


@pytest.mark.parametrize("params", [
    {"nan_mode": "Min"}, {"nan_mode": "Max"}, {"grow_policy": "Depthwise"}, {"grow_policy": "Lossguide", "max_leaves": 12, "depth": 6},
], ids=["nan_min", "nan_max", "depthwise", "lossguide"])
def test_nan_modes_and_tree_shapes(params, tmp_path):
    X, s = _data()
    model = cb.CatBoostClassifier(**(SMALL | params)).fit(X, quantile_labels(s, 3))
    _check(model, X, tmp_path)


def test_scale_and_bias(tmp_path):
    X, s = _data()
    model = cb.CatBoostRegressor(**SMALL).fit(X, s)
    model.set_scale_and_bias(1.7, [0.25])
    _check(model, X, tmp_path)


def test_one_hot_categorical(tmp_path):
    """One-hot splits on integer categories; unseen, negative, fractional and huge codes never match."""
    X, s = _data(nan=0.05)
    rng = np.random.default_rng(3)
    X[:, 4] = rng.integers(0, 6, len(X))
    frame = pd.DataFrame(X, columns=list("abcde")).assign(e=lambda d: d.e.astype(int))
    model = cb.CatBoostRegressor(one_hot_max_size=10, **SMALL).fit(frame, s + (X[:, 4] == 2) * 2 - (X[:, 4] == 4), cat_features=["e"])
    _check(model, X, tmp_path, native_X=frame)
    m = _load(model, tmp_path)
    edge = np.repeat(X[:1], 7, axis=0)
    edge[:, 4] = [2, 4, 6, -2, 1e6, 65536 + 2, 0]
    # CatBoost itself never sees these as numbers: unseen values match no one-hot category.
    native_codes = ["2", "4", "6", "-2", "1000000", "65538", "0"]
    native = model.predict(pd.DataFrame(edge, columns=list("abcde")).assign(e=native_codes))
    assert_close(m.predict(edge), native)
    # A fractional number in a categorical column: CatBoost refuses it, and so does mlejax.
    fractional = pd.DataFrame(edge[:1], columns=list("abcde")).assign(e=2.5)
    with pytest.raises(Exception, match="cat_features must be integer or string"):
        model.predict(fractional)
    with pytest.raises(mle.InputError, match=r"non-integer number \(2.5\)"):
        m.predict(fractional)


def test_early_stopping_best_model(tmp_path):
    X, s = _data(n=600)
    y = s + np.random.default_rng(0).normal(size=s.shape) * 2
    model = cb.CatBoostRegressor(iterations=300, learning_rate=0.3, depth=3, verbose=0, random_seed=0, thread_count=1,
                                 early_stopping_rounds=3, use_best_model=True)
    model.fit(X[:300], y[:300], eval_set=(X[300:], y[300:]))
    assert model.tree_count_ < 300
    _check(model, X, tmp_path, rows=None)  # every row


def test_cbm_file(tmp_path):
    X, s = _data()
    model = cb.CatBoostClassifier(**SMALL).fit(X, s > 0)
    path = tmp_path / "model.cbm"
    model.save_model(str(path))
    mle.export_model(str(path), tmp_path / "m.mle", sample_input=X[:64])
    m = mle.load_model(tmp_path / "m.mle")
    loaded = cb.CatBoost().load_model(str(path))
    assert_close(m.predict(X), loaded.predict(X))  # a plain CatBoost model predicts raw values
    assert_close(m.decision_function(X), model.predict(X, prediction_type="RawFormulaVal"))


def test_borders_at_float32_edges(tmp_path):
    X, s = _data(nan=0)
    X[::3, 1] = 0.0
    model = cb.CatBoostRegressor(**SMALL).fit(X, s)
    rows = []
    for feat, borders in enumerate(model.get_borders().values()):
        for t in np.asarray(borders, np.float32):
            for v in (t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf)), -0.0, 1e-45):
                r = X[len(rows) % len(X)].copy()
                r[feat] = v
                rows.append(r)
    E = np.asarray(rows, np.float32)
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict(E), model.predict(E))
    assert (m.apply(E) == model.calc_leaf_indexes(E)).all()


@pytest.mark.slow
@pytest.mark.parametrize("config", ["1000trees", "depth12", "50classes"])
def test_large_models(config, tmp_path):
    """Bigger models. 1000 float32 additions vs CatBoost's float64 sum: allow 1e-4 (observed worst printed)."""
    X, s = _data(n=3000, f=10)
    if config == "50classes":
        model = cb.CatBoostClassifier(iterations=20, depth=4, verbose=0, random_seed=0).fit(X, quantile_labels(s, 50))
    elif config == "depth12":
        model = cb.CatBoostClassifier(iterations=20, depth=12, verbose=0, random_seed=0).fit(X, s > 0)
    else:
        model = cb.CatBoostRegressor(iterations=1000, depth=6, verbose=0, random_seed=0).fit(X, s)
    m, worst = _check(model, X, tmp_path, tol=1e-4, rows=None)
    print(config, worst)
