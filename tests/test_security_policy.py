"""Access policy at load, no code execution on the load path, decompression bombs."""

from __future__ import annotations

import builtins
import datetime as dt
import importlib
import marshal
import os
import pickle
import socket
import subprocess
import tracemalloc

import numpy as np
import pytest
import zstandard
from sklearn.linear_model import LinearRegression

import mlejax as mle
from mlejax import MLEFormatError, MLESecurityError, SecurityUtils
from mlejax.format import read_mle, write_mle
from mlejax.format.policy import check_policy, make_policy

from mle_bytes import DATA, META, build, sections_of

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 3)).astype(np.float32)
    return X, LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5]) + 0.25)


@pytest.fixture(autouse=True)
def no_local_trust_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("MLEJAX_SECURITY_CONFIG", str(tmp_path / "no-config.json"))
    monkeypatch.delenv("MLEJAX_REQUIRE_SIGNATURE", raising=False)
    monkeypatch.delenv("MLEJAX_TRUSTED_KEYS", raising=False)


def _export(linear, path, policy):
    mle.export_model(linear[1], path, policy=policy)
    return path


@pytest.mark.parametrize(
    "policy, match",
    [
        ({"expires": NOW - DAY}, "the model expired at"),
        ({"expires": NOW - dt.timedelta(seconds=1)}, "expired"),
        ({"not_before": NOW + DAY}, "forbids use before"),
        ({"not_before": NOW - 2 * DAY, "expires": NOW - DAY}, "expired"),
        ({"allowed_hosts": ["definitely-not-this-host-*"]}, "does not allow host"),
        ({"min_runtime_version": "99.0"}, "requires mlejax 99.0 to any"),
        ({"max_runtime_version": "0.0.1"}, "requires mlejax any to 0.0.1"),
    ],
)
def test_policy_refuses(linear, tmp_path, policy, match):
    """Each refusal says what failed and what to do (never "malformed" for a well-formed policy)."""
    path = _export(linear, tmp_path / "m.mle", policy)
    with pytest.raises(MLESecurityError, match=match) as e:
        mle.load_model(path)
    assert "malformed" not in str(e.value)
    assert any(what in str(e.value) for what in ("get a", "wait until", "run it on an allowed host", "install a version"))


def test_policy_allows(linear, tmp_path):
    X, model = linear
    host = socket.gethostname()
    policy = {
        "not_before": NOW - DAY, "expires": (NOW + DAY).timestamp(),
        "allowed_hosts": ["other", host.upper()[:3] + "*"], "min_runtime_version": "0.1", "max_runtime_version": "999",
    }
    path = _export(linear, tmp_path / "m.mle", policy)
    m = mle.load_model(path)
    assert m.metadata["policy"]["expires"].endswith("+00:00")
    np.testing.assert_allclose(m.predict(X), model.predict(X), rtol=1e-5, atol=1e-5)


def test_check_policy_directly():
    policy = make_policy(not_before="2030-01-01T00:00:00+01:00", expires=dt.datetime(2031, 1, 1, tzinfo=UTC), allowed_hosts=["a.example.com"])
    assert policy["not_before"] == "2029-12-31T23:00:00+00:00"
    ok = dict(runtime_version="0.1.0", hostname="A.example.com")
    check_policy(policy, now=dt.datetime(2030, 6, 1, tzinfo=UTC), **ok)
    with pytest.raises(MLESecurityError, match="before"):
        check_policy(policy, now=dt.datetime(2029, 12, 31, 22, 59, tzinfo=UTC), **ok)
    with pytest.raises(MLESecurityError, match="expired"):
        check_policy(policy, now=dt.datetime(2031, 1, 1, tzinfo=UTC), **ok)
    with pytest.raises(MLESecurityError, match="host 'b.example.com'"):
        check_policy(policy, now=dt.datetime(2030, 6, 1, tzinfo=UTC), runtime_version="0.1.0", hostname="b.example.com")
    messages = {
        "forbids use before 2029-12-31T23:00:00+00:00 (now 2029-12-31T22:59:00+00:00)": dict(now=dt.datetime(2029, 12, 31, 22, 59, tzinfo=UTC), **ok),
        "expired at 2031-01-01T00:00:00+00:00 (now 2031-01-01T00:00:00+00:00)": dict(now=dt.datetime(2031, 1, 1, tzinfo=UTC), **ok),
        "does not allow host 'b.example.com' (allowed: ['a.example.com'])": dict(now=dt.datetime(2030, 6, 1, tzinfo=UTC), runtime_version="0.1.0", hostname="b.example.com"),
    }
    for expected, kw in messages.items():
        with pytest.raises(MLESecurityError) as e:
            check_policy(policy, **kw)
        assert expected in str(e.value) and "malformed" not in str(e.value)
    with pytest.raises(MLESecurityError, match=r"requires mlejax 0\.2 to 0\.3, this is 0\.1\.0; install a version in that range") as e:
        check_policy({"min_runtime_version": "0.2", "max_runtime_version": "0.3"}, runtime_version="0.1.0")
    assert "malformed" not in str(e.value)
    with pytest.raises(ValueError, match="no time zone"):
        make_policy(expires=dt.datetime(2030, 1, 1))
    with pytest.raises(TypeError, match="list of hostname patterns"):
        make_policy(allowed_hosts="host")
    with pytest.raises(ValueError, match="version string"):
        make_policy(min_runtime_version="latest")


@pytest.mark.parametrize(
    "policy", [{"expires": "soon"}, {"expires": 1e300}, {"allowed_hosts": "x"}, {"unknown": 1}, ["expires"], {"min_runtime_version": 2}]
)
def test_malformed_policy_fails_closed(policy):
    with pytest.raises(MLESecurityError, match="malformed"):
        check_policy(policy, runtime_version="0.1.0")


