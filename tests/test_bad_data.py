"""Bad data: where the source framework raises, the loaded model raises InputError (issue 14, section 4).

Parity is checked against the framework itself: each case first asserts what
scikit-learn (or the booster) does with the same rows.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.decomposition import PCA
from sklearn.ensemble import (AdaBoostClassifier, BaggingClassifier, HistGradientBoostingClassifier, IsolationForest,
                              RandomForestClassifier, StackingClassifier, VotingClassifier)
from sklearn.feature_selection import RFE, SelectFromModel, SelectKBest, VarianceThreshold
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import (FunctionTransformer, KBinsDiscretizer, OneHotEncoder, OrdinalEncoder, QuantileTransformer,
                                   StandardScaler)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import mlejax as mle
from helpers import roundtrip
from mlejax.exporters._input_checks import input_checks
from mlejax.format import read_mle, write_mle

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 3))
X[::9, 0] = np.nan  # column 0 has missing values at fit time (imputed or NaN-tolerant models only)
Y = (np.nan_to_num(X[:, 1]) > 0).astype(int)
CLEAN = np.nan_to_num(X)


def _impute_first_column():
    ct = ColumnTransformer([("imp", SimpleImputer(), [0])], remainder="passthrough")
    return make_pipeline(ct, LogisticRegression())


MODELS = {
    "scaler+logistic": (lambda: make_pipeline(StandardScaler(), LogisticRegression()), CLEAN),
    "logistic": (LogisticRegression, CLEAN),
    "knn": (KNeighborsClassifier, CLEAN),
    "tree": (lambda: DecisionTreeClassifier(max_depth=4, random_state=0), X),
    "forest": (lambda: RandomForestClassifier(5, max_depth=4, random_state=0), X),
    "hgb": (lambda: HistGradientBoostingClassifier(max_iter=5), X),
    "imputer+logistic": (lambda: make_pipeline(SimpleImputer(), LogisticRegression()), X),
    "scaler+hgb": (lambda: make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=5)), X),
    "impute-column-0+logistic": (_impute_first_column, X),
}


def _raises(fn) -> str | None:
    """The type name of what ``fn()`` raises, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
    except Exception as exc:  # noqa: BLE001 - the class is what is compared
        return type(exc).__name__
    return None


def _tree():
    return DecisionTreeClassifier(max_depth=2, random_state=0)


def _hgb():
    return HistGradientBoostingClassifier(max_iter=3)


# name: (model, fitted on data with NaN?); the record is compared with what scikit-learn does, column by column.
ANALYSED = {
    "impute-col0+hgb": (lambda: make_pipeline(ColumnTransformer([("i", SimpleImputer(), [0])], remainder="passthrough"), _hgb()), True),
    "function+logistic": (lambda: make_pipeline(FunctionTransformer(), LogisticRegression()), False),
    "validating-function+tree": (lambda: make_pipeline(FunctionTransformer(validate=True), _tree()), False),
    "voting-tree-hgb": (lambda: VotingClassifier([("a", _tree()), ("b", _hgb())], voting="soft"), True),
    "voting-tree-logistic": (lambda: VotingClassifier([("a", _tree()), ("b", LogisticRegression())]), False),
    "stacking": (lambda: StackingClassifier([("a", _tree()), ("b", _hgb())]), True),
    "stacking-passthrough": (lambda: StackingClassifier([("a", _tree())], passthrough=True), False),
    "bagging-hgb": (lambda: BaggingClassifier(_hgb(), n_estimators=3, random_state=0), True),
    "bagging-logistic-2-features": (lambda: BaggingClassifier(LogisticRegression(), n_estimators=3, max_features=2, random_state=0), False),
    "adaboost": (lambda: AdaBoostClassifier(_tree(), n_estimators=3), False),
    "ovr-tree": (lambda: OneVsRestClassifier(_tree()), True),
    "grid-hgb": (lambda: GridSearchCV(_hgb(), {"max_depth": [2]}, cv=2), True),
    "grid-logistic": (lambda: GridSearchCV(LogisticRegression(), {"C": [1]}, cv=2), False),
    "target-regressor": (lambda: TransformedTargetRegressor(DecisionTreeRegressor()), True),
    "select-from-tree+logistic": (lambda: make_pipeline(SelectFromModel(_tree()), LogisticRegression()), False),
    "select-from-tree+hgb": (lambda: make_pipeline(SelectFromModel(_tree()), _hgb()), True),
    "variance+hgb": (lambda: make_pipeline(VarianceThreshold(), _hgb()), True),
    "rfe+logistic": (lambda: make_pipeline(RFE(_tree(), n_features_to_select=1), LogisticRegression()), False),
    "scaler+kbest+logistic": (lambda: make_pipeline(StandardScaler(), SelectKBest(k=1), LogisticRegression()), False),
    "ordinal+logistic": (lambda: make_pipeline(OrdinalEncoder(), LogisticRegression()), False),
    "missing-indicator+logistic": (lambda: make_pipeline(MissingIndicator(features="all"), LogisticRegression()), True),
    "union+hgb": (lambda: make_pipeline(FeatureUnion([("s", StandardScaler()), ("i", SimpleImputer())]), _hgb()), True),
    "quantile+hgb": (lambda: make_pipeline(QuantileTransformer(n_quantiles=10), _hgb()), True),
    "kbins+tree": (lambda: make_pipeline(KBinsDiscretizer(quantile_method="averaged_inverted_cdf"), _tree()), False),
    "pca+tree": (lambda: make_pipeline(PCA(2), _tree()), False),
    "isolation-forest": (lambda: IsolationForest(n_estimators=3, random_state=0), True),
    "forest": (lambda: RandomForestClassifier(3, random_state=0), True),
}


