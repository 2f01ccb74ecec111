"""The MLflow flavor against a local sqlite:/// tracking and registry URI."""

from __future__ import annotations

import os

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")

import mlejax as mle  # noqa: E402
import mlejax.mlflow  # noqa: E402
from helpers import assert_close, assert_same_labels  # noqa: E402
from helpers_registry import forest_file  # noqa: E402


def test_log_register_and_load_through_mlflow(tmp_path, monkeypatch):
    model, X, path = forest_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("mlejax-test")
    with mlflow.start_run():
        info = mlejax.mlflow.log_model(str(path), name="model", registered_model_name="churn", input_example=X[:3])
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("churn", "champion", info.registered_model_version)
    pyfunc = mlflow.pyfunc.load_model("models:/churn@champion")
    assert_same_labels(np.asarray(pyfunc.predict(X)), model.predict(X))
    assert_close(pyfunc.predict(X, params={"method": "predict_proba"}), model.predict_proba(X))
    assert_close(mlejax.mlflow.load_model("models:/churn@champion").predict_proba(X), model.predict_proba(X))
    local = mlflow.artifacts.download_artifacts("models:/churn@champion")
    requirements = open(os.path.join(local, "requirements.txt")).read().split()
    assert any(r.startswith("mlejax==") for r in requirements)
    assert not any(r.split("=")[0].lower() in ("scikit-learn", "sklearn", "xgboost", "lightgbm", "catboost", "torch", "tensorflow")
                   for r in requirements), requirements
    assert pyfunc.metadata.get_input_schema() is not None


def test_save_model_from_a_trained_model_and_tamper_check(tmp_path):
    model, X, _ = forest_file(tmp_path)
    target = tmp_path / "saved"
    mlejax.mlflow.save_model(model, target, sample_input=X[:16])
    loaded = mlejax.mlflow.load_model(str(target))
    assert_close(loaded.predict_proba(X), model.predict_proba(X))
    assert_close(mlflow.pyfunc.load_model(str(target)).predict(X), model.predict(X))
    data = bytearray((target / "model.mle").read_bytes())
    data[-64] ^= 1
    (target / "model.mle").write_bytes(bytes(data))
    with pytest.raises(mle.MLESecurityError, match="modified after logging"):
        mlejax.mlflow.load_model(str(target))
    with pytest.raises(TypeError, match="not a loaded mlejax.Model"):
        mlejax.mlflow.save_model(loaded, tmp_path / "again")
