"""ModelRegistry: versions, aliases, tags, search, diff, schema checks, tampering, signatures, gc, URIs."""

from __future__ import annotations

import os

import numpy as np
import pytest

import mlejax as mle
from helpers import assert_close, assert_same_labels
from helpers_registry import forest_file, logistic_file, variant
from mlejax.registry import IncompatibleSchemaError, ModelRegistry, RegistryError


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    return forest_file(tmp_path_factory.mktemp("forest"))


@pytest.fixture
def reg(tmp_path):
    with ModelRegistry(tmp_path / "registry") as r:
        yield r


def test_register_get_load_round_trip(reg, forest, tmp_path, monkeypatch):
    model, X, path = forest
    v1 = reg.register("churn", path, tags={"team": "risk"}, description="first")
    v2 = reg.register("churn", model, sample_input=X[:32])  # a trained model is exported on the way in
    assert (v1.version, v2.version) == (1, 2)
    assert v1.tags == {"team": "risk"} and v1.description == "first"
    assert v1.sha256 == __import__("hashlib").sha256(path.read_bytes()).hexdigest() and v1.size == path.stat().st_size
    assert v1.framework == "sklearn" and v1.estimator == "sklearn.RandomForestClassifier" and v1.framework_version
    assert v1.inputs[0]["shape"] == [None, 6] and v1.classes == [0, 1, 2] and "predict_proba" in v1.methods
    assert v1.lineage["parity"]["predict"] == {"label_mismatches": 0}
    assert reg.get("churn").version == 2
    reg.set_alias("churn", "prod", 1)
    assert reg.get("churn", alias="prod").version == 1 and reg.get("churn", 1).aliases == ["prod"]
    loaded = reg.load("churn", alias="prod")
    assert_close(loaded.predict_proba(X), model.predict_proba(X))
    assert_same_labels(loaded.predict(X), model.predict(X))
    assert [v.version for v in reg.versions("churn")] == [1, 2]
    assert reg.list_models() == [{"name": "churn", "created_at": reg.list_models()[0]["created_at"], "latest_version": 2,
                                  "versions": 2, "aliases": {"prod": 1}}]
    # load_model takes registry URIs (the default registry is $MLEJAX_REGISTRY)
    monkeypatch.setenv("MLEJAX_REGISTRY", str(tmp_path / "registry"))
    for uri in ("registry://churn@prod", "registry://churn:2", "registry://churn", v1.uri):
        assert_close(mle.load_model(uri).predict_proba(X[:20]), model.predict_proba(X[:20]))


def test_sqlite_uri_and_errors_name_what_exists(forest, tmp_path):
    _, _, path = forest
    reg = ModelRegistry(f"sqlite:///{tmp_path}/sub/registry.db")
    assert reg.db_path == tmp_path / "sub" / "registry.db" and (tmp_path / "sub" / "blobs").is_dir()
    reg.register("a", path)
    with pytest.raises(RegistryError, match=r"no model named 'b'.*\['a'\]"):
        reg.get("b")
    with pytest.raises(RegistryError, match=r"a has no version 7; its versions are \[1\]"):
        reg.get("a", 7)
    with pytest.raises(RegistryError, match=r"a has no alias 'prod'; it has \[\]"):
        reg.get("a", alias="prod")
    with pytest.raises(ValueError, match="model name"):
        reg.register("bad@name", path)
    with pytest.raises(LookupError):  # RegistryError is a LookupError too
        reg.delete_alias("a", "prod")


def test_tampered_blob_is_refused(reg, forest):
    _, _, path = forest
    mv = reg.register("m", path)
    blob = mv.path
    os.chmod(blob, 0o644)
    data = bytearray(open(blob, "rb").read())
    data[-100] ^= 1
    open(blob, "wb").write(bytes(data))
    with pytest.raises(mle.MLESecurityError, match="modified on disk"):
        reg.load("m")
    with pytest.raises(mle.MLESecurityError, match="modified on disk"):
        reg.load("m", cache=mle.ModelCache())
    assert reg.verify() == [f"m:1: blob {blob} does not match its sha256"]


