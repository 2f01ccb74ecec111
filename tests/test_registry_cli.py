"""mle-registry and mle-cache, run in-process."""

from __future__ import annotations

import json
import os

import pytest

from helpers_registry import forest_file, logistic_file
from mlejax import xla_cache
from mlejax.registry.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    return forest_file(tmp)[2], logistic_file(tmp)[2]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_registry_commands(files, tmp_path, capsys):
    forest, narrow = files
    r = ["--registry", str(tmp_path / "reg")]
    code, out, _ = run(capsys, *r, "register", "churn", str(forest), "--tag", "team=risk", "--alias", "prod", "--json")
    assert code == 0 and json.loads(out)["version"] == 1 and json.loads(out)["aliases"] == ["prod"]
    code, _, err = run(capsys, *r, "register", "churn", str(narrow))
    assert code == 1 and "incompatible with version 1 (alias 'prod')" in err and "allow_breaking" in err
    assert run(capsys, *r, "register", "churn", str(narrow), "--allow-breaking")[0] == 0
    code, out, _ = run(capsys, *r, "show", "churn@prod", "--json")
    shown = json.loads(out)
    assert (shown["version"], shown["tags"], shown["uri"]) == (1, {"team": "risk"}, "registry://churn:1")
    assert "churn:1" in run(capsys, *r, "show", "churn:1")[1]
    code, out, _ = run(capsys, *r, "list", "--json")
    assert json.loads(out)[0] | {"created_at": None} == {"name": "churn", "created_at": None, "latest_version": 2, "versions": 2, "aliases": {"prod": 1}}
    assert "churn  latest 2  (2 versions)  @prod=1" in run(capsys, *r, "list")[1]
    assert [v["version"] for v in json.loads(run(capsys, *r, "list", "churn", "--json")[1])] == [1, 2]
    code, out, _ = run(capsys, *r, "diff", "churn", "prod", "2", "--json")
    assert json.loads(out)["breaking"] == ["input 'X': shape ['batch', 6] -> ['batch', 5]"]
    assert "BREAKING: input 'X'" in run(capsys, *r, "diff", "churn", "1", "2")[1]
    assert run(capsys, *r, "alias", "churn", "prod", "2")[0] == 1
    assert json.loads(run(capsys, *r, "alias", "churn", "prod", "2", "--allow-breaking", "--json")[1])["aliases"] == ["prod"]
    assert json.loads(run(capsys, *r, "tag", "churn", "2", "stage=prod", "--json")[1])["tags"] == {"stage": "prod"}
    assert json.loads(run(capsys, *r, "tag", "churn", "2", "stage", "--delete", "--json")[1])["tags"] == {}
    chain = json.loads(run(capsys, *r, "lineage", "churn@prod", "--json")[1])
    assert chain[0]["version"] == 2 and chain[0]["estimator"] == "sklearn.LogisticRegression"
    assert run(capsys, *r, "alias", "churn", "prod", "--delete")[0] == 0
    assert json.loads(run(capsys, *r, "gc", "--json")[1]) == {"blobs_removed": 0, "bytes_freed": 0, "tmp_removed": 0}
    code, _, err = run(capsys, *r, "show", "nope")
    assert code == 1 and "no model named 'nope'" in err


def test_cache_commands(tmp_path, capsys):
    for i, (size, used) in enumerate([(100, 3), (200, 1), (300, 2)]):
        (tmp_path / f"k{i}-cache").write_bytes(bytes(size))
        (tmp_path / f"k{i}-atime").write_bytes((used * 10**9).to_bytes(8, "little"))
    (tmp_path / "unrelated.txt").write_text("kept")
    assert xla_cache.main(["--dir", str(tmp_path), "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"directory": str(tmp_path), "entries": 3, "bytes": 600}
    xla_cache.main(["--dir", str(tmp_path), "prune", "--max-bytes", "350", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert (result["removed"], result["bytes_freed"], result["bytes"]) == (2, 500, 100)  # k1 (oldest), then k2
    assert sorted(os.listdir(tmp_path)) == ["k0-atime", "k0-cache", "unrelated.txt"]
    xla_cache.main(["--dir", str(tmp_path), "clear"])
    assert "entries: 0" in capsys.readouterr().out and os.listdir(tmp_path) == ["unrelated.txt"]
