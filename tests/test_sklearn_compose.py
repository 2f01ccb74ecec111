"""Parity of composition (Pipeline, ColumnTransformer, FeatureUnion, TransformedTargetRegressor,
searches) and feature selection against scikit-learn, including pandas DataFrames with string columns.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor, make_column_selector
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.feature_selection import (
    RFE,
    RFECV,
    GenericUnivariateSelect,
    SelectFromModel,
    SelectKBest,
    SelectPercentile,
    VarianceThreshold,
    f_classif,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, RandomizedSearchCV
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier

import mlejax as mle
from helpers import assert_close, check_methods, roundtrip

N_FIT = 300


def _head(X, n=1):
    return X.iloc[:n] if hasattr(X, "iloc") else X[:n]


def check_all(model, X, tmp_path, y=None):
    """Fit (when ``y`` is given), export, compare every method on all rows and on one row; return worst errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if y is not None:
            model.fit(_head(X, N_FIT), y[:N_FIT])
        m = roundtrip(model, X, tmp_path)
        worst = check_methods(model, m, X)
        check_methods(model, m, _head(X))
    print(f"worst {type(model).__name__}: {worst}")
    return worst


def _frame(n=500, seed=0):
    """A DataFrame with numeric (with NaN), string (with missing), and an ID column; string labels.

    The graph standardises in float32, scikit-learn in float64, so a tree split
    can flip when a value lies within a float32 rounding of a threshold (a
    midpoint between two training values). The unseen rows therefore reuse
    the training rows' numbers (never a midpoint); their strings are new.
    """
    rng = np.random.default_rng(seed)
    cities = np.array(["Paris", "Rome", "Oslo", "Lima", "Kyiv", "Accra"], dtype=object)
    df = pd.DataFrame({
        "age": rng.normal(40, 12, n).round(),
        "city": cities[rng.integers(0, 6, n)],
        "color": np.array(["red", "green", "blue"], dtype=object)[rng.integers(0, 3, n)],
        "income": (rng.lognormal(10, 1, n) / 100).round() * 100,
        "user_id": [f"u{i:05d}" for i in range(n)],
        "visits": rng.integers(0, 20, n).astype(float),
    })
    df.loc[rng.random(n) < 0.1, "age"] = np.nan
    df.loc[rng.random(n) < 0.05, "city"] = None
    reuse = rng.integers(0, N_FIT, n - N_FIT)
    for col in ("age", "income"):
        df.loc[N_FIT:, col] = df[col].to_numpy()[reuse]
    score = (df["age"].fillna(40) - 40) / 12 + (df["color"] == "red") * 1.5 - (df["city"] == "Oslo") + rng.normal(0, 0.7, n)
    y = np.where(score > 0.5, "buy", np.where(score > -0.5, "wait", "skip")).astype(object)
    test = df.copy()
    test.loc[N_FIT::5, "city"] = "Tokyo"  # unseen category
    test.loc[N_FIT::9, "color"] = "mauve"
    return df, test, y


def _preprocessor(remainder="drop", scale=True):
    num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler()) if scale else SimpleImputer(strategy="median")
    return ColumnTransformer(
        [
            ("num", num, ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "color"]),
        ],
        remainder=remainder,
    )


@pytest.mark.parametrize("final", [LogisticRegression(max_iter=1000), RandomForestClassifier(n_estimators=9, random_state=0)],
                         ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("seed", [0, 1])
def test_dataframe_pipeline_with_strings(final, seed, tmp_path):
    df, test, y = _frame(seed=seed)
    forest = isinstance(final, RandomForestClassifier)
    if forest:
        # Averaged votes of 9 trees over two classes never tie; with exact ties (0.4 vs 0.4) a float32
        # sum in another order may break the tie the other way than scikit-learn's float64 sum.
        # Trees get unscaled numbers: scikit-learn's own fit_transform and transform of StandardScaler
        # can differ by one float32 ulp, and a split placed between those two values flips on any rounding.
        y = np.where(y == "buy", "buy", "no").astype(object)
    model = make_pipeline(_preprocessor(scale=not forest), final)
    check_all(model, df, tmp_path, y)
    m = mle.load_model(tmp_path / "model.mle")
    check_methods(model, m, test)
    assert m.metadata["host_encoding"]["columns"][0]["categories"] == sorted(set(df["city"].dropna()))
    shuffled = test[list(reversed(test.columns))]  # columns are matched by name
    assert np.array_equal(m.predict(shuffled), model.predict(test))


def test_dataframe_pipeline_ordinal_and_remainder_passthrough(tmp_path):
    df, test, y = _frame(seed=2)
    ct = ColumnTransformer(
        [
            ("ord", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2), ["city", "color"]),
            ("drop_id", "drop", ["user_id"]),
        ],
        remainder=SimpleImputer(),
    )
    model = make_pipeline(ct, DecisionTreeClassifier(max_depth=6, random_state=0))
    check_all(model, df, tmp_path, y)
    check_methods(model, mle.load_model(tmp_path / "model.mle"), test)


def test_dataframe_missing_column_is_an_input_error(tmp_path):
    df, _, y = _frame()
    model = make_pipeline(_preprocessor(), LogisticRegression(max_iter=500)).fit(df, y)
    m = roundtrip(model, df, tmp_path)
    with pytest.raises(mle.InputError, match="city"):
        m.predict(df.drop(columns=["city"]))


