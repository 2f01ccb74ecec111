"""load_model(precision="float64"): the whole program in float64, scoped to the model (issue 15 §5)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVR, NuSVR

import mlejax as mle

#: float64 parity bound where every parameter reaches the program with float64 precision
#: (the exporter stores it as a float32 hi + lo pair, or exactly)
BOUND64 = 1e-10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5)) * [1, 10, 100, 0.1, 3] + [0, 5, -50, 1, 0]  # unscaled: sums that cancel
    y = X @ [1.5, -0.2, 0.01, 3, 0.7] + rng.standard_normal(300)
    return X, y


def _err(ours: np.ndarray, native: np.ndarray) -> float:
    return float(np.max(np.abs(ours - native) / (1 + np.abs(native))))


@pytest.mark.parametrize("name", ["LinearRegression", "LogisticRegression", "MinMaxScaler"])
def test_float64_matches_sklearn_to_1e_10(name, data, tmp_path):
    X, y = data
    model, method = {
        "LinearRegression": (LinearRegression(), "predict"),
        "LogisticRegression": (LogisticRegression(max_iter=5000), "predict_proba"),
        "MinMaxScaler": (MinMaxScaler(), "transform"),
    }[name]
    model.fit(X, (y > np.median(y)).astype(int) if name == "LogisticRegression" else y)
    mle.export_model(model, tmp_path / "m.mle")
    native = getattr(model, method)(X)
    m64 = mle.load_model(tmp_path / "m.mle", precision="float64")
    out = getattr(m64, method)(X)
    assert out.dtype == np.float64
    assert _err(out, native) <= BOUND64, _err(out, native)
    if name == "LogisticRegression":
        assert _err(m64.decision_function(X), model.decision_function(X)) <= BOUND64
        assert (m64.predict(X) == model.predict(X)).all()
    # float32 on the same file: as before, float32 results within the default bound
    m32 = mle.load_model(tmp_path / "m.mle")
    assert getattr(m32, method)(X).dtype == np.float32
    assert _err(getattr(m32, method)(X), native) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["StandardScaler", "SVR", "NuSVR", "GaussianMixture"])
def test_float64_is_limited_by_float32_storage(name, data, tmp_path):
    """Models with parameters stored as plain float32 run in float64 too; their error is the storage's rounding."""
    X, y = data
    Xs = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, method, Xi = {
            "StandardScaler": (StandardScaler().fit(X), "transform", X),
            "SVR": (SVR().fit(Xs, y), "predict", Xs),
            "NuSVR": (NuSVR().fit(Xs, y), "predict", Xs),
            "GaussianMixture": (GaussianMixture(3, random_state=0).fit(X), "score_samples", X),
        }[name]
    mle.export_model(model, tmp_path / "m.mle")
    native = getattr(model, method)(Xi)
    e64 = _err(getattr(mle.load_model(tmp_path / "m.mle", precision="float64"), method)(Xi), native)
    e32 = _err(getattr(mle.load_model(tmp_path / "m.mle"), method)(Xi), native)
    assert e64 <= 1e-6 and e64 <= e32 * 1.01, (e64, e32)


def test_float64_is_scoped_to_the_model(data, tmp_path):
    """JAX's global x64 flag stays off; a float32 model and plain JAX code in the same process are unaffected."""
    X, y = data
    model = LinearRegression().fit(X, y)
    mle.export_model(model, tmp_path / "m.mle")
    before = jax.config.jax_enable_x64
    m64 = mle.load_model(tmp_path / "m.mle", precision="float64")
    m32 = mle.load_model(tmp_path / "m.mle")
    for n in (1, 7, 300):  # the fast path, a padded batch, the checked path (a float64 array)
        assert m64.predict(np.ascontiguousarray(X[:n])).dtype == np.float64
        assert m32.predict(np.ascontiguousarray(X[:n], dtype=np.float32)).dtype == np.float32
    assert jax.config.jax_enable_x64 == before
    assert jnp.asarray(1.0).dtype == (jnp.float64 if before else jnp.float32)
    assert _err(m64.predict(X), model.predict(X)) <= BOUND64
    assert _err(m64.predict(X.astype(np.float32)), model.predict(X.astype(np.float32))) <= BOUND64
    assert m64.program._options_key != m32.program._options_key  # separate executables, separate cache entries
    with pytest.raises(ValueError, match="precision"):
        mle.load_model(tmp_path / "m.mle", precision="float16")