@pytest.mark.parametrize("name", list(ANALYSED))
def test_recorded_refusals_match_scikit_learn(name):
    """Which raw columns refuse NaN and infinity, as recorded at export, against scikit-learn column by column."""
    make, with_nan = ANALYSED[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make().fit(X if with_nan else np.round(CLEAN), Y)
    record = input_checks(model, 3)
    method = "predict" if hasattr(model, "predict") else "transform"
    for key, value in (("nan", np.nan), ("inf", np.inf)):
        for column in range(3):
            rows = np.round(CLEAN[:3])
            rows[1, column] = value
            raised = _raises(lambda: getattr(model, method)(rows))
            assert raised in (None, "ValueError")
            assert (raised is not None) == (column in record[key]), f"{key} in column {column}: sklearn raises {raised}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-data")
    out = {}
    for name, (make, data) in MODELS.items():
        model = make().fit(data, Y)
        out[name] = (model, roundtrip(model, CLEAN, tmp, name=f"{name}.mle"))
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_nan_and_inf_refused_exactly_where_the_source_refuses(name, exported):
    model, m = exported[name]
    for value in (np.nan, np.inf, -np.inf):
        for column in range(3):
            rows = CLEAN[:4].copy()
            rows[1, column] = value
            native = _raises(lambda: model.predict_proba(rows))
            ours = _raises(lambda: m.predict_proba(rows))
            assert native in (None, "ValueError"), native
            assert ours == (native and "InputError"), f"{name}: {value} in column {column}: sklearn {native}, mlejax {ours}"


