"""Parity of scikit-learn's HistGradientBoosting models against scikit-learn itself.

sklearn compares float64 X with float64 thresholds; our input is float32, so
the data here is float32 (float64 inputs are rounded to float32 first, which
is documented). Tolerance: the default 1e-5·(1+|native|) (sklearn sums in
float64, we in float32).
"""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

import mlejax as mle
from mlejax.format.errors import UnsupportedModelError
from helpers import assert_close, check_methods, roundtrip
from helpers_gbdt import quantile_labels

SMALL = dict(max_iter=8, max_leaf_nodes=8, random_state=0)


def _data(n=400, f=6, nan=0.1, seed=0, cat=True):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    if cat:
        X[:, 5] = rng.integers(0, 12, n)
    s = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3] + (np.isin(X[:, 5], [1, 4, 9]) if cat else 0)
    if nan:
        X[rng.random(X.shape) < nan] = np.nan
    return X, s


def _check(model, X, tmp_path, single=False, rows=64):
    """Every method on ``rows`` rows (one compiled batch bucket keeps the suite fast), single rows if ``single``."""
    m = roundtrip(model, X, tmp_path)
    worst = check_methods(model, m, X[:rows])
    for row in (X[:1], X[-1:]) if single else ():
        check_methods(model, m, row)
    return m, worst


@pytest.mark.parametrize("k,names", [(2, None), (3, ["ant", "bee", "cat"])])
def test_classifier(k, names, tmp_path):
    X, s = _data()
    model = HistGradientBoostingClassifier(categorical_features=[5], **SMALL).fit(X, quantile_labels(s, k, names))
    _check(model, X, tmp_path, single=True)


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "poisson", "gamma", "quantile"])
def test_regressor_losses(loss, tmp_path):
    X, s = _data()
    extra = {"quantile": 0.8} if loss == "quantile" else {}
    model = HistGradientBoostingRegressor(loss=loss, categorical_features=[5], **SMALL, **extra).fit(X, np.exp(s / 3))
    _check(model, X, tmp_path)


def test_early_stopping(tmp_path):
    X, s = _data(n=800, cat=False)
    y = s + np.random.default_rng(0).normal(size=s.shape) * 2
    model = HistGradientBoostingRegressor(max_iter=300, early_stopping=True, n_iter_no_change=3, random_state=0).fit(X, y)
    assert model.n_iter_ < 300
    _check(model, X, tmp_path, rows=None)  # every row


def test_categorical_edge_codes(tmp_path):
    """Unknown, negative, fractional codes and NaN follow sklearn's rules (missing direction for unknown)."""
    X, s = _data(nan=0.05)
    X[:, 5] = np.where(X[:, 5] == 7, 3, X[:, 5])  # category 7 unseen at fit time
    for missing in (False, True):
        Xf = X.copy()
        if missing:
            Xf[::4, 5] = np.nan  # trains a missing direction on the categorical feature
        model = HistGradientBoostingRegressor(categorical_features=[5], **SMALL).fit(Xf, s)
        edge = np.repeat(Xf[:8], 12, axis=0)
        edge[:, 5] = np.tile([-1, -0.5, -0.0, 0.5, 7, 11.9, 12, 200, 255, np.nan, 4, 9], 8)
        m = roundtrip(model, Xf, tmp_path, name=f"m{missing}.mle")
        assert_close(m.predict(edge), model.predict(edge))


def test_thresholds_at_float32_edges(tmp_path):
    X, s = _data(nan=0, cat=False)
    model = HistGradientBoostingRegressor(**SMALL).fit(X, s)
    rows = []
    for it in model._predictors:
        nodes = it[0].nodes
        for feat, thr in zip(nodes["feature_idx"][nodes["is_leaf"] == 0], nodes["num_threshold"][nodes["is_leaf"] == 0]):
            t = np.float32(thr)
            for v in (t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))):
                r = X[len(rows) % len(X)].copy()
                r[feat] = v
                rows.append(r)
    E = np.asarray(rows, np.float32)
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict(E), model.predict(E))


def test_exact_float64_inputs(tmp_path):
    """``exact_float64=True``: float64 rows at and next to every float64 threshold predict as sklearn; categoricals kept."""
    X, s = _data(n=600, nan=0.05)
    X = X.astype(np.float64)
    X[:, :5] += np.random.default_rng(1).normal(size=(len(X), 5)) * 1e-9  # more precision than float32
    model = HistGradientBoostingClassifier(categorical_features=[5], **SMALL).fit(X, s > 0)
    rows = []
    for it in model._predictors:
        nodes = it[0].nodes
        numeric = (nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 0)
        for feat, t in zip(nodes["feature_idx"][numeric], nodes["num_threshold"][numeric]):
            for v in (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)):
                r = X[len(rows) % len(X)].copy()
                r[feat - 1] = v  # internally the categorical column comes first
                rows.append(r)
    E = np.asarray(rows)
    path = tmp_path / "exact.mle"
    mle.export_model(model, path, exact_float64=True)
    m = mle.load_model(path)
    assert_close(m.predict_proba(E), model.predict_proba(E))
    assert (m.predict(E) == model.predict(E)).all()
    assert (roundtrip(model, X, tmp_path).predict_proba(E) != m.predict_proba(E)).any()  # float32 rounding differs


def test_pandas_integer_categories(tmp_path):
    """A DataFrame with an integer category column (sklearn re-encodes and reorders it internally)."""
    pd = pytest.importorskip("pandas")
    X, s = _data(nan=0)
    X[:, 5] = X[:, 5] * 3 + 2  # category values 2, 5, ..., 35: not their codes
    frame = pd.DataFrame(X, columns=list("abcdef")).assign(f=lambda d: pd.Categorical(d.f.astype(int)))
    model = HistGradientBoostingRegressor(**SMALL).fit(frame, s)
    m = mle.load_model(_export(model, tmp_path))
    edge = np.repeat(X[:4], 6, axis=0)
    edge[:, 5] = np.tile([2, 3, 35, 38, 2.5, -2], 4)
    native = model.predict(pd.DataFrame(edge, columns=list("abcdef")).assign(f=lambda d: d.f.astype("float64")))
    assert_close(m.predict(edge), native)
    assert_close(m.predict(X), model.predict(frame))


def _export(model, tmp_path):
    path = tmp_path / "m.mle"
    mle.export_model(model, path)
    return path


def test_string_categories_unsupported():
    pd = pytest.importorskip("pandas")
    X, s = _data(nan=0)
    frame = pd.DataFrame(X, columns=list("abcdef")).assign(f=lambda d: pd.Categorical(d.f.astype(int).astype(str)))
    model = HistGradientBoostingRegressor(**SMALL).fit(frame, s)
    with pytest.raises(UnsupportedModelError, match="integer category"):
        mle.export_model(model, "/tmp/never.mle")
