"""Host-side encoding of string categories (mlejax.host) and string-category encoders against scikit-learn."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

import mlejax as mle
from helpers import assert_close, roundtrip
from mlejax.format import read_mle, write_mle
from mlejax.host import HostEncoder

N_FIT = 300
WORDS = np.array(["apple", "banana", "cherry", "date", "elder", "fig", "grape"], dtype=object)


def _strings(seed: int, missing="absent") -> tuple[np.ndarray, np.ndarray]:
    """An object array of two string columns and one numeric-as-object column; test rows hold unseen strings."""
    rng = np.random.default_rng(seed)
    X = np.empty((500, 3), dtype=object)
    X[:, 0] = WORDS[rng.integers(0, 4 + seed, 500)]
    X[:, 1] = np.array(["x", "y", "z", "w"], dtype=object)[rng.integers(0, 4, 500)]
    X[:, 2] = WORDS[rng.integers(2, 7, 500)]
    X[rng.random(500) < 0.03, 2] = "rare"
    if not (isinstance(missing, str) and missing == "absent"):
        X[rng.random(500) < 0.08, 0] = missing  # None or NaN
    X_test = X.copy()
    X_test[N_FIT::6, 0] = "kiwi"
    X_test[N_FIT::10, 1] = "q"
    return X, X_test


def _check(model, X_fit, X_test, tmp_path) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_fit[:N_FIT])
        m = roundtrip(model, X_fit, tmp_path)
        worst = 0.0
        for rows in (X_test, X_test[:1], X_test[-1:]):
            native = model.transform(rows)
            native = native.toarray() if hasattr(native, "toarray") else native
            worst = max(worst, assert_close(m.transform(rows), native, what=repr(model)))
    print(f"worst {model!r}: {worst:.3g}")
    return worst


ENCODERS = [
    OneHotEncoder(handle_unknown="ignore"),
    OneHotEncoder(handle_unknown="ignore", drop="first", sparse_output=False),
    OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, sparse_output=False),
    OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=3, drop="if_binary", sparse_output=False),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=-5, min_frequency=20),
]


@pytest.mark.parametrize("model", ENCODERS, ids=repr)
@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("missing", [None, np.nan, "absent"], ids=["None", "nan", "no-missing"])
def test_string_encoders_on_object_arrays(model, seed, missing, tmp_path):
    X, X_test = _strings(seed, missing)
    _check(model, X, X_test, tmp_path)


def test_unknown_string_with_handle_unknown_error_raises(tmp_path):
    X, X_test = _strings(0)
    for model in (OneHotEncoder(sparse_output=False), OrdinalEncoder()):
        _check(model, X, X, tmp_path)
        m = mle.load_model(tmp_path / "model.mle")
        with pytest.raises(ValueError, match="unknown categor"):
            model.transform(X_test)
        with pytest.raises(mle.InputError, match="kiwi"):
            m.transform(X_test)


def test_missing_marker_that_is_not_a_category_is_unknown(tmp_path):
    """Fitted with None as the missing marker: a NaN is then an unknown value, as in scikit-learn."""
    X, _ = _strings(1, missing=None)
    X_test = X.copy()
    X_test[::4, 0] = np.nan
    _check(OneHotEncoder(handle_unknown="ignore", sparse_output=False), X, X_test, tmp_path)


def test_mixed_frame_in_one_encoder(tmp_path):
    """One encoder over a string column and a numeric column of a DataFrame."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"fruit": WORDS[rng.integers(0, 5, 500)], "size": rng.integers(1, 4, 500).astype(float)})
    df.loc[rng.random(500) < 0.1, "size"] = np.nan
    test = df.copy()
    test.loc[N_FIT::7, "fruit"] = "kiwi"
    test.loc[N_FIT::5, "size"] = 9.0
    _check(OneHotEncoder(handle_unknown="ignore", sparse_output=False), df, test, tmp_path)
    m = mle.load_model(tmp_path / "model.mle")
    assert list(m.feature_names_in_) == ["fruit", "size"]
    assert_close(m.transform(test[["size", "fruit"]]), m.transform(test))  # matched by name