def test_nan_message_names_columns_and_counts(exported):
    model, m = exported["scaler+logistic"]
    rows = CLEAN[:5].copy()
    rows[[0, 3], 2] = np.nan
    rows[1, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict(rows)
    with pytest.raises(mle.InputError, match=r"Input X contains NaN: 2 columns: X\[:, 0\] \(1 value\), X\[:, 2\] \(2 values\)") as info:
        m.predict(rows)
    assert "check_finite=False" in str(info.value)
    rows[1, 0] = np.inf  # NaN only in column 2 now
    with pytest.raises(mle.InputError, match="Input X contains NaN: 1 column"):
        m.predict_proba(rows)
    rows[[0, 3], 2] = 0.0
    with pytest.raises(ValueError, match="infinity"):
        model.predict(rows)
    with pytest.raises(mle.InputError, match=r"contains infinity or a value too large for dtype\('float32'\): 1 column: X\[:, 0\]"):
        m.decision_function(rows)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_float64_value_too_large_for_float32_is_refused(exported):
    """1e300 is finite in float64 but infinite once cast to the program's float32: refused, not silently wrong."""
    _, m = exported["scaler+logistic"]
    rows = CLEAN[:2].copy()
    rows[0, 1] = 1e300
    with pytest.raises(mle.InputError, match="too large"):
        m.predict(rows)


def test_check_finite_false_passes_nan_through(exported, tmp_path):
    model, m = exported["scaler+logistic"]
    rows = CLEAN[:3].copy()
    rows[0, 1] = np.nan
    assert np.isnan(m.predict_proba(rows, check_finite=False)[0]).all()
    assert np.isnan(m.run([rows], check_finite=False)[m.outputs.index("probabilities")][0]).all()
    mle.export_model(model, tmp_path / "m.mle")
    fast = mle.load_model(tmp_path / "m.mle", check_finite=False)
    assert np.isnan(fast.predict_proba(rows)[0]).all()
    with pytest.raises(mle.InputError, match="NaN"):
        fast.predict_proba(rows, check_finite=True)
    with pytest.raises(TypeError, match="check_finite"):
        m.predict(rows, check_finit=False)  # the error names the keyword it accepts


def test_files_without_the_record_keep_passing_nan(exported, tmp_path):
    model, _ = exported["scaler+logistic"]
    mle.export_model(model, tmp_path / "new.mle")
    with read_mle(str(tmp_path / "new.mle")) as f:
        meta = {k: v for k, v in f.metadata.items() if k != "input_checks"}
        write_mle(tmp_path / "old.mle", metadata=meta, graph=f.graph, tensors={k: np.array(v) for k, v in f.tensors.items()})
    rows = CLEAN[:2].copy()
    rows[0, 0] = np.nan
    assert np.isnan(mle.load_model(tmp_path / "old.mle").predict_proba(rows)[0]).all()


OK_RECORD = {"nan": [], "inf": [], "by_name": False, "categories": []}


@pytest.mark.parametrize("bad", [{"nan": [0], "inf": []}, {**OK_RECORD, "nan": [7]}, {**OK_RECORD, "nan": ["a"]}, {**OK_RECORD, "nan": [0, 0]},
                                 {**OK_RECORD, "by_name": 1}, {**OK_RECORD, "inf": None}, {**OK_RECORD, "categories": [[0, ["a"]]]},
                                 {**OK_RECORD, "categories": [[3, [1.0]]]}, {**OK_RECORD, "categories": [0]}])
def test_malformed_record_fails_at_load(bad, exported, tmp_path):
    model, _ = exported["scaler+logistic"]
    mle.export_model(model, tmp_path / "ok.mle")
    with read_mle(str(tmp_path / "ok.mle")) as f:
        write_mle(tmp_path / "bad.mle", metadata={**f.metadata, "input_checks": bad}, graph=f.graph,
                  tensors={k: np.array(v) for k, v in f.tensors.items()})
    with pytest.raises(mle.MLEFormatError, match="input_checks"):
        mle.load_model(tmp_path / "bad.mle")


def test_boosters_and_networks_record_no_refusal(tmp_path):
    xgb = pytest.importorskip("xgboost")
    model = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(X, Y)
    m = roundtrip(model, CLEAN, tmp_path)
    assert m.metadata["input_checks"] == OK_RECORD
    rows = CLEAN[:2].copy()
    rows[0] = [np.nan, np.inf, -np.inf]
    np.testing.assert_allclose(m.predict_proba(rows), model.predict_proba(rows), rtol=1e-5)


# --- string columns -----------------------------------------------------------------------------

FRAME = pd.DataFrame({"city": np.array(["paris", "rome", "1", "oslo"] * 25, dtype=object), "size": np.arange(100.0)})


@pytest.mark.parametrize("encoder", [OneHotEncoder(sparse_output=False), OrdinalEncoder()], ids=["onehot", "ordinal"])
def test_numeric_column_where_strings_were_fitted(encoder, tmp_path):
    """scikit-learn raises TypeError on a numeric column fitted as strings; mlejax raises InputError naming it."""
    model = encoder.fit(FRAME[["city"]])
    m = roundtrip(model, FRAME[["city"]], tmp_path)
    numbers = pd.DataFrame({"city": [1.0, 2.0]})
    with pytest.raises(TypeError):
        model.transform(numbers)
    with pytest.raises(mle.InputError, match="column 'city' holds numbers \\(float64\\), but the model was fitted on string categories"):
        m.transform(numbers)
    with pytest.raises(mle.InputError, match="holds numbers"):
        m.transform(np.array([[1], [2]]))


def test_number_among_strings_is_an_unknown_category(tmp_path):
    """The int 1 is not the category "1": unknown, as in scikit-learn (an error, or zeros with handle_unknown='ignore')."""
    rows = np.array([["paris"], [1]], dtype=object)
    strict = OneHotEncoder(sparse_output=False).fit(FRAME[["city"]].to_numpy())
    with pytest.raises(ValueError, match=r"Found unknown categories \[1\]"):
        strict.transform(rows)
    with pytest.raises(mle.InputError, match=r"Found unknown categories \['1'\]"):
        roundtrip(strict, FRAME[["city"]].to_numpy(), tmp_path).transform(rows)
    lenient = OneHotEncoder(sparse_output=False, handle_unknown="ignore").fit(FRAME[["city"]].to_numpy())
    m = roundtrip(lenient, FRAME[["city"]].to_numpy(), tmp_path, name="lenient.mle")
    np.testing.assert_array_equal(m.transform(rows), lenient.transform(rows))
    assert not m.transform(rows)[1].any()


def test_column_transformer_by_name_refuses_arrays(tmp_path):
    ct = ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough")
    model = make_pipeline(ct, LogisticRegression()).fit(FRAME, FRAME["size"] > 50)
    m = roundtrip(model, FRAME, tmp_path)
    assert m.metadata["input_checks"]["by_name"] is True
    message = "Specifying the columns using strings is only supported for dataframes"
    for rows in (FRAME.to_numpy(), FRAME[["size"]].assign(x=1.0).to_numpy()):  # object array, then numbers
        with pytest.raises(ValueError, match=message):
            model.predict(rows)
        with pytest.raises(mle.InputError, match=message):
            m.predict(rows)
    np.testing.assert_array_equal(m.predict(FRAME), model.predict(FRAME))
    by_position = ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), [0])], remainder="passthrough").fit(FRAME)
    assert roundtrip(by_position, FRAME, tmp_path, name="pos.mle").metadata["input_checks"]["by_name"] is False


