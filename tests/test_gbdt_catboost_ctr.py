"""CatBoost categorical features: CityHash, one-hot codes and CTR (target statistic) features against CatBoost itself.

Categorical values are hashed and CTR values computed on the host (``mlejax.host_catboost``); these tests
compare raw margins, probabilities, labels and leaf indexes with CatBoost on data with string and integer
categories, category combinations, float splits inside combinations, NaN float features, unseen categories,
single rows, DataFrames and ``.cbm`` files.
"""

import json

import numpy as np
import pytest

cb = pytest.importorskip("catboost")
pd = pytest.importorskip("pandas")

import mlejax as mle  # noqa: E402
from mlejax.cityhash import cityhash64  # noqa: E402
from mlejax.format.errors import InputError, MLEFormatError, UnsupportedModelError  # noqa: E402
from mlejax.format.host_spec import validate_host_spec  # noqa: E402
from helpers import assert_close, roundtrip  # noqa: E402

CAT = [1, 2, 3, 4]
FAST = dict(verbose=0, random_seed=0, thread_count=2)


def _data(n=1500, seed=0, nan=0.05):
    """Mixed columns: floats (some NaN), string categories, an integer category, a two-valued (one-hot) category."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 6), dtype=object)
    x0 = rng.normal(size=n)
    x5 = rng.normal(size=n)
    x0[rng.random(n) < nan] = np.nan
    X[:, 0] = x0
    X[:, 1] = rng.choice([f"city{i}" for i in range(12)] + ["ünïcode", ""], n)
    X[:, 2] = rng.choice(["x", "y", "z"], n)
    X[:, 3] = rng.integers(0, 25, n)
    X[:, 4] = rng.choice(["p", "q"], n)
    X[:, 5] = x5
    city = np.char.count(X[:, 1].astype(str), "1") > 0
    signal = city ^ (X[:, 2] == "x") ^ (X[:, 4] == "p") | (np.nan_to_num(x0) > 1.0)
    return X, signal.astype(float) + 0.3 * x5 + 0.05 * X[:, 3].astype(float)


def _test_rows(seed=5):
    """Fresh rows, with unseen categories and single rows among them."""
    X, _ = _data(n=600, seed=seed)
    X[:7, 1] = ["never-seen", "city99", "x" * 100, "", "ünïcode", "city1 ", "CITY1"]
    X[7:10, 3] = [-3, 10**6, 24]
    X[10:12, 2] = ["w", "X"]
    return X


def _raw(model, X):
    return model.predict(X, prediction_type="RawFormulaVal")


def _check(model, m, X):
    """Raw margins, predictions and leaf indexes equal CatBoost's, also on single rows; return the worst raw error."""
    worst = assert_close(m.decision_function(X), _raw(model, X), what="raw")
    if isinstance(model, cb.CatBoostClassifier):
        worst = max(worst, assert_close(m.predict_proba(X), model.predict_proba(X), what="proba"))
        assert (m.predict(X) == model.predict(X)).all(), "labels differ"
    else:
        assert_close(m.predict(X), model.predict(X), what="predict")
    assert (m.apply(X) == model.calc_leaf_indexes(X)).all(), "leaf indexes differ"
    for row in (X[:1], X[5:6], X[-1:]):
        assert_close(m.decision_function(row), _raw(model, row), what="single row")
    return worst


def test_cityhash_matches_catboost(tmp_path):
    """CatBoost reports the hash of each training category; ours agree for every length bucket and UTF-8."""
    rng = np.random.default_rng(1)
    values = [""] + ["".join(map(chr, rng.integers(33, 127, k))) for k in [*range(1, 140), 150, 200, 300, 1000]]
    values += ["héllo", "日本語テキスト", "-1", "0", "nan"]
    X = np.empty((len(values), 2), dtype=object)
    X[:, 0] = rng.normal(size=len(values))
    X[:, 1] = values
    y = rng.integers(0, 2, len(values))
    model = cb.CatBoostClassifier(iterations=2, depth=2, cat_features=[1], **FAST).fit(X, y)
    path = tmp_path / "m.json"
    model.save_model(str(path), format="json", pool=cb.Pool(X, y, cat_features=[1]))
    reported = json.loads(path.read_text(encoding="utf-8"))["features_info"]["cat_features_hash"]
    assert len(reported) == len(set(values))
    for entry in reported:
        assert cityhash64(entry["value"].encode("utf-8")) & 0xFFFFFFFF == entry["hash"], entry["value"]


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression", "buckets_counter", "binarized_mean"])
def test_ctr_parity(kind, tmp_path):
    X, signal = _data()
    params = dict(iterations=60, depth=5, cat_features=CAT, **FAST)
    if kind == "binary":
        model = cb.CatBoostClassifier(**params).fit(X, np.where(signal > 0.5, "yes", "no"))
    elif kind == "multiclass":
        model = cb.CatBoostClassifier(loss_function="MultiClass", **params).fit(X, np.digitize(signal, [0.3, 1.0]))
    elif kind == "regression":
        model = cb.CatBoostRegressor(**params).fit(X, signal)
    elif kind == "buckets_counter":
        model = cb.CatBoostClassifier(simple_ctr=["Buckets", "Counter"], combinations_ctr=["Borders", "Counter"], **params)
        model.fit(X, signal > 0.5)
    else:
        model = cb.CatBoostRegressor(simple_ctr=["BinarizedTargetMeanValue"], combinations_ctr=["BinarizedTargetMeanValue"],
                                     **params).fit(X, signal)
    m = roundtrip(model, X, tmp_path)
    assert m.n_features_in_ == 6
    _check(model, m, _test_rows())