def test_string_imputer_is_unsupported(tmp_path):
    X, _ = _strings(0)
    model = SimpleImputer(strategy="most_frequent").fit(X)
    with pytest.raises(mle.UnsupportedModelError, match="SimpleImputer"):
        mle.export_model(model, tmp_path / "s.mle")


# --- HostEncoder itself --------------------------------------------------------------------------

SPEC = {
    "version": 1,
    "n_features": 3,
    "feature_names": ["a", "b", "c"],
    "columns": [
        {"index": 0, "kind": "category", "categories": ["red", "green", "blue"], "missing": "nan", "unknown": "code"},
        {"index": 2, "kind": "ignore"},
    ],
}


def test_host_encoder_codes():
    enc = HostEncoder.from_metadata({"host_encoding": SPEC})
    X = np.array([["green", 1.5, "id1"], ["blue", 2, "id2"], [np.nan, -1, None], ["mauve", 0, 7], [None, 3, "x"]], dtype=object)
    out = enc.apply(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], [1, 2, np.nan, -1, -1])  # NaN is the missing category; None is unknown
    np.testing.assert_array_equal(out[:, 1], [1.5, 2, -1, 0, 3])
    np.testing.assert_array_equal(out[:, 2], [0, 0, 0, 0, 0])  # unused, not numeric → 0
    frame = pd.DataFrame(X, columns=["a", "b", "c"], dtype=object)[["c", "b", "a"]]
    np.testing.assert_array_equal(enc.apply(frame), out)
    with pytest.raises(mle.InputError, match="missing"):
        enc.apply(frame[["a", "b"]])


def test_host_encoder_absent_and_numeric_passthrough():
    assert HostEncoder.from_metadata({}) is None
    enc = HostEncoder.from_metadata({"host_encoding": {**SPEC, "columns": [{"index": 1, "kind": "ignore"}]}})
    X = np.ones((4, 3), np.float32)
    assert enc.apply(X) is X  # no string column: nothing is copied


def _bad_specs():
    def edit(**changes):
        spec = {**SPEC, "columns": [dict(c) for c in SPEC["columns"]]}
        spec.update({k: v for k, v in changes.items() if k != "col"})
        for k, v in changes.get("col", {}).items():
            spec["columns"][0][k] = v
        return spec

    return {
        "not a map": [1, 2],
        "version": edit(version=99),
        "n_features": edit(n_features=-1),
        "names length": edit(feature_names=["a"]),
        "columns type": edit(columns="all"),
        "index range": edit(col={"index": 3}),
        "kind": edit(col={"kind": "pickle"}),
        "categories type": edit(col={"categories": [1, 2]}),
        "duplicate categories": edit(col={"categories": ["a", "a"]}),
        "missing": edit(col={"missing": "empty"}),
        "unknown": edit(col={"unknown": "guess"}),
    }


@pytest.mark.parametrize("name", sorted(_bad_specs()))
def test_malformed_spec_is_a_format_error(name):
    with pytest.raises(mle.MLEFormatError, match="host_encoding"):
        HostEncoder.from_metadata({"host_encoding": _bad_specs()[name]})


def test_malformed_spec_in_file_fails_at_load(tmp_path):
    X, _ = _strings(0)
    model = OneHotEncoder(handle_unknown="ignore").fit(X)
    mle.export_model(model, tmp_path / "ok.mle")
    f = read_mle(str(tmp_path / "ok.mle"))
    meta = dict(f.metadata)
    meta["host_encoding"] = {**meta["host_encoding"], "n_features": "three"}
    write_mle(tmp_path / "bad.mle", metadata=meta, graph=f.graph, tensors={k: np.asarray(v) for k, v in f.tensors.items()})
    with pytest.raises(mle.MLEFormatError, match="host_encoding"):
        mle.load_model(tmp_path / "bad.mle")