@pytest.mark.parametrize("encoder", [OneHotEncoder(), OrdinalEncoder()], ids=["onehot", "ordinal"])
def test_unknown_numeric_category_raises_like_scikit_learn(encoder, tmp_path):
    """handle_unknown="error" on numeric categories: a value not seen at fit raises (NaN too, unless it was seen)."""
    data = np.array([[1.0, 2.0], [3.0, 5.0], [np.nan, 2.0], [1.0, 7.0]] * 10)
    model = make_pipeline(encoder, _tree()).fit(data, np.arange(40) % 2)
    m = roundtrip(model, data, tmp_path)
    assert m.metadata["input_checks"]["categories"] == [[0, [1.0, 3.0, pytest.approx(np.nan, nan_ok=True)]], [1, [2.0, 5.0, 7.0]]]
    np.testing.assert_array_equal(m.predict(data), model.predict(data))  # NaN is a known category of column 0
    for bad, found in (([[1.0, 2.0], [4.0, 2.0]], r"\[4.0\] in column X\[:, 0\]"), ([[1.0, np.nan]], r"\[nan\] in column X\[:, 1\]")):
        with pytest.raises(ValueError, match="Found unknown categories"):
            model.predict(np.array(bad))
        with pytest.raises(mle.InputError, match="Found unknown categories " + found):
            m.predict(np.array(bad))
    lenient = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(data, np.arange(40) % 2)
    assert roundtrip(lenient, data, tmp_path, name="lenient.mle").metadata["input_checks"]["categories"] == []


def test_catboost_refuses_a_fractional_number_in_a_categorical_column(tmp_path):
    """CatBoost refuses floats in categorical features; mlejax reads integral floats as integers (numeric arrays) only."""
    cb = pytest.importorskip("catboost")
    data = np.array([["a", 1.0], ["b", 2.0], ["a", 3.0], ["c", 4.0]] * 10, dtype=object)
    model = cb.CatBoostClassifier(iterations=3, depth=2, verbose=0, cat_features=[0]).fit(data, np.arange(40) % 2)
    m = roundtrip(model, data, tmp_path)
    rows = np.array([["a", 1.0], [1.5, 1.0]], dtype=object)
    with pytest.raises(cb.CatBoostError, match="cat_features must be integer or string"):
        model.predict(rows)
    with pytest.raises(mle.InputError, match=r"categorical column '0' has a non-integer number \(1.5\); CatBoost categorical values must be"):
        m.predict(rows)