def test_ctr_model_uses_combinations_and_float_splits(tmp_path):
    """A deeper model builds CTRs over category pairs, float splits and one-hot tests; all reproduced."""
    X, signal = _data(n=3000)
    model = cb.CatBoostClassifier(iterations=200, depth=6, cat_features=CAT, **FAST).fit(X, signal > 0.5)
    path = tmp_path / "model.json"
    model.save_model(str(path), format="json")
    kinds = {e["combination_element"] for c in json.loads(path.read_text())["features_info"]["ctrs"] for e in c["elements"]}
    assert kinds == {"cat_feature_value", "float_feature", "cat_feature_exact_value"}
    m = roundtrip(model, X, tmp_path)
    worst = _check(model, m, _test_rows())
    print(f"catboost CTR combinations: worst raw error {worst:.2e}")


def test_dataframe_integer_categories_and_depthwise_trees(tmp_path):
    X, signal = _data()
    frame = pd.DataFrame(X, columns=["f0", "city", "letter", "code", "pq", "f5"])
    frame[["f0", "f5"]] = frame[["f0", "f5"]].astype(float)
    frame["code"] = frame["code"].astype(int)
    model = cb.CatBoostRegressor(iterations=40, depth=4, grow_policy="Depthwise", cat_features=["city", "letter", "code", "pq"],
                                 **FAST).fit(frame, signal)
    path = tmp_path / "m.mle"
    mle.export_model(model, path, sample_input=frame.iloc[:64])
    m = mle.load_model(path)
    assert list(m.feature_names_in_) == list(frame.columns)
    test = pd.DataFrame(_test_rows(), columns=frame.columns).astype({"f0": float, "f5": float, "code": int})
    assert_close(m.predict(test), model.predict(test))
    assert_close(m.predict(test[list(reversed(frame.columns))]), model.predict(test))  # columns matched by name
    assert (m.apply(test) == model.calc_leaf_indexes(test)).all()
    # Integer categories may arrive as integral floats (numeric arrays): they hash as the integers.
    numeric = test.assign(city=0, letter=0, pq=0).to_numpy(dtype=np.float64)
    native = test.assign(city="0", letter="0", pq="0")
    assert_close(m.predict(numeric), model.predict(native))


def test_cbm_file_with_ctr(tmp_path):
    X, signal = _data()
    model = cb.CatBoostClassifier(iterations=30, depth=4, cat_features=CAT, **FAST).fit(X, signal > 0.5)
    path = tmp_path / "model.cbm"
    model.save_model(str(path))
    mle.export_model(str(path), tmp_path / "m.mle", sample_input=X[:64])
    m = mle.load_model(tmp_path / "m.mle")
    rows = _test_rows()
    assert_close(m.decision_function(rows), _raw(model, rows))


def test_missing_categorical_value_is_an_error_like_catboost(tmp_path):
    X, signal = _data()
    model = cb.CatBoostClassifier(iterations=10, depth=3, cat_features=CAT, **FAST).fit(X, signal > 0.5)
    m = roundtrip(model, X, tmp_path)
    bad = _test_rows()[:3]
    bad[1, 2] = None
    with pytest.raises(Exception):
        model.predict(bad)
    with pytest.raises(InputError, match="categorical column '2'"):
        m.predict(bad)
    bad[1, 2] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        m.predict(bad)


def test_unsupported_and_malformed(tmp_path):
    X, signal = _data(n=300)
    text = pd.DataFrame({"t": np.where(signal > 0.5, "good day", "bad night"), "f": X[:, 0].astype(float)})
    model = cb.CatBoostClassifier(iterations=5, text_features=["t"], **FAST).fit(text, signal > 0.5)
    with pytest.raises(UnsupportedModelError, match="text"):
        mle.export_model(model, tmp_path / "never.mle")

    good = {"version": 1, "n_features": 3, "feature_names": None, "columns": [],
            "catboost": {"cat_columns": [1], "one_hot": [], "tables": [
                {"cats": [0], "floats": [], "one_hots": [], "hashes": "h", "counts": "c", "counter_denominator": 0}],
                "ctrs": [{"table": 0, "type": "Borders", "target_border_idx": 0, "prior_num": 0.0, "prior_denom": 1.0,
                          "shift": 0.0, "scale": 15.0}]}}
    validate_host_spec(good)
    for path, value in [(("cat_columns",), [5]), (("tables", 0, "cats"), [3]), (("ctrs", 0, "type"), "Mean"),
                        (("ctrs", 0, "table"), 1), (("one_hot",), [[0, [-1]]]), (("tables", 0, "floats"), [[0, "x", True]])]:
        spec = json.loads(json.dumps(good))
        node = spec["catboost"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(MLEFormatError, match="catboost"):
            validate_host_spec(spec)
