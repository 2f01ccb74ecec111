"""Ed25519 signing: every tamper case is refused with MLESecurityError; keys as PEM and raw; CLI; local policy."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlejax as mle
from mlejax import MLESecurityError, SecurityUtils
from mlejax.cli_security import keygen_main, sign_main, verify_main
from mlejax.format import read_mle
from mlejax.format.signing import load_private_key

from mle_bytes import ENTRY, SIGNATURE, build, fix_checksums, flags_of, sections_of


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4)).astype(np.float32)
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    return X, LogisticRegression().fit(X, y)


@pytest.fixture(scope="module")
def keys():
    return SecurityUtils.generate_keypair()


@pytest.fixture(scope="module")
def files(tmp_path_factory, data, keys):
    """An unsigned and a signed export of the same model (the signed one also zstd-compressed)."""
    X, model = data
    d = tmp_path_factory.mktemp("signing")
    mle.export_model(model, d / "plain.mle")
    mle.export_model(model, d / "signed.mle", compression="zstd")
    SecurityUtils.sign_model(d / "signed.mle", keys[1])
    return d


def sections_of_offsets(raw: bytes) -> list[int]:
    """The offset of each section, in table order."""
    count = int.from_bytes(raw[16:20], "little")
    return [ENTRY.unpack_from(raw, 64 + 32 * i)[3] for i in range(count)]


def _load(raw_or_path, tmp_path, public_key, **kw):
    path = raw_or_path
    if isinstance(raw_or_path, (bytes, bytearray)):
        path = tmp_path / "t.mle"
        path.write_bytes(bytes(raw_or_path))
    return mle.load_model(path, verify_signature=True, public_key=public_key, **kw)


def test_signed_round_trip(files, data, keys, tmp_path):
    X, model = data
    public, private = keys
    m = _load(files / "signed.mle", tmp_path, public)
    np.testing.assert_array_equal(m.predict(X), model.predict(X))
    assert SecurityUtils.verify_model(files / "signed.mle", public) == {"valid": True, "fingerprint": SecurityUtils.fingerprint(public)}
    assert read_mle(files / "signed.mle", public_key=public).signer == public
    mle.load_model(files / "signed.mle")  # signed files load without verification too
    assert flags_of((files / "signed.mle").read_bytes()) == 1


def test_unsigned_refused(files, keys, tmp_path):
    with pytest.raises(MLESecurityError, match="not signed"):
        _load(files / "plain.mle", tmp_path, keys[0])
    with pytest.raises(MLESecurityError, match="not signed"):
        SecurityUtils.verify_model(files / "plain.mle", keys[0])
    with pytest.raises(MLESecurityError, match="no public key"):
        mle.load_model(files / "signed.mle", verify_signature=True)


def test_wrong_public_key(files, tmp_path):
    other, _ = SecurityUtils.generate_keypair()
    with pytest.raises(MLESecurityError, match="not a trusted key"):
        _load(files / "signed.mle", tmp_path, other)
    with pytest.raises(MLESecurityError):
        SecurityUtils.verify_model(files / "signed.mle", other)


def _region_offsets(raw: bytes) -> dict[str, list[int]]:
    """A few byte positions inside every region of the file: header, table, each section, padding."""
    count = int.from_bytes(raw[16:20], "little")
    regions = {"header": [0, 8, 12, 16, 32, 59, 63], "table": [64 + 32 * i + j for i in range(count) for j in (0, 2, 4, 8, 16, 24)]}
    end = 64 + 32 * count
    names = {1: "metadata", 2: "graph", 3: "tensor_index", 4: "tensor_data", 5: "signature", 6: "encryption"}
    for i in range(count):
        kind, _, _, off, length, _ = ENTRY.unpack_from(raw, 64 + 32 * i)
        if off > end:
            regions.setdefault("padding", []).append(end)
        regions[names[kind]] = sorted({off, off + length // 2, off + length - 1})
        end = off + length
    return regions


def test_bit_flip_in_every_section(files, keys, tmp_path):
    raw = (files / "signed.mle").read_bytes()
    regions = _region_offsets(raw)
    assert {"header", "table", "metadata", "graph", "tensor_index", "tensor_data", "signature", "padding"} <= set(regions)
    for region, offsets in regions.items():
        for at in offsets:
            for bit in (0x01, 0x80):
                mutated = bytearray(raw)
                mutated[at] ^= bit
                with pytest.raises(MLESecurityError):
                    _load(mutated, tmp_path, keys[0])
                # with checksums recomputed the signature is still what catches it
                fixed = fix_checksums(bytes(mutated))
                if fixed != raw:  # (a flip inside a checksum field is undone by recomputing it)
                    with pytest.raises(MLESecurityError):
                        _load(fixed, tmp_path, keys[0])


def test_truncation_and_appending(files, keys, tmp_path):
    raw = (files / "signed.mle").read_bytes()
    for n in (0, 10, 64, 200, len(raw) // 2, len(raw) - 104, len(raw) - 1):
        with pytest.raises(MLESecurityError):
            _load(raw[:n], tmp_path, keys[0])
    with pytest.raises(MLESecurityError):
        _load(raw + b"\0" * 64, tmp_path, keys[0])
    secs = sections_of(raw)
    extra = [4, 0, b"\1" * 8, 8]  # a second tensor_data section, after or before the signature
    for layout in (secs + [extra], secs[:-1] + [extra, secs[-1]]):
        with pytest.raises(MLESecurityError):
            _load(build(layout, flags=flags_of(raw)), tmp_path, keys[0])


def test_reordered_and_stripped(files, keys, tmp_path):
    raw = (files / "signed.mle").read_bytes()
    secs = sections_of(raw)
    assert build(secs, flags=flags_of(raw)) == raw
    reordered = build([secs[1], secs[0], *secs[2:]], flags=flags_of(raw))
    with pytest.raises(MLESecurityError, match="modified after it was signed"):
        _load(reordered, tmp_path, keys[0])
    stripped = build(secs[:-1])
    (tmp_path / "stripped.mle").write_bytes(stripped)
    mle.load_model(tmp_path / "stripped.mle")  # a valid unsigned file...
    with pytest.raises(MLESecurityError, match="not signed"):  # ...that verification refuses
        _load(stripped, tmp_path, keys[0])


def test_swapped_signature(files, data, keys, tmp_path):
    """A genuine signature by the same key, taken from another file, does not transfer."""
    X, model = data
    other = tmp_path / "other.mle"
    mle.export_model(model, other, compression="zstd", metadata={"note": "another file"})
    SecurityUtils.sign_model(other, keys[1])
    raw = (files / "signed.mle").read_bytes()
    donor = sections_of(other.read_bytes())[-1]
    secs = sections_of(raw)
    assert donor[0] == SIGNATURE and donor[2] != secs[-1][2]
    with pytest.raises(MLESecurityError, match="modified after it was signed"):
        _load(build(secs[:-1] + [donor], flags=flags_of(raw)), tmp_path, keys[0])


def test_resign_replaces_signature_and_upgrades_v1(files, keys, tmp_path):
    path = tmp_path / "m.mle"
    v1 = build(sections_of((files / "plain.mle").read_bytes()), version=1)
    path.write_bytes(v1)
    first_public, first_private = SecurityUtils.generate_keypair()
    SecurityUtils.sign_model(path, first_private)
    assert read_mle(path, public_key=first_public).format_version == 2
    SecurityUtils.sign_model(path, keys[1])
    assert len(sections_of(path.read_bytes())) == 5  # one signature section, replaced
    _load(path, tmp_path, keys[0])
    with pytest.raises(MLESecurityError):
        _load(path, tmp_path, first_public)
    _load(path, tmp_path, [first_public, keys[0]])  # any of several trusted keys


def test_signer_field_is_signed(files, keys, tmp_path):
    """Rewriting the 32 signer bytes (or downgrading the algorithm to 1) breaks the signature."""
    public, _ = keys
    raw = (files / "signed.mle").read_bytes()
    at = sections_of_offsets(raw)[-1]
    assert int.from_bytes(raw[at : at + 4], "little") == 2
    other, _ = SecurityUtils.generate_keypair()
    for forged_signer in (bytes(32), other, bytes(b ^ 1 for b in raw[at + 8 : at + 40])):
        forged = bytearray(raw)
        forged[at + 8 : at + 40] = forged_signer
        with pytest.raises(MLESecurityError, match="modified after it was signed|not a trusted key"):
            _load(forged, tmp_path, public)
        (tmp_path / "forged.mle").write_bytes(forged)
        with pytest.raises(MLESecurityError):
            SecurityUtils.verify_model(tmp_path / "forged.mle", public)
    downgraded = bytearray(raw)
    downgraded[at : at + 4] = (1).to_bytes(4, "little")
    with pytest.raises(MLESecurityError, match="modified after it was signed"):
        _load(downgraded, tmp_path, public)


def test_algorithm_1_files_still_verify(files, data, keys, tmp_path):
    """Files signed before the signer field was covered (algorithm 1) verify; their signer field is not signed."""
    import hashlib

    X, model = data
    public, private = keys
    raw = (files / "signed.mle").read_bytes()
    at = sections_of_offsets(raw)[-1]
    legacy = bytearray(raw)
    message = b"mlejax .mle signature v1\x00" + hashlib.sha512(raw[:at]).digest()
    legacy[at : at + 104] = (1).to_bytes(4, "little") + bytes(4) + public + load_private_key(private).sign(message)
    np.testing.assert_array_equal(_load(legacy, tmp_path, public).predict(X), model.predict(X))
    legacy[at + 8 : at + 40] = bytes(32)  # the legacy signer field only names a key
    _load(legacy, tmp_path, public)
    legacy[at + 40] ^= 1
    with pytest.raises(MLESecurityError):
        _load(legacy, tmp_path, public)


def test_inspect_reports_verification(files, keys):
    """inspect_model says "signed (verified)" only after checking the signature against a trusted key."""
    public, _ = keys
    assert mle.inspect_model(files / "plain.mle")["signature"] == "unsigned"
    info = mle.inspect_model(files / "signed.mle")
    assert info["signature"] == "signed (not verified)" and info["signer"] is None and "signed" not in info
    assert any("not verified here" in r for r in info["recommendations"])
    info = mle.inspect_model(files / "signed.mle", public_key=public)
    assert info["signature"] == "signed (verified)" and info["signer"] == SecurityUtils.fingerprint(public)
    with pytest.raises(MLESecurityError, match="not a trusted key"):
        mle.inspect_model(files / "signed.mle", public_key=SecurityUtils.generate_keypair()[0])
    with pytest.raises(MLESecurityError, match="not signed"):
        mle.inspect_model(files / "plain.mle", public_key=public)


def test_key_formats(files, keys, tmp_path):
    public, private = keys
    SecurityUtils.save_private_key(private, tmp_path / "k.pem")
    SecurityUtils.save_private_key(private, tmp_path / "k.enc.pem", password="hunter2")
    SecurityUtils.save_private_key(private, tmp_path / "k.raw", raw=True)
    SecurityUtils.save_public_key(public, tmp_path / "p.pem")
    SecurityUtils.save_public_key(public, tmp_path / "p.raw", raw=True)
    assert (tmp_path / "k.raw").read_bytes() == private and (tmp_path / "p.raw").read_bytes() == public
    assert (tmp_path / "k.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert b"ENCRYPTED" in (tmp_path / "k.enc.pem").read_bytes()
    if os.name == "posix":
        assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    pem_text = (tmp_path / "p.pem").read_text()
    for source in (tmp_path / "p.pem", str(tmp_path / "p.raw"), pem_text, public, SecurityUtils.load_public_key(public)):
        _load(files / "signed.mle", tmp_path, source)
    for source, pw in ((tmp_path / "k.pem", None), (tmp_path / "k.enc.pem", "hunter2"), (tmp_path / "k.raw", None)):
        out = tmp_path / "resigned.mle"
        SecurityUtils.sign_model(files / "plain.mle", SecurityUtils.load_private_key(source, pw), out)
        _load(out, tmp_path, public)
    with pytest.raises(MLESecurityError, match="private key"):
        SecurityUtils.load_private_key(tmp_path / "k.enc.pem", "wrong")
    with pytest.raises(MLESecurityError, match="cannot read"):
        SecurityUtils.load_public_key(str(tmp_path / "missing.pub"))
    with pytest.raises(MLESecurityError, match="not a usable Ed25519 public key"):
        SecurityUtils.load_public_key(b"\0" * 31)


def test_cli(files, tmp_path, capsys, monkeypatch):
    model = tmp_path / "m.mle"
    shutil.copy(files / "plain.mle", model)
    prefix = str(tmp_path / "publisher")
    assert keygen_main([prefix]) == 0
    assert keygen_main([prefix]) == 1  # refuses to overwrite
    assert sign_main([str(model), "--key", prefix + ".key"]) == 0
    assert verify_main([str(model), "--key", prefix + ".pub"]) == 0
    assert "OK" in capsys.readouterr().out
    mle.load_model(model, public_key=prefix + ".pub")
    other = str(tmp_path / "other")
    monkeypatch.setenv("KEYPW", "s3cret")
    assert keygen_main([other, "--password-env", "KEYPW"]) == 0
    assert verify_main([str(model), "--key", other + ".pub"]) == 1
    assert sign_main([str(model), "--key", other + ".key", "--password-env", "KEYPW", "-o", str(tmp_path / "o.mle")]) == 0
    assert verify_main([str(tmp_path / "o.mle"), "--key", prefix + ".pub", "--key", other + ".pub"]) == 0
    raw = bytearray(model.read_bytes())
    raw[300] ^= 1
    model.write_bytes(bytes(raw))
    assert verify_main([str(model), "--key", prefix + ".pub"]) == 1
    assert "mle-verify:" in capsys.readouterr().err


def test_local_policy_requires_signatures(files, keys, tmp_path, monkeypatch):
    public, _ = keys
    SecurityUtils.save_public_key(public, tmp_path / "trusted.pub")
    monkeypatch.setenv("MLEJAX_SECURITY_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.setenv("MLEJAX_REQUIRE_SIGNATURE", "1")
    with pytest.raises(MLESecurityError, match="no public key"):
        mle.load_model(files / "signed.mle")
    monkeypatch.setenv("MLEJAX_TRUSTED_KEYS", str(tmp_path / "trusted.pub"))
    mle.load_model(files / "signed.mle")
    with pytest.raises(MLESecurityError, match="not signed"):
        mle.load_model(files / "plain.mle")
    with pytest.raises(MLESecurityError, match="verify_signature=False is refused"):
        mle.load_model(files / "plain.mle", verify_signature=False)
    monkeypatch.delenv("MLEJAX_REQUIRE_SIGNATURE")
    monkeypatch.delenv("MLEJAX_TRUSTED_KEYS")
    mle.load_model(files / "plain.mle")
    config = tmp_path / "security.json"
    config.write_text('{"require_signature": true, "trusted_keys": ["%s"]}' % (tmp_path / "trusted.pub").as_posix())
    monkeypatch.setenv("MLEJAX_SECURITY_CONFIG", str(config))
    mle.load_model(files / "signed.mle")
    with pytest.raises(MLESecurityError, match="not signed"):
        mle.load_model(files / "plain.mle")
    config.write_text('{"require_signature": "yes"}')
    with pytest.raises(MLESecurityError, match="must be a bool"):
        mle.load_model(files / "plain.mle")