def test_required_signatures(forest, tmp_path):
    model, X, path = forest
    public, private = mle.SecurityUtils.generate_keypair()
    signed = tmp_path / "signed.mle"
    mle.SecurityUtils.sign_model(path, private, signed)
    reg = ModelRegistry(tmp_path / "r", require_signature=True, trusted_keys=public)
    with pytest.raises(mle.MLESecurityError):
        reg.register("m", path)  # unsigned
    reg.register("m", signed)
    assert_close(reg.load("m").predict_proba(X[:10]), model.predict_proba(X[:10]))
    other, _ = mle.SecurityUtils.generate_keypair()
    with pytest.raises(mle.MLESecurityError):
        ModelRegistry(tmp_path / "r", require_signature=True, trusted_keys=other).load("m")


def test_schema_changes_need_allow_breaking(reg, forest, tmp_path):
    _, _, path = forest
    _, _, narrow = logistic_file(tmp_path, n_features=5)
    reg.register("m", path)
    reg.register("m", narrow)  # no alias yet: nothing to break
    reg.set_alias("m", "prod", 1)
    with pytest.raises(IncompatibleSchemaError, match=r"version 1 \(alias 'prod'\): input 'X': shape \['batch', 6\] -> \['batch', 5\]"):
        reg.register("m", narrow)
    assert [v.version for v in reg.versions("m")] == [1, 2]  # nothing was added
    assert reg.register("m", narrow, allow_breaking=True).version == 3
    with pytest.raises(IncompatibleSchemaError, match="m@prod: version 3 is incompatible with version 1"):
        reg.set_alias("m", "prod", 3)
    reg.set_alias("m", "prod", 3, allow_breaking=True)
    d = reg.diff("m", 1, "prod")
    assert d["b"] == 3 and d["changed"]["inputs"][0][0]["shape"] == [None, 6] and "ops" in d["changed"] and "size" in d["changed"]
    assert d["breaking"] == ["input 'X': shape ['batch', 6] -> ['batch', 5]"]


def test_tags_search_delete_and_gc(reg, forest, tmp_path):
    _, _, path = forest
    for tag in "abc":
        variant(path, tmp_path / f"{tag}.mle", tag)
    reg.register("fraud", tmp_path / "a.mle", tags={"stage": "dev"})
    reg.register("fraud", tmp_path / "b.mle")
    reg.register("churn", tmp_path / "c.mle", tags={"stage": "dev"})
    reg.set_tag("fraud", 2, "stage", "prod")
    assert [(v.name, v.version) for v in reg.search(tags={"stage": "dev"})] == [("churn", 1), ("fraud", 1)]
    assert [(v.name, v.version) for v in reg.search(name_like="fr%", framework="sklearn")] == [("fraud", 1), ("fraud", 2)]
    assert reg.search(framework="xgboost") == []
    reg.delete_tag("fraud", 2, "stage")
    assert reg.get("fraud", 2).tags == {}
    reg.set_alias("fraud", "prod", 1)
    with pytest.raises(RegistryError, match=r"alias\(es\) \['prod'\]"):
        reg.delete_version("fraud", 1)
    reg.delete_version("fraud", 2)
    assert reg.register("fraud", tmp_path / "b.mle").version == 3  # numbers are never reused
    reg.delete_version("fraud", 3)
    stray = reg.blobs.tmp / "dead.part"
    stray.write_bytes(b"left by a killed writer")
    assert reg.gc(tmp_age_s=0) == {"blobs_removed": 1, "bytes_freed": (tmp_path / "b.mle").stat().st_size, "tmp_removed": 1}
    assert reg.verify() == [] and not stray.exists()
    assert_same = reg.load("fraud", alias="prod")
    assert assert_same.metadata["user"] == {"variant": "a"}


def test_import_mlejax_does_not_import_sqlite_or_mlflow():
    import subprocess
    import sys

    code = ("import sys, mlejax; before = {'sqlite3', 'mlflow', 'mlejax.registry'} & set(sys.modules); "
            "mlejax.registry.ModelRegistry; print(sorted(before), 'sqlite3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "True"]


def test_mle_score_takes_a_registry_uri(reg, forest, tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    model, X, path = forest
    reg.register("m", path)
    reg.set_alias("m", "prod", 1)
    monkeypatch.setenv("MLEJAX_REGISTRY", str(tmp_path / "registry"))
    np.save(tmp_path / "X.npy", X)
    mle.score("registry://m@prod", tmp_path / "X.npy", tmp_path / "out.parquet", progress=False)
    table = pq.read_table(tmp_path / "out.parquet")
    assert_close(np.stack([table[f"proba_{c}"].to_numpy() for c in model.classes_], axis=1), model.predict_proba(X))