def _numeric(seed=0, nan=False):
    X, y = make_classification(500, 8, n_informative=5, n_classes=3, random_state=seed)
    X = X.astype(np.float32)
    if nan:
        X[np.random.default_rng(seed).random(X.shape) < 0.1] = np.nan
    return X, y


COLUMN_SPECS = {
    "indices": [0, 2, 4],
    "mask": np.array([True, False, True, False, True, False, False, False]),
    "slice": slice(0, 3),
}


@pytest.mark.parametrize("spec", sorted(COLUMN_SPECS))
@pytest.mark.parametrize("remainder", ["drop", "passthrough", MinMaxScaler()], ids=repr)
def test_column_transformer_numeric(spec, remainder, tmp_path):
    X, y = _numeric(nan=True)
    ct = ColumnTransformer(
        [("imp", make_pipeline(SimpleImputer(), StandardScaler()), COLUMN_SPECS[spec]), ("bins", "drop", [7])],
        remainder=remainder, transformer_weights={"imp": 2.0},
    )
    check_all(ct, X, tmp_path, y)


def test_column_transformer_by_callable_and_name(tmp_path):
    df = pd.DataFrame(_numeric(1)[0], columns=[f"f{i}" for i in range(8)])
    df["kind"] = np.array(["a", "b", "c"], dtype=object)[np.arange(500) % 3]
    ct = ColumnTransformer([
        ("nums", StandardScaler(), make_column_selector(dtype_include=np.number, pattern="f[0-3]")),
        ("poly", PolynomialFeatures(2), ["f4", "f5"]),
        ("kind", OneHotEncoder(drop="first"), make_column_selector(dtype_include=object)),
        ("passthrough", "passthrough", ["f7"]),
    ])
    check_all(ct, df, tmp_path, np.zeros(500))


def test_feature_union(tmp_path):
    X, y = _numeric(2)
    union = FeatureUnion(
        [("scaled", StandardScaler()), ("bins", KBinsDiscretizer(4, encode="onehot-dense")), ("none", "drop"),
         ("raw", "passthrough")],
        transformer_weights={"scaled": 0.5, "bins": 3.0},
    )
    check_all(union, X, tmp_path, y)
    check_all(make_pipeline(union, LogisticRegression(max_iter=500)), X, tmp_path, y)


@pytest.mark.parametrize("kwargs", [
    {"func": np.log1p, "inverse_func": np.expm1},
    {"func": np.sqrt, "inverse_func": np.square},
    {"transformer": StandardScaler()},
    {"transformer": MinMaxScaler()},
    {},
], ids=lambda k: "-".join(str(getattr(v, "__name__", type(v).__name__)) for v in k.values()) or "identity")
def test_transformed_target_regressor(kwargs, tmp_path):
    X, y = make_regression(500, 6, noise=0.5, random_state=0)
    X = X.astype(np.float32)
    y = np.exp(y / 200) * 30 + 5
    model = TransformedTargetRegressor(make_pipeline(StandardScaler(), Ridge()), **kwargs)
    check_all(model, X, tmp_path, y)


def test_transformed_target_regressor_with_python_function_is_unsupported(tmp_path):
    X, y = make_regression(100, 3, random_state=0)

    def undo(v):
        return v * 2

    model = TransformedTargetRegressor(LinearRegression(), func=lambda v: v / 2, inverse_func=undo, check_inverse=False).fit(X, y)
    with pytest.raises(mle.UnsupportedModelError, match="undo"):
        mle.export_model(model, tmp_path / "t.mle")


def test_searches_export_best_estimator(tmp_path):
    X, y = _numeric(3)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    grid = {"clf__C": [0.1, 1.0]}
    for search in (
        GridSearchCV(pipe, grid, cv=3),
        RandomizedSearchCV(pipe, grid, n_iter=2, cv=3, random_state=0),
        HalvingGridSearchCV(pipe, grid, cv=3, random_state=0),
    ):
        check_all(search, X, tmp_path, y)
    no_refit = GridSearchCV(pipe, grid, cv=3, refit=False).fit(X, y)
    with pytest.raises(mle.UnsupportedModelError, match="refit"):
        mle.export_model(no_refit, tmp_path / "s.mle", sample_input=X)


SELECTORS = [
    SelectKBest(f_classif, k=4),
    SelectPercentile(percentile=30),
    GenericUnivariateSelect(mode="fpr", param=0.01),
    VarianceThreshold(threshold=0.9),
    SelectFromModel(LogisticRegression(max_iter=500), threshold="mean"),
]


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("seed", [0, 4])
def test_selectors(selector, seed, tmp_path):
    X, y = _numeric(seed)
    check_all(selector, X, tmp_path, y)
    check_all(make_pipeline(StandardScaler(), selector, LogisticRegression(max_iter=500)), X, tmp_path, y)


@pytest.mark.parametrize("selector", [RFE(LogisticRegression(max_iter=500), n_features_to_select=4),
                                      RFECV(DecisionTreeClassifier(max_depth=4, random_state=0), cv=3)],
                         ids=lambda s: type(s).__name__)
def test_recursive_feature_elimination(selector, tmp_path):
    X, y = _numeric(5)
    check_all(selector, X, tmp_path, y)


def test_function_transformer_in_pipeline(tmp_path):
    X, y = _numeric(6)
    model = make_pipeline(FunctionTransformer(np.abs), FunctionTransformer(np.log1p), LogisticRegression(max_iter=500))
    check_all(model, X, tmp_path, y)
    assert_close(mle.load_model(tmp_path / "model.mle").predict_proba(X), model.predict_proba(X))
