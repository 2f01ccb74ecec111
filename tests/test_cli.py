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
