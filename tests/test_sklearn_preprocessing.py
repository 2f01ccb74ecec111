"""Parity of scikit-learn preprocessing converters (scalers, transforms, encoders, imputers) against scikit-learn.

Every case fits on the first 300 rows, then compares all 500 rows (unseen
rows included) and a single row. Run with ``-s`` to print the worst errors.

The data is float32 (what the exported model computes on). The reference is
scikit-learn's transform of the same values given as float64: on float32
input scikit-learn itself rounds intermediates to float32 (MinMaxScaler
stores ``x * scale_`` in the float32 array before adding ``min_``, an error
of up to ~3e-5 on the offset column), so float64 input is its exact answer.
"""

import warnings

import numpy as np
import pytest
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.preprocessing import (
    Binarizer,
    FunctionTransformer,
    KBinsDiscretizer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    PowerTransformer,
    QuantileTransformer,
    RobustScaler,
    SplineTransformer,
    StandardScaler,
)

import mlejax as mle
from helpers import TOL, assert_close, roundtrip

N_FIT = 300


def _gauss(nan: bool, seed: int = 0) -> np.ndarray:
    """Columns on very different scales and offsets (offset 1000 tests float32 cancellation)."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(500, 4)) * [1.0, 10.0, 0.01, 3.0] + [0.0, 1000.0, 5.0, -2.0]).astype(np.float32)
    if nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    return X


def _skewed(nan: bool, seed: int = 1) -> np.ndarray:
    """Strictly positive, heavy-tailed columns (Box-Cox needs x > 0)."""
    rng = np.random.default_rng(seed)
    X = np.exp(rng.normal(size=(500, 3)) * [0.5, 1.0, 2.0]).astype(np.float32)
    if nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    return X


DATASETS = {"gauss": _gauss, "skewed": _skewed}


def _dense(a):
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a)


def check_transform(model, X, tmp_path, tol=TOL, fit=True):
    """Fit on the first rows, export, and compare ``transform`` on all rows and on one row; return the worst error."""
    if fit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[:N_FIT])
    m = roundtrip(model, X, tmp_path)
    worst = rel = 0.0
    for rows in (X, X[:1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            native = _dense(model.transform(rows.astype(np.float64)))
        ours = m.transform(rows)
        worst = max(worst, assert_close(ours, native, tol=tol, what=f"{model!r}.transform"))
        with np.errstate(invalid="ignore"):
            rel = max(rel, float(np.nanmax(np.abs(ours - native) / (1 + np.abs(native)), initial=0.0)))
    print(f"worst {model!r}: abs {worst:.3g} rel {rel:.3g}")
    return worst


NAN_OK = [  # (transformer, tolerance) — these accept NaN and pass it through
    (StandardScaler(), TOL),
    (StandardScaler(with_mean=False), TOL),
    (MinMaxScaler(), TOL),
    (MinMaxScaler(feature_range=(-2, 3), clip=True), TOL),
    (MaxAbsScaler(), TOL),
    (MaxAbsScaler(clip=True), TOL),
    (RobustScaler(), TOL),
    (RobustScaler(with_centering=False, quantile_range=(10, 90)), TOL),
    (QuantileTransformer(n_quantiles=100), TOL),
    (QuantileTransformer(n_quantiles=50, output_distribution="normal"), TOL),
    (PowerTransformer(), TOL),
    (PowerTransformer(standardize=False), TOL),
    (SimpleImputer(), TOL),
    (SimpleImputer(strategy="median", add_indicator=True), TOL),
    (SimpleImputer(strategy="most_frequent"), TOL),
    (SimpleImputer(strategy="constant", fill_value=-7.5, add_indicator=True), TOL),
    (SplineTransformer(handle_missing="zeros"), TOL),
]


@pytest.mark.parametrize("model,tol", NAN_OK, ids=lambda v: repr(v) if not isinstance(v, float) else "")
@pytest.mark.parametrize("data", sorted(DATASETS))
def test_nan_accepting_transformers(model, tol, data, tmp_path):
    """10% NaN, so both the NaN and the finite paths are compared."""
    check_transform(model, DATASETS[data](True), tmp_path, tol)


FINITE_ONLY = [
    Normalizer(),
    Normalizer(norm="l1"),
    Normalizer(norm="max"),
    Binarizer(),
    Binarizer(threshold=1.3),
    KBinsDiscretizer(n_bins=5, encode="ordinal", quantile_method="averaged_inverted_cdf"),
    KBinsDiscretizer(n_bins=4, encode="onehot-dense", strategy="uniform"),
    KBinsDiscretizer(n_bins=3, encode="onehot", strategy="kmeans"),
    PolynomialFeatures(),
    PolynomialFeatures(degree=3, include_bias=False),
    PolynomialFeatures(degree=(2, 3), interaction_only=True),
    SplineTransformer(),
    SplineTransformer(degree=0, n_knots=4, extrapolation="continue"),  # degree 0 + "constant" crashes in scikit-learn itself
    SplineTransformer(degree=1, extrapolation="linear", include_bias=False),
    SplineTransformer(degree=2, extrapolation="periodic", n_knots=6),
    SplineTransformer(extrapolation="continue", knots="quantile"),
    SplineTransformer(extrapolation="linear"),
    SplineTransformer(degree=2, extrapolation="constant", include_bias=False),
]


@pytest.mark.parametrize("model", FINITE_ONLY, ids=repr)
@pytest.mark.parametrize("data", sorted(DATASETS))
def test_finite_only_transformers(model, data, tmp_path):
    check_transform(model, DATASETS[data](False), tmp_path)


def test_box_cox(tmp_path):
    check_transform(PowerTransformer(method="box-cox"), _skewed(True), tmp_path)
    check_transform(PowerTransformer(method="box-cox", standardize=False), _skewed(False), tmp_path)


def test_spline_error_mode_gives_nan_outside(tmp_path):
    """scikit-learn raises beyond the knots with extrapolation="error"; the graph cannot raise and gives NaN rows."""
    X = _gauss(False)
    model = SplineTransformer(extrapolation="error").fit(X[:N_FIT])
    inside = X[N_FIT:][np.all((X[N_FIT:] > X[:N_FIT].min(0)) & (X[N_FIT:] < X[:N_FIT].max(0)), axis=1)]
    check_transform(model, inside, tmp_path, fit=False)
    m = mle.load_model(tmp_path / "model.mle")
    out = m.transform(np.full((1, 4), 1e6, np.float32))
    assert np.isnan(out).all()


@pytest.mark.parametrize("features", ["missing-only", "all"])
@pytest.mark.parametrize("missing", [np.nan, -1.0])
def test_missing_indicator(features, missing, tmp_path):
    X = _gauss(True)
    if missing == -1.0:
        X = np.where(np.isnan(X), -1.0, X).astype(np.float32)
    X[:N_FIT, 2] = 0.5  # no missing value in column 2 at fit time
    model = MissingIndicator(features=features, missing_values=missing, error_on_new=False).fit(X[:N_FIT])
    m = roundtrip(model, X, tmp_path)
    ours, native = m.transform(X), model.transform(X)
    assert ours.dtype == native.dtype == bool
    assert np.array_equal(ours, native)


def test_imputer_with_number_as_missing_and_empty_feature(tmp_path):
    X = _gauss(False)
    X[np.random.default_rng(3).random(X.shape) < 0.2] = -1.0
    X[:N_FIT, 1] = -1.0  # all missing at fit time: scikit-learn drops the column
    for model in (SimpleImputer(missing_values=-1.0, add_indicator=True), SimpleImputer(missing_values=-1.0, keep_empty_features=True)):
        check_transform(model, X, tmp_path)


# --- numeric categories ------------------------------------------------------------------


def _categories(seed: int, nan: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued float columns (one scaled by 2.5); test rows hold unseen values."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 6 + seed, size=(500, 3)).astype(np.float32)
    X[:, 1] *= 2.5
    X[:, 2] = np.where(rng.random(500) < 0.05, 9.0, X[:, 2])  # a rare category
    if nan:
        X[rng.random(X.shape) < 0.08] = np.nan
    X_test = X.copy()
    X_test[N_FIT::7, 0] = 17.0
    X_test[N_FIT::11, 1] = -3.5
    return X, X_test


ENCODERS = [
    OneHotEncoder(handle_unknown="ignore"),
    OneHotEncoder(sparse_output=False, drop="first", handle_unknown="ignore"),
    OneHotEncoder(sparse_output=False, drop="if_binary", max_categories=2, handle_unknown="infrequent_if_exist"),
    OneHotEncoder(sparse_output=False, min_frequency=40, handle_unknown="infrequent_if_exist"),
    OneHotEncoder(sparse_output=False, min_frequency=0.1, handle_unknown="warn"),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=-2),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=99, max_categories=3),
]


@pytest.mark.parametrize("model", ENCODERS, ids=repr)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("nan", [False, True])
def test_numeric_encoders(model, seed, nan, tmp_path):
    X, X_test = _categories(seed, nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:N_FIT])
    check_transform(model, X_test, tmp_path, fit=False)


def test_encoder_error_mode_on_numbers(tmp_path):
    """handle_unknown="error" on numbers: scikit-learn raises; so does the host, before the graph runs."""
    X, X_test = _categories(0, False)
    for model in (OneHotEncoder(sparse_output=False), OrdinalEncoder()):
        model.fit(X)
        check_transform(model, X, tmp_path, fit=False)
        m = mle.load_model(tmp_path / "model.mle")
        with pytest.raises(ValueError, match=r"Found unknown categories \[np.float32\(17.0\)\] in column 0"):
            model.transform(np.array([[17.0, 0.0, 0.0]], np.float32))
        with pytest.raises(mle.InputError, match=r"Found unknown categories \[17.0\] in column X\[:, 0\]"):
            m.transform(np.array([[17.0, 0.0, 0.0]], np.float32))


def test_explicit_categories_and_drop_values(tmp_path):
    X, X_test = _categories(0, True)
    cats = [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0], [0.0, 2.5, 5.0, 7.5, 10.0, 12.5], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 9.0, np.nan]]
    model = OneHotEncoder(categories=cats, drop=[8.0, 2.5, np.nan], sparse_output=False, handle_unknown="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:N_FIT])
    check_transform(model, X_test, tmp_path, fit=False)


# --- FunctionTransformer and unsupported configurations ----------------------------------


@pytest.mark.parametrize("func", [None, np.log1p, np.sqrt, np.square, np.expm1, np.abs])
def test_function_transformer(func, tmp_path):
    X = np.log1p(_skewed(True))  # small enough that expm1 / square stay finite in float32
    check_transform(FunctionTransformer(func), X, tmp_path)


def test_function_transformer_with_python_function_is_unsupported(tmp_path):
    def my_transform(x):
        return x * 2

    model = FunctionTransformer(my_transform).fit(_gauss(False))
    with pytest.raises(mle.UnsupportedModelError, match="my_transform"):
        mle.export_model(model, tmp_path / "f.mle")


def test_float32_colliding_categories_are_unsupported(tmp_path):
    X = np.array([[1.0], [1.0 + 1e-12], [2.0]], dtype=np.float64)
    model = OneHotEncoder().fit(X)
    with pytest.raises(mle.UnsupportedModelError, match="float32"):
        mle.export_model(model, tmp_path / "c.mle")
