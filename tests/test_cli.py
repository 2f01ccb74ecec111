"""The console scripts, run as a user would."""

import json
import subprocess
import sys
import tempfile

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.tree import DecisionTreeClassifier

import mlejax as mle
from helpers import assert_same_labels


def _run(*args, check=True):
    # cwd outside the repository, so the installed package is imported, not the source folder
    code = "import sys; from mlejax.cli import {0}; sys.exit({0}(sys.argv[1:]))".format(args[0])
    return subprocess.run([sys.executable, "-c", code, *args[1:]], capture_output=True, text=True, check=check, cwd=tempfile.gettempdir())


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    X, y = make_classification(300, 5, random_state=0)
    X = X.astype(np.float32)
    model = DecisionTreeClassifier(max_depth=5, random_state=0).fit(X, y)
    joblib.dump(model, tmp / "model.joblib")
    np.save(tmp / "X.npy", X)
    return tmp, model, X


def test_export_from_joblib_warns_and_matches(saved):
    tmp, model, X = saved
    out = _run("export_main", str(tmp / "model.joblib"), str(tmp / "model.mle"), "--sample", str(tmp / "X.npy"))
    assert "warning" in out.stderr and "pickle" in out.stderr
    report = json.loads(out.stdout)
    assert report["verification"]["predict"]["label_mismatches"] == 0
    assert_same_labels(mle.load_model(tmp / "model.mle").predict(X), model.predict(X))


def test_inspect_table_and_json(saved):
    tmp, _, _ = saved
    _run("export_main", str(tmp / "model.joblib"), str(tmp / "model.mle"))
    table = _run("inspect_main", str(tmp / "model.mle")).stdout
    assert "sklearn.DecisionTreeClassifier" in table and "TreeEnsemble" in table
    info = json.loads(_run("inspect_main", str(tmp / "model.mle"), "--json").stdout)
    assert info["inputs"][0]["shape"] == [None, 5]


def test_benchmark_npy_csv_parquet(saved):
    tmp, _, X = saved
    _run("export_main", str(tmp / "model.joblib"), str(tmp / "model.mle"))
    pd.DataFrame(X).to_csv(tmp / "X.csv", index=False)
    pd.DataFrame(X).to_parquet(tmp / "X.parquet")
    for data in ("X.npy", "X.csv", "X.parquet"):
        out = json.loads(_run("benchmark_main", str(tmp / "model.mle"), str(tmp / data), "--runs", "3", "--json").stdout)
        assert out["batch_size"] == 300 and out["rows_per_s"] > 0


def test_version_and_bad_file(saved, tmp_path):
    out = _run("runtime_main", "--version")
    assert out.stdout.startswith(f"mlejax {mle.__version__}")
    (tmp_path / "junk.mle").write_bytes(b"not a model at all")
    bad = _run("inspect_main", str(tmp_path / "junk.mle"), check=False)
    assert bad.returncode != 0 and "MLEFormatError" in bad.stderr


def test_demo_runs_small(tmp_path):
    out = _run("runtime_main", "demo", "--rows", "2000", "--trees", "5", "--dir", str(tmp_path))
    assert "joblib" in out.stdout and "labels equal to sklearn" in out.stdout and "100.00%" in out.stdout


def test_export_native_lightgbm_file_exact_float64(tmp_path):
    """A LightGBM ``.txt`` file is read without unpickling; ``--exact-float64`` ranks float64 inputs on the host."""
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    booster = lgb.train({"verbose": -1, "num_leaves": 8}, lgb.Dataset(X, X[:, 0] - X[:, 1] ** 2), num_boost_round=10)
    booster.save_model(str(tmp_path / "model.txt"))
    out = _run("export_main", str(tmp_path / "model.txt"), str(tmp_path / "model.mle"), "--exact-float64")
    assert "pickle" not in out.stderr
    m = mle.load_model(tmp_path / "model.mle")
    assert m.metadata["host_encoding"]["columns"][0]["kind"] == "rank"
    np.testing.assert_allclose(m.predict(X), booster.predict(X), rtol=1e-5, atol=1e-6)


