"""The persistent compilation cache: encrypted models never reach it; a replaced entry is refused.

Each scenario runs in a fresh process with ``MLEJAX_CACHE_DIR`` set to a
temporary directory (JAX configures its cache once per process), and the
test then reads or tampers with what that process left on disk. Cache
entries are zstd-compressed serialized executables; they are searched
decompressed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zstandard
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

import mlejax as mle
from mlejax import MLEError, SecurityUtils
from mlejax.format import read_mle

#: Runs the steps given as JSON: {"path", "key" (hex or null), "method", "rows"}; prints one JSON
#: result per step: the cache files it added, how many compilations looked the cache up (JAX's
#: monitoring event), and the output or the error (class, MLEError or not, message).
_RUNNER = textwrap.dedent(
    """
    import json, os, sys
    import jax, numpy as np, mlejax as mle
    cache = os.environ["MLEJAX_CACHE_DIR"]
    lookups = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: lookups.append(event) if event == "/jax/compilation_cache/compile_requests_use_cache" else None)
    def files():  # JAX's entries (mlejax's own, "mlejax-*", hold checked shapes, no program)
        return {f for f in os.listdir(cache) if not f.startswith("mlejax-")} if os.path.isdir(cache) else set()
    for step in json.loads(sys.argv[1]):
        before = files()
        lookups.clear()
        result = {}
        try:
            key = bytes.fromhex(step["key"]) if step.get("key") else None
            m = mle.load_model(step["path"], key=key)
            X = np.random.default_rng(7).standard_normal((step["rows"], m.n_features_in_)).astype(np.float32)
            result["output"] = np.asarray(getattr(m, step["method"])(X), np.float64).tolist()
        except Exception as e:
            result["error"] = [type(e).__name__, isinstance(e, mle.MLEError), str(e)]
        result["added"] = sorted(files() - before)
        result["lookups"] = len(lookups)
        print(json.dumps(result))
    """
)


def _run(cache: Path, *steps: dict) -> list[dict]:
    env = dict(os.environ, MLEJAX_CACHE_DIR=str(cache), MLEJAX_COMPILATION_CACHE="1")
    out = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(list(steps))], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.strip().splitlines()[-len(steps):]]


def _entries(cache: Path) -> list[bytes]:
    """The decompressed content of every cache entry."""
    blobs = []
    for p in cache.iterdir():
        raw = p.read_bytes()
        try:
            raw = zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)
        except zstandard.ZstdError:
            pass  # not compressed (an access-time file, or a JAX built without zstd)
        blobs.append(raw)
    return blobs


def _gbr(offset: float, seed: int) -> GradientBoostingRegressor:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((200, 4)).astype(np.float32)
    return GradientBoostingRegressor(n_estimators=5, max_depth=2, random_state=seed).fit(X, 3 * X[:, 0] + offset)


def _distinctive(path: Path) -> dict[str, bytes]:
    """Byte patterns of a model's values: its float32 base score, and thresholds and leaf values other than integers."""
    f = read_mle(path)
    (node,) = [n for n in f.graph["nodes"] if n["op"] == "TreeEnsemble"]
    patterns = {"base": np.float32(node["attrs"]["base"][0]).tobytes()}
    for name, values in f.tensors.items():
        if values.dtype == np.float32:
            patterns.update({f"{name}[{i}]": v.tobytes() for i, v in enumerate(values.ravel()) if v != np.round(v)})
    return patterns


def test_encrypted_model_values_never_reach_the_cache(tmp_path):
    """Decrypted values stay in memory: the encrypted model's programs are neither written to nor read from the cache.

    Item 1 of issue 14 §3: compiled programs bake model values (GradientBoosting's base score, tree
    layout tables) in as constants, so they must not reach the on-disk cache.
    """
    key = SecurityUtils.generate_key()
    secret, other = _gbr(4321.0625, 0), _gbr(-765.4375, 1)
    mle.export_model(secret, tmp_path / "secret.mle")
    mle.export_model(secret, tmp_path / "secret.enc.mle", encrypt_key=key)
    mle.export_model(other, tmp_path / "other.mle")
    assert read_mle(tmp_path / "secret.enc.mle", key=key).encrypted

    # unencrypted, the same model's values do land in the cache: the search below can find them
    (result,) = _run(tmp_path / "plain-cache", {"path": str(tmp_path / "secret.mle"), "method": "predict", "rows": 8})
    assert "error" not in result and result["added"], result
    plain = _entries(tmp_path / "plain-cache")
    patterns = {k: p for k, p in _distinctive(tmp_path / "secret.mle").items() if any(p in e for e in plain)}
    assert "base" in patterns, "the base score is no longer baked into the program; pick another distinctive value"

    enc = {"path": str(tmp_path / "secret.enc.mle"), "key": key.hex(), "method": "predict"}
    results = _run(tmp_path / "cache", {**enc, "rows": 8}, {"path": str(tmp_path / "other.mle"), "method": "predict", "rows": 8},
                   {**enc, "rows": 100})
    assert all("error" not in r for r in results), results
    X = np.random.default_rng(7).standard_normal((100, 4)).astype(np.float32)
    np.testing.assert_allclose(results[2]["output"], secret.predict(X), rtol=1e-5)
    # nothing written or even looked up for the encrypted model; the cache is on again for an unencrypted one
    assert [(r["added"] == [], r["lookups"] == 0) for r in results] == [(True, True), (False, False), (True, True)], results
    found = [k for k, p in patterns.items() for e in _entries(tmp_path / "cache") if p in e]
    assert not found, f"values of the encrypted model found in the compilation cache: {found}"


