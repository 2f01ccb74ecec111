"""AES-256-GCM encryption: round trips, chunking, wrong keys, and every way to move or alter ciphertext."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

import mlejax as mle
from mlejax import MLEFormatError, MLESecurityError, SecurityUtils
from mlejax.format import read_mle, write_mle
from mlejax.format.encryption import OVERHEAD, Encryption, encrypted_length

from mle_bytes import DATA, ENCRYPTION, GRAPH, INDEX, META, build, fix_checksums, flags_of, sections_of, set_entry

KEY = bytes(range(32))
METADATA = {"task": "secret-task-marker", "n": 3}
GRAPH_SECTION = {"inputs": [], "nodes": [], "outputs": {}}


def _tensors(n: int = 1000) -> dict[str, np.ndarray]:
    return {"w": np.arange(n, dtype=np.float32) * 1.25, "flags": np.array([1, 0, 1], np.bool_)}


def _write(path, encryption, *, compression=None, tensors=None) -> bytes:
    write_mle(path, metadata=METADATA, graph=GRAPH_SECTION, tensors=_tensors() if tensors is None else tensors,
              compression=compression, encryption=encryption)
    return path.read_bytes()


def _check(f, tensors=None) -> None:
    assert f.metadata == METADATA and f.graph == GRAPH_SECTION
    for name, arr in (_tensors() if tensors is None else tensors).items():
        np.testing.assert_array_equal(f.tensors[name], arr)
        assert not f.tensors[name].flags.writeable


@pytest.mark.parametrize("compression", [None, "zstd"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 4000, 1 << 22])
def test_round_trip_key(tmp_path, compression, chunk_size):
    raw = _write(tmp_path / "m.mle", Encryption.with_key(KEY, chunk_size=chunk_size), compression=compression)
    assert flags_of(raw) == 2
    f = read_mle(tmp_path / "m.mle", key=KEY)
    _check(f)
    assert f.encrypted and all(s.encrypted for s in f.sections if s.kind_id <= 4)
    assert not np.shares_memory(f.tensors["w"], f.buffer)  # decrypted into memory
    assert f.tensors["w"].__array_interface__["data"][0] % 64 == 0
    if compression is None:
        data = next(s for s in f.sections if s.kind == "tensor_data")
        assert data.length == encrypted_length(data.raw_length, chunk_size)


def test_round_trip_password(tmp_path):
    raw = _write(tmp_path / "m.mle", Encryption.with_password("correct horse", n=16))
    _check(read_mle(tmp_path / "m.mle", password="correct horse"))
    _check(read_mle(raw, password=b"correct horse"))


def test_chunk_boundaries(tmp_path):
    """Sections of exactly k chunks, one byte more or less, and empty ones all round-trip."""
    for n in (0, 1, 15, 16, 17, 32):
        tensors = {"b": np.arange(n, dtype=np.uint8)}
        _write(tmp_path / "m.mle", Encryption.with_key(KEY, chunk_size=16), tensors=tensors)
        _check(read_mle(tmp_path / "m.mle", key=KEY), tensors)
    _write(tmp_path / "e.mle", Encryption.with_key(KEY, chunk_size=16), tensors={})
    assert read_mle(tmp_path / "e.mle", key=KEY).tensors == {}


def test_no_plaintext_on_disk(tmp_path):
    raw = _write(tmp_path / "m.mle", Encryption.with_key(KEY))
    assert b"secret-task-marker" not in raw and b"flags" not in raw
    assert _tensors()["w"][100:110].tobytes() not in raw
    assert sorted(os.listdir(tmp_path)) == ["m.mle"]


def test_wrong_or_missing_key(tmp_path):
    _write(tmp_path / "k.mle", Encryption.with_key(KEY))
    _write(tmp_path / "p.mle", Encryption.with_password("pw", n=16))
    cases = [
        ("k.mle", {"key": bytes(32)}, "wrong key or password"),
        ("k.mle", {}, "encrypted: pass key="),
        ("k.mle", {"password": "pw"}, "encrypted with a raw key"),
        ("k.mle", {"key": KEY[:16]}, "32 raw bytes"),
        ("k.mle", {"key": "x" * 32}, "32 raw bytes"),
        ("p.mle", {"password": "PW"}, "wrong key or password"),
        ("p.mle", {"password": ""}, "wrong key or password"),
        ("p.mle", {"key": KEY}, "encrypted with a password"),
    ]
    for name, kw, match in cases:
        with pytest.raises(MLESecurityError, match=match):
            read_mle(tmp_path / name, **kw)
    _write(tmp_path / "plain.mle", None)
    with pytest.raises(MLESecurityError, match="not encrypted"):
        read_mle(tmp_path / "plain.mle", key=KEY)


def _encrypted_raw(tmp_path, chunk_size: int = 64, compression=None) -> bytes:
    return _write(tmp_path / "m.mle", Encryption.with_key(KEY, chunk_size=chunk_size), compression=compression)


def _read(raw: bytes):
    return read_mle(raw, key=KEY)


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_bit_flips_fail_authentication(tmp_path, compression):
    raw = _encrypted_raw(tmp_path, compression=compression)
    for kind, payload in [(s[0], s[2]) for s in sections_of(raw) if s[0] <= 4]:
        for at in sorted({0, 11, 12, len(payload) // 2, len(payload) - 17, len(payload) - 1}):
            secs = sections_of(raw)
            sec = next(s for s in secs if s[0] == kind)
            mutated = bytearray(sec[2])
            mutated[at] ^= 0x10
            sec[2] = bytes(mutated)
            with pytest.raises(MLESecurityError, match="authentication failed"):
                _read(build(secs, flags=flags_of(raw)))  # checksums fixed: only the cipher can tell
            flipped = bytearray(raw)
            flipped[raw.index(payload) + at] ^= 0x10
            with pytest.raises(MLEFormatError, match="checksum"):
                _read(bytes(flipped))  # checksums not fixed: the cheap check catches it first


def _chunks(payload: bytes, chunk_size: int) -> list[bytes]:
    step = chunk_size + OVERHEAD
    return [payload[i : i + step] for i in range(0, len(payload), step)]


def test_chunks_cannot_be_moved(tmp_path):
    raw = _encrypted_raw(tmp_path, chunk_size=64)
    secs = sections_of(raw)
    data = next(s for s in secs if s[0] == DATA)
    chunks = _chunks(data[2], 64)
    assert len(chunks) > 4
    variants = {
        "swap": [chunks[1], chunks[0], *chunks[2:]],
        "drop last": chunks[:-1],
        "drop first": chunks[1:],
        "repeat": [chunks[0], *chunks],
    }
    for name, new in variants.items():
        data[2] = b"".join(new)
        data[3] = len(data[2]) - OVERHEAD * len(new)  # keep the table consistent with the new length
        with pytest.raises((MLESecurityError, MLEFormatError)) as info:
            _read(build(secs, flags=flags_of(raw)))
        assert info.type is MLESecurityError or "tensor" in str(info.value), name


def test_sections_and_files_cannot_be_mixed(tmp_path):
    raw = _encrypted_raw(tmp_path)
    secs = sections_of(raw)
    by_kind = {s[0]: s for s in secs}
    # swap the graph and metadata ciphertexts (and their lengths)
    swapped = [list(s) for s in secs]
    m, g = next(s for s in swapped if s[0] == META), next(s for s in swapped if s[0] == GRAPH)
    m[2:], g[2:] = g[2:], m[2:]
    with pytest.raises(MLESecurityError, match="authentication failed"):
        _read(build(swapped, flags=flags_of(raw)))
    # a section from another file encrypted with the same key (same content, same length)
    other = sections_of(_write(tmp_path / "o.mle", Encryption.with_key(KEY, chunk_size=64)))
    for kind in (META, INDEX, DATA):
        mixed = [list(s) for s in secs]
        next(s for s in mixed if s[0] == kind)[2] = next(s for s in other if s[0] == kind)[2]
        with pytest.raises(MLESecurityError, match="authentication failed"):
            _read(build(mixed, flags=flags_of(raw)))
    # the other file's encryption section: its key check passes, but every chunk is bound to it
    mixed = [list(s) for s in secs]
    next(s for s in mixed if s[0] == ENCRYPTION)[2] = next(s for s in other if s[0] == ENCRYPTION)[2]
    with pytest.raises(MLESecurityError, match="authentication failed"):
        _read(build(mixed, flags=flags_of(raw)))
    assert by_kind[DATA][2] != next(s for s in other if s[0] == DATA)[2]  # fresh nonces every write


def test_table_fields_are_bound(tmp_path):
    raw = _encrypted_raw(tmp_path, compression="zstd")
    index = [s[0] for s in sections_of(raw)].index(DATA)
    entry = sections_of(raw)[index]
    with pytest.raises(MLESecurityError, match="authentication failed"):
        _read(set_entry(raw, index, raw_length=entry[3] + 1))  # lie about the decompressed size
    plain = _encrypted_raw(tmp_path)
    with pytest.raises(MLESecurityError, match="authentication failed"):
        _read(set_entry(plain, index, flags=3))  # claim zstd on an uncompressed section
    with pytest.raises(MLEFormatError, match="decrypts to"):
        _read(set_entry(plain, index, raw_length=entry[3] + 1))


def test_header_and_params_are_checked(tmp_path):
    raw = _encrypted_raw(tmp_path)
    secs = sections_of(raw)
    with pytest.raises(MLEFormatError, match="the file is encrypted but this section is not"):
        _read(build([[k, f & ~2, p, r] for k, f, p, r in secs], flags=flags_of(raw)))
    with pytest.raises(MLEFormatError, match="no encryption section"):
        _read(build([s for s in secs if s[0] != ENCRYPTION], flags=flags_of(raw)))
    import msgpack

    params = msgpack.unpackb(next(s for s in secs if s[0] == ENCRYPTION)[2])
    for change, match in [
        ({"chunk_size": 0}, "chunk_size must be"),
        ({"chunk_size": 2**40}, "chunk_size must be"),
        ({"cipher": "ROT13"}, "cipher 'ROT13' is not supported"),
        ({"kdf": {"name": "scrypt", "salt": b"s" * 16, "n": 2**30, "r": 8, "p": 1}}, "scrypt parameters"),
        ({"kdf": {"name": "scrypt", "salt": b"s" * 16, "n": 1000, "r": 8, "p": 1}}, "power of two"),
        ({"kdf": {"name": "pbkdf2"}}, "kdf must be"),
        ({"key_check": b"short"}, "key_check"),
    ]:
        bad = [list(s) for s in secs]
        payload = msgpack.packb({**params, **change}, use_bin_type=True)
        enc = next(s for s in bad if s[0] == ENCRYPTION)
        enc[2], enc[3] = payload, len(payload)
        with pytest.raises(MLEFormatError, match=match):
            _read(build(bad, flags=flags_of(raw)))
    wrong = [list(s) for s in secs]
    data = next(s for s in wrong if s[0] == DATA)
    data[2], data[3] = data[2][:20], 0
    with pytest.raises(MLEFormatError, match="cannot hold AES-GCM chunks"):
        _read(build(wrong, flags=flags_of(raw)))


def test_random_mutations_past_checksums(tmp_path):
    raw = _encrypted_raw(tmp_path, chunk_size=32, compression="zstd")
    rng = np.random.default_rng(7)
    for _ in range(300):
        mutated = bytearray(raw)
        for i in rng.integers(0, len(raw), size=rng.integers(1, 4)):
            mutated[i] ^= 1 << int(rng.integers(8))
        fixed = fix_checksums(bytes(mutated))
        if fixed == raw:
            continue
        with pytest.raises((MLESecurityError, MLEFormatError)):
            _read(fixed)


@pytest.fixture(scope="module")
def tree():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 5)).astype(np.float32)
    return X, DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, X[:, 0] > 0.2)


def test_export_and_load_encrypted_models(tmp_path, tree):
    X, model = tree
    key = SecurityUtils.generate_key()
    report = mle.export_model(model, tmp_path / "k.mle", sample_input=X[:32], encrypt_key=key, compression="zstd")
    assert report["encrypted"] and report["verification"]["predict"]["label_mismatches"] == 0
    m = mle.load_model(tmp_path / "k.mle", key=key)
    np.testing.assert_array_equal(m.predict(X), model.predict(X))
    with pytest.raises(MLESecurityError, match="wrong key"):
        mle.load_model(tmp_path / "k.mle", key=SecurityUtils.generate_key())
    mle.export_model(model, tmp_path / "p.mle", password="long passphrase")  # default scrypt cost
    np.testing.assert_array_equal(mle.load_model(tmp_path / "p.mle", password="long passphrase").predict(X), model.predict(X))
    with pytest.raises(MLESecurityError, match="wrong key or password"):
        mle.load_model(tmp_path / "p.mle", password="long passphrase!")
    with pytest.raises(ValueError, match="not both"):
        mle.export_model(model, tmp_path / "x.mle", encrypt_key=key, password="p")


def test_encrypt_existing_file_then_sign(tmp_path, tree):
    X, model = tree
    path = tmp_path / "m.mle"
    mle.export_model(model, path)
    key = SecurityUtils.generate_key()
    public, private = SecurityUtils.generate_keypair()
    SecurityUtils.encrypt_model(path, key=key)
    with pytest.raises(ValueError, match="already encrypted"):
        SecurityUtils.encrypt_model(path, key=key)
    SecurityUtils.sign_model(path, private)  # encrypt, then sign: the signature covers the ciphertext
    assert flags_of(path.read_bytes()) == 3
    m = mle.load_model(path, key=key, verify_signature=True, public_key=public)
    np.testing.assert_array_equal(m.predict(X), model.predict(X))
    assert SecurityUtils.verify_model(path, public)["valid"]  # no key needed to check the signature
    with pytest.raises(MLESecurityError, match="wrong key"):
        mle.load_model(path, key=bytes(32), public_key=public)
    signed_plain = tmp_path / "s.mle"
    mle.export_model(model, signed_plain)
    SecurityUtils.sign_model(signed_plain, private)
    with pytest.raises(ValueError, match="encrypt the unsigned file, then sign"):
        SecurityUtils.encrypt_model(signed_plain, key=key)