def _one_line_error(out, prog):
    assert out.returncode == 1, out
    lines = [line for line in out.stderr.strip().splitlines() if not line.startswith("warning: ")]  # the pickle warning
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def test_user_errors_are_one_line_and_debug_shows_the_traceback(saved, tmp_path):
    tmp, _, _ = saved
    (tmp_path / "junk.mle").write_bytes(b"not a model at all")
    missing = str(tmp_path / "missing.mle")
    line = _one_line_error(_run("inspect_main", missing, check=False), "mle-inspect")
    assert "FileNotFoundError" in line and "missing.mle" in line
    assert "MLEFormatError" in _one_line_error(_run("inspect_main", str(tmp_path / "junk.mle"), check=False), "mle-inspect")
    line = _one_line_error(_run("export_main", str(tmp_path / "absent.json"), str(tmp_path / "o.mle"), check=False), "mle-export")
    assert "FileNotFoundError: cannot export" in line and "no such file" in line  # not XGBoost's C++ stack trace
    _one_line_error(_run("export_main", str(tmp / "model.joblib"), str(tmp_path / "o.mle"), "--sample", str(tmp_path / "x.txt"), check=False),
                    "mle-export")
    _one_line_error(_run("benchmark_main", missing, str(tmp / "X.npy"), check=False), "mle-benchmark")
    _run("export_main", str(tmp / "model.joblib"), str(tmp_path / "m.mle"))
    if not any(d.platform == "gpu" for d in __import__("jax").devices()):
        line = _one_line_error(_run("benchmark_main", str(tmp_path / "m.mle"), str(tmp / "X.npy"), "--device", "gpu", check=False),
                               "mle-benchmark")
        assert "no 'gpu' device" in line
    debug = _run("inspect_main", missing, "--debug", check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr


def test_missing_native_file_is_checked_before_the_framework(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        mle.export_model(str(tmp_path / "nope.ubj"), tmp_path / "o.mle")


def test_inspect_json_summarises_long_lists(tmp_path):
    xgb = pytest.importorskip("xgboost")
    X, y = make_classification(200, 25, random_state=0)
    xgb.XGBClassifier(n_estimators=30, max_depth=2).fit(X, y).save_model(tmp_path / "m.json")
    _run("export_main", str(tmp_path / "m.json"), str(tmp_path / "m.mle"))
    info = json.loads(_run("inspect_main", str(tmp_path / "m.mle"), "--json").stdout)
    indptr = info["metadata"]["iterations"]["indptr"]
    assert indptr["length"] == 31 and indptr["first"] == [0, 1, 2, 3, 4] and indptr["last"] == [29, 30]
    assert info["metadata"]["input_checks"]["nan"] == []  # short lists stay lists
    assert isinstance(info["tensors"], list)  # lists of records are kept whole


@pytest.mark.parametrize("kind", ["classifier", "regressor", "ranker"])
def test_export_xgboost_file_saved_by_a_wrapper_restores_it(kind, tmp_path):
    """XGBModel.save_model records the wrapper's type in the file; mle-export gives the wrapper's methods, not a Booster's."""
    xgb = pytest.importorskip("xgboost")
    X, y = make_classification(200, 5, n_classes=3, n_informative=3, random_state=0)
    cls = {"classifier": xgb.XGBClassifier, "regressor": xgb.XGBRegressor, "ranker": xgb.XGBRanker}[kind]
    fit = {"ranker": {"qid": np.repeat(np.arange(20), 10)}}.get(kind, {})
    model = cls(n_estimators=5, max_depth=3).fit(X, y, **fit)
    model.save_model(tmp_path / "m.json")
    loaded = cls()
    loaded.load_model(tmp_path / "m.json")  # XGBoost's own restore is the reference
    _run("export_main", str(tmp_path / "m.json"), str(tmp_path / "m.mle"))
    m = mle.load_model(tmp_path / "m.mle")
    assert m.source_estimator == f"xgboost.{cls.__name__}"
    assert "apply" in m.methods
    if kind == "classifier":
        assert list(m.classes_) == [0, 1, 2] and "predict_proba" in m.methods
        assert_same_labels(m.predict(X), loaded.predict(X))
        np.testing.assert_allclose(m.predict_proba(X), loaded.predict_proba(X), rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(m.predict(X), loaded.predict(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m.apply(X), loaded.apply(X))


def test_export_quantize_and_encrypt_flags(saved, tmp_path, monkeypatch):
    tmp, model, X = saved
    key = mle.SecurityUtils.generate_key()
    (tmp_path / "aes.key").write_bytes(key)
    out = _run("export_main", str(tmp / "model.joblib"), str(tmp_path / "q.mle"), "--quantize", "fp16", "--quantize-leaves",
               "--encrypt-key-file", str(tmp_path / "aes.key"), "--sample", str(tmp / "X.npy"))
    report = json.loads(out.stdout)
    assert report["encrypted"] is True and report["quantization"]["mode"] == "fp16"
    with pytest.raises(mle.MLESecurityError):
        mle.load_model(tmp_path / "q.mle")
    assert_same_labels(mle.load_model(tmp_path / "q.mle", key=key).predict(X), model.predict(X))
    env = {**__import__("os").environ, "MLE_TEST_PASSWORD": "correct horse"}
    code = "import sys; from mlejax.cli import export_main; sys.exit(export_main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, str(tmp / "model.joblib"), str(tmp_path / "p.mle"), "--password-env", "MLE_TEST_PASSWORD"],
                   check=True, capture_output=True, env=env, cwd=tempfile.gettempdir())
    assert_same_labels(mle.load_model(tmp_path / "p.mle", password="correct horse").predict(X), model.predict(X))
    assert "--quantize-leaves needs --quantize" in _one_line_error(
        _run("export_main", str(tmp / "model.joblib"), str(tmp_path / "x.mle"), "--quantize-leaves", check=False), "mle-export")
    (tmp_path / "short.key").write_bytes(b"x" * 16)
    assert "32-byte" in _one_line_error(
        _run("export_main", str(tmp / "model.joblib"), str(tmp_path / "x.mle"), "--encrypt-key-file", str(tmp_path / "short.key"),
             check=False), "mle-export")
    assert "MLE_UNSET_VAR" in _one_line_error(
        _run("export_main", str(tmp / "model.joblib"), str(tmp_path / "x.mle"), "--password-env", "MLE_UNSET_VAR", check=False),
        "mle-export")