@pytest.fixture(scope="module")
def classifiers():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    a = GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0).fit(X, y)
    b = GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0).fit(X, 1 - y)
    return a, b


def test_replaced_cache_entry_is_refused(tmp_path, classifiers):
    """A cache entry replaced by another output's or another model's program raises MLEError, never runs silently."""
    a, b = classifiers
    mle.export_model(a, tmp_path / "a.mle")
    mle.export_model(b, tmp_path / "b.mle")
    cache = tmp_path / "cache"
    step = {"path": str(tmp_path / "a.mle"), "method": "predict_proba", "rows": 8}
    proba, decision, other = _run(cache, step, {**step, "method": "decision_function"},
                                  {**step, "path": str(tmp_path / "b.mle")})
    (proba_entry,), (decision_entry,), (other_entry,) = proba["added"], decision["added"], other["added"]
    assert len({proba_entry, decision_entry, other_entry}) == 3
    assert proba_entry.startswith("jit_mlejax_") and proba_entry.split("-")[0] != other_entry.split("-")[0]
    original = (cache / proba_entry).read_bytes()
    assert _run(cache, step)[0]["output"] == proba["output"]  # a cache hit gives the same result

    # the decision program reads other stored tensors (JAX cannot wrap it); model b's is named after b
    for donor, detail in ((decision_entry, "JAX could not use it"), (other_entry, "with outputs [float32[8, 2]]")):
        shutil.copyfile(cache / donor, cache / proba_entry)
        (result,) = _run(cache, step)
        assert "output" not in result, f"a replaced entry ({donor}) ran: {result}"
        name, is_mle, message = result["error"]
        assert is_mle, result
        assert "is not the program that was compiled" in message and "persistent compilation cache" in message
        assert detail in message and "delete that directory" in message, message
    (cache / proba_entry).write_bytes(original)
    assert _run(cache, step)[0]["output"] == proba["output"]


_SAME_NAME = textwrap.dedent(
    """
    import sys, jax, jax.numpy as jnp, numpy as np
    from mlejax.lowering.cache import compile_lowered, enable_persistent_cache
    from mlejax import MLEError
    enable_persistent_cache()
    def f(x):
        return jnp.sum(x, axis=1) if sys.argv[1] == "sum" else x * 2
    f.__name__ = "mlejax_same"
    try:
        compiled = compile_lowered(jax.jit(f).lower(jax.ShapeDtypeStruct((4, 3), np.float32)), f.__name__)
        print("ok", np.asarray(compiled(np.ones((4, 3), np.float32))).shape)
    except MLEError as e:
        print("MLEError", e)
    """
)


def test_output_signature_is_checked(tmp_path):
    """Two programs of the same name: the executable's output shapes must match what the caller compiled."""
    env = dict(os.environ, MLEJAX_CACHE_DIR=str(tmp_path), MLEJAX_COMPILATION_CACHE="1")

    def run(kind: str) -> str:
        out = subprocess.run([sys.executable, "-c", _SAME_NAME, kind], capture_output=True, text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout.strip().splitlines()[-1]

    assert run("sum") == "ok (4,)"
    (summed,) = os.listdir(tmp_path)
    assert run("double") == "ok (4, 3)"
    (doubled,) = set(os.listdir(tmp_path)) - {summed}
    shutil.copyfile(tmp_path / doubled, tmp_path / summed)
    message = run("sum")
    assert message.startswith("MLEError") and "with outputs [float32[4, 3]]" in message and "float32[4]" in message


def test_checked_compile_in_process():
    """compile_lowered returns a working executable; a wrong name is refused (MLEError, not a JAX error)."""
    import jax
    import jax.numpy as jnp

    from mlejax.lowering.cache import compile_lowered

    def f(x):
        return jnp.cumsum(x, axis=1)

    f.__name__ = "mlejax_checked"
    lowered = jax.jit(f).lower(jax.ShapeDtypeStruct((2, 3), np.float32))
    compiled = compile_lowered(lowered, "mlejax_checked", persistent=False)
    np.testing.assert_array_equal(np.asarray(compiled(np.ones((2, 3), np.float32))), [[1, 2, 3], [1, 2, 3]])
    with pytest.raises(MLEError, match="'jit_mlejax_checked' with outputs \\[float32\\[2, 3\\]\\], expected one named after 'mlejax_other'"):
        compile_lowered(lowered, "mlejax_other")