def test_policy_is_protected_only_by_the_signature(linear, tmp_path):
    """Editing the policy of a signed file breaks verification; unsigned, the policy is advisory."""
    public, private = SecurityUtils.generate_keypair()
    path = _export(linear, tmp_path / "m.mle", {"expires": NOW - DAY})
    SecurityUtils.sign_model(path, private)
    import msgpack

    secs = sections_of(path.read_bytes())
    meta = next(s for s in secs if s[0] == META)
    edited = msgpack.unpackb(meta[2])
    del edited["policy"]
    meta[2] = msgpack.packb(edited, use_bin_type=True)
    meta[3] = len(meta[2])
    forged = tmp_path / "forged.mle"
    forged.write_bytes(build(secs, flags=1))
    with pytest.raises(MLESecurityError, match="modified after it was signed"):
        mle.load_model(forged, public_key=public)
    mle.load_model(forged)  # without verification the edit goes unnoticed: the policy is advisory
    with pytest.raises(MLESecurityError, match="expired"):
        mle.load_model(path, public_key=public)


@pytest.mark.parametrize("source", ["sklearn.Thing", ["a", "b"], 7, None, {"estimator": None}, {"version": 1}])
def test_odd_metadata_source_still_describes_the_model(linear, tmp_path, source):
    """A crafted file whose metadata.source is not a map (or has no estimator) loads, reprs and names methods."""
    import msgpack

    X, model = linear
    path = tmp_path / "m.mle"
    mle.export_model(model, path)
    secs = sections_of(path.read_bytes())
    meta = next(s for s in secs if s[0] == META)
    edited = msgpack.unpackb(meta[2])
    edited["source"] = source
    meta[2] = msgpack.packb(edited, use_bin_type=True)
    meta[3] = len(meta[2])
    path.write_bytes(build(secs))
    m = mle.load_model(path)
    assert repr(m).startswith("<mlejax.Model of an unknown model: methods ['predict']")
    with pytest.raises(AttributeError, match="exported from an unknown model.*has no predict_proba"):
        m.predict_proba(X)
    np.testing.assert_allclose(m.predict(X), model.predict(X), rtol=1e-5, atol=1e-5)
    from mlejax.cli import inspect_main

    assert inspect_main([str(path)]) == 0


def test_callable_in_metadata_never_runs(linear, tmp_path, monkeypatch):
    """A file naming Python callables (as pickle's __reduce__ would) is plain data to mlejax."""
    X, model = linear
    path = tmp_path / "m.mle"
    mle.export_model(model, path, metadata={
        "loader": "os.system", "args": ["touch " + str(tmp_path / "pwned")],
        "__reduce__": ["builtins.eval", ["__import__('os').system('touch pwned')"]],
        "__class__": "subprocess.Popen", "py/object": "os.system", "hook": "mlejax.export.export_model",
    })
    calls: list[str] = []

    def trap(name):
        def f(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called during load")
        return f

    for mod, name in [(os, "system"), (subprocess, "Popen"), (pickle, "loads"), (pickle, "load"), (marshal, "loads"),
                      (builtins, "eval"), (builtins, "exec"), (builtins, "compile")]:
        monkeypatch.setattr(mod, name, trap(f"{mod.__name__}.{name}"))
    real_import_module = importlib.import_module
    imported: list[str] = []

    def recording_import_module(name, *args, **kwargs):
        imported.append(name)
        return real_import_module(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", recording_import_module)
    m = mle.load_model(path)
    np.testing.assert_allclose(m.predict(X), model.predict(X), rtol=1e-5, atol=1e-5)
    monkeypatch.undo()
    assert calls == [] and not (tmp_path / "pwned").exists()
    assert m.metadata["user"]["loader"] == "os.system"  # kept as a string, never resolved
    assert all(name.startswith("mlejax.lowering.ops_") for name in imported), imported


def _bomb_file(tmp_path, raw_length: int, frame: bytes) -> bytes:
    write_mle(tmp_path / "z.mle", metadata={}, graph={}, tensors={"w": np.zeros(4, np.float32)}, compression="zstd")
    secs = sections_of((tmp_path / "z.mle").read_bytes())
    data = next(s for s in secs if s[0] == DATA)
    data[2], data[3] = frame, raw_length
    return build(secs)


def test_decompression_bombs_refused_before_allocation(tmp_path, linear):
    frame = zstandard.ZstdCompressor(level=1).compress(bytes(64 << 20))  # 64 MiB of zeros in a few KiB
    assert len(frame) < 64 << 10
    declared = _bomb_file(tmp_path, 64 << 20, frame)
    lying = _bomb_file(tmp_path, 100, frame)
    tracemalloc.start()
    try:
        with pytest.raises(MLEFormatError, match="over max_decompressed_bytes=1048576"):
            read_mle(declared, max_decompressed_bytes=1 << 20)
        with pytest.raises(MLEFormatError, match="declares 67108864 bytes, section table says 100"):
            read_mle(lying)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    (tmp_path / "bomb.mle").write_bytes(_bomb_file(tmp_path, 5 << 30, frame))
    with pytest.raises(MLEFormatError, match="over max_decompressed_bytes=4294967296"):
        mle.load_model(tmp_path / "bomb.mle")  # the default limit is 4 GiB
    path = tmp_path / "m.mle"
    mle.export_model(linear[1], path, compression="zstd")
    with pytest.raises(MLEFormatError, match="max_decompressed_bytes=100"):
        mle.load_model(path, max_decompressed_bytes=100)
    mle.load_model(path, max_decompressed_bytes=1 << 20)
