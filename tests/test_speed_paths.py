"""Speed paths of issue 15: batch pieces past one tile, the call fast path, lazy imports, cached shape checks, load checks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlejax as mle
from mlejax.format.errors import InputError, MLEFormatError
from mlejax.format.graph import Graph
from mlejax.format.policy import trust_settings
from mlejax.format.predict_options import validate_iterations
from mlejax.lowering.cache import read_entry
from mlejax.lowering.program import Program, pieces
from tests.helpers import assert_close, roundtrip


@pytest.fixture(scope="module")
def logreg():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12_000, 6)).astype(np.float32)
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.2 * rng.standard_normal(len(X)) > 0).astype(int)
    return LogisticRegression().fit(X, y), X


def test_pieces_split_a_remainder_instead_of_padding_it():
    assert [b - a for a, b in pieces(100_000, "pow2", 1 << 16)] == [65_536, 32_768, 1_696]
    assert [b - a for a, b in pieces(40_000, "pow2", 1 << 16)] == [32_768, 7_232]  # 7,232 padded to 8,192: under 1/4
    assert [b - a for a, b in pieces(3_000, "pow2", 1 << 16)] == [3_000]  # small batches: one padded piece
    assert [b - a for a, b in pieces(150, "pow2", 64)] == [64, 64, 22]
    assert [b - a for a, b in pieces(10_000, [128, 16_384], 1 << 16)] == [10_000]  # explicit buckets: padded as before
    for n in (1, 4_097, 65_537, 131_073, 250_000):
        parts = pieces(n, "pow2", 1 << 16)
        assert parts[0][0] == 0 and parts[-1][1] == n and all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_batch_in_pieces_matches_sklearn(logreg, tmp_path):
    model, X = logreg
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict_proba(X[:10_000]), model.predict_proba(X[:10_000]))
    assert (m.predict(X[:10_000]) == model.predict(X[:10_000])).all()
    compiled = {key[1][0][0] for key in m.program.compile_seconds}
    assert {8_192, 2_048} <= compiled and 16_384 not in compiled  # 8,192 exact + 1,808 padded to 2,048


def test_fast_path_gives_the_checked_path_results(logreg, tmp_path):
    model, X = logreg
    m = roundtrip(model, X, tmp_path)
    row = np.ascontiguousarray(X[:1])
    expected = model.predict_proba(row)
    assert_close(m.predict_proba(row), expected)  # float32, C order: the fast path
    assert_close(m.predict_proba(row.astype(np.float64)), expected)  # converted first
    assert_close(m.predict_proba(np.asfortranarray(X[:5])), model.predict_proba(X[:5]))
    assert_close(m.predict_proba(X[:5].tolist()), model.predict_proba(X[:5]))
    bad = row.copy()
    bad[0, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):  # LogisticRegression refuses NaN, on the fast path too
        m.predict_proba(bad)
    assert m.predict_proba(bad, check_finite=False).shape == (1, 2)
    with pytest.raises(InputError, match="features"):
        m.predict_proba(np.zeros((1, 5), np.float32))
    with pytest.raises(InputError, match="0 rows"):
        m.predict_proba(np.zeros((0, 6), np.float32))


def test_import_mlejax_imports_no_jax(tmp_path):
    code = ("import sys, mlejax; before = 'jax' in sys.modules; mlejax.load_model; "
            "import json; print(json.dumps([before, 'jax' in sys.modules, 'sklearn' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, True, False]


def test_checked_shapes_are_cached_by_content(logreg, tmp_path):
    """The load-time shape trace runs once per content: a new Program of the same file reads the entry instead."""
    model, X = logreg
    m = roundtrip(model, X, tmp_path)
    shapes = m.program.check_shapes()
    name = m.program._shapes_entry()
    if read_entry(name) is None:
        pytest.skip("the persistent compilation cache is off in this run")
    again = mle.load_model(tmp_path / "model.mle")
    assert again.program._cached_shapes() == shapes == again.program._abstract_shapes(again.program._row_budget)
    other = mle.load_model(tmp_path / "model.mle", tree_strategy="traversal")
    assert other.program._shapes_entry() != name  # options are part of the key


def test_broken_shapes_entry_is_traced_again(logreg, tmp_path):
    from mlejax.lowering.cache import write_entry

    model, X = logreg
    m = roundtrip(model, X, tmp_path)
    name = m.program._shapes_entry()
    write_entry(name, b"{not json")
    fresh = mle.load_model(tmp_path / "model.mle")
    assert fresh.program._cached_shapes() is None
    assert_close(fresh.predict_proba(X[:3]), model.predict_proba(X[:3]))  # traced and checked again


def test_trust_settings_follow_the_environment_and_the_file(tmp_path, monkeypatch):
    config = tmp_path / "security.json"
    monkeypatch.setenv("MLEJAX_SECURITY_CONFIG", str(config))
    monkeypatch.delenv("MLEJAX_REQUIRE_SIGNATURE", raising=False)
    monkeypatch.delenv("MLEJAX_TRUSTED_KEYS", raising=False)
    assert trust_settings().require_signature is False
    monkeypatch.setenv("MLEJAX_REQUIRE_SIGNATURE", "1")
    assert trust_settings().require_signature is True
    monkeypatch.delenv("MLEJAX_REQUIRE_SIGNATURE")
    config.write_text(json.dumps({"require_signature": True}))
    assert trust_settings().require_signature is True
    config.write_text(json.dumps({"require_signature": False, "trusted_keys": ["k.pem"]}))
    assert trust_settings().trusted_keys == ("k.pem",)
    config.write_text("{broken")
    with pytest.raises(mle.MLESecurityError):
        trust_settings()


@pytest.mark.parametrize("indptr", [[0, True, 2], [0, 3, 2], [0, 1.0], [1, 2], [0, 2**31], [0, 2**70, 3], [0]])
def test_iteration_indptr_is_checked(indptr):
    graph = Graph.from_dict({"inputs": [{"name": "X", "dtype": "float32", "shape": [None, 2], "feature_names": None}], "nodes": [], "outputs": {"output": "X"}}, set())
    with pytest.raises(MLEFormatError, match="iterations"):
        validate_iterations({"indptr": indptr, "default": [0, 0], "open_end": "last", "nodes": ["x"]}, graph)


def test_program_of_a_plain_tensor_map_still_runs(logreg, tmp_path):
    """Program takes plain dicts of arrays too (no TensorMap): pieces and the fast path do not depend on one."""
    model, X = logreg
    m = roundtrip(model, X, tmp_path)
    prog = Program(m.graph, {k: np.asarray(m._file.tensors[k]) for k in m._file.tensors}, options={"persistent_cache": False})
    out = prog.run(["probabilities"], [np.ascontiguousarray(X[:5_000])])[0]
    assert_close(out, model.predict_proba(X[:5_000]))


def test_derived_tables_are_aligned_for_in_place_use(tmp_path):
    """Prepared (derived) tensors are 64-byte aligned like the mapped ones, so JAX's CPU client can use them in place."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 5)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=5, max_depth=6, random_state=0).fit(X, y)
    m = roundtrip(forest, X, tmp_path)
    assert_close(m.predict_proba(X[:9]), forest.predict_proba(X[:9]))
    derived = {k: v for k, v in m.program._host_tensors.items() if "/" in k}
    assert derived and all(v.ctypes.data % 64 == 0 for v in derived.values())
