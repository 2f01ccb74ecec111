"""Lineage captured at export (hyper-parameters, git, training data, parent) and the registry's chain."""

from __future__ import annotations

import hashlib
import subprocess

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

import mlejax as mle
from helpers_registry import classification, forest_file
from mlejax import lineage
from mlejax.format import read_mle
from mlejax.registry import ModelRegistry


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    return forest_file(tmp_path_factory.mktemp("forest"))


def test_export_records_lineage(tmp_path, monkeypatch):
    X, y = classification()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = RandomForestClassifier(5, max_depth=3, random_state=0).fit(frame, y)
    monkeypatch.chdir(tmp_path)  # not a git work tree
    mle.export_model(model, tmp_path / "m.mle", sample_input=frame[:16], training_data=frame)
    with read_mle(tmp_path / "m.mle") as f:
        record = f.metadata["lineage"]
        full = lineage.from_metadata(f.metadata)
    assert record["hyperparameters"]["n_estimators"] == 5 and record["hyperparameters"]["max_depth"] == 3
    assert record["training_data"] == {"sha256": hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest(),
                                       "shape": [300, 6], "dtype": "float64", "columns": list(frame.columns)}
    assert "git" not in record and "parent" not in record
    assert full["framework"] == "sklearn" and full["framework_version"] and full["mlejax_version"] == mle.__version__
    assert full["parity"]["predict"] == {"label_mismatches": 0}


def test_git_state(tmp_path):
    assert lineage.git_state(tmp_path) is None
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "train.py"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert lineage.git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "train.py").write_text("print(2)\n")
    assert lineage.git_state(tmp_path) == {"commit": head, "dirty": True}


def test_hyperparameters_are_json_safe():
    class Odd:
        def get_params(self, deep=False):
            return {"a": np.float32(0.5), "b": float("nan"), "c": (1, "x"), "d": RandomForestClassifier(), "e": np.int64(3)}

    assert lineage.hyperparameters(Odd()) == {
        "a": 0.5, "b": "nan", "c": [1, "x"], "d": "<sklearn.ensemble._forest.RandomForestClassifier>", "e": 3}
    assert lineage.hyperparameters(object()) is None


def test_registry_lineage_chain(forest, tmp_path):
    model, X, path = forest
    reg = ModelRegistry(tmp_path / "r")
    base = reg.register("base", path)
    child = reg.register("tuned", RandomForestClassifier(3, random_state=1).fit(X, model.predict(X)),
                         sample_input=X[:16], parent=base, lineage={"note": "distilled"})
    grandchild_file = tmp_path / "g.mle"
    mle.export_model(RandomForestClassifier(2, random_state=2).fit(X, model.predict(X)), grandchild_file, parent=child.path)
    grandchild = reg.register("tuned", grandchild_file)
    chain = reg.lineage("tuned", grandchild.version)
    assert [(c["name"], c["version"]) for c in chain] == [("tuned", 2), ("tuned", 1), ("base", 1)]
    assert chain[0]["parent"]["sha256"] == child.sha256 and chain[1]["parent"]["name"] == "base"
    assert chain[1]["note"] == "distilled" and chain[1]["hyperparameters"]["n_estimators"] == 3
    outside = tmp_path / "outside.mle"
    mle.export_model(model, outside, parent=grandchild_file)
    orphan = reg.register("other", outside)
    reg.delete_version("tuned", 2)
    assert reg.lineage("other", orphan.version)[-1] == {"parent": orphan.lineage["parent"], "registered": False}
    with pytest.raises(ValueError, match="parent="):
        mle.export_model(model, tmp_path / "x.mle", parent=tmp_path / "missing.mle")
