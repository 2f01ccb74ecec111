"""Every way a .mle file can lie about itself must raise MLEFormatError, and nothing else.

The layout is re-encoded here from SPEC.md (not imported from the reader), so
these tests also check the spec. Mutations that must get past the checksums
to reach a deeper check go through :func:`build` or :func:`fix_checksums`.
"""

from __future__ import annotations

import random
import struct
import zlib
from typing import Any

import msgpack
import numpy as np
import pytest
import zstandard

from mlejax.format import MLEFormatError, read_mle, write_mle

from mle_bytes import DATA, ENTRY, GRAPH, INDEX, META, build, fix_checksums, seal, sections_of, set_entry, set_header


def make_file(tmp_path, compression: str | None = None, **tensors: np.ndarray) -> bytes:
    tensors = tensors or {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 0], np.bool_)}
    path = tmp_path / "m.mle"
    write_mle(
        path,
        metadata={"task": "classifier", "classes": ["a", "b"]},
        graph={"inputs": [], "nodes": [], "outputs": []},
        tensors=tensors,
        compression=compression,
    )
    return path.read_bytes()


def with_section(raw: bytes, kind: int, value: Any = None, *, payload: bytes | None = None) -> bytes:
    """Replace one section (of an uncompressed file) by msgpack(value) or raw payload bytes."""
    secs = sections_of(raw)
    for s in secs:
        if s[0] == kind:
            s[2] = msgpack.packb(value, use_bin_type=True) if payload is None else payload
            s[3] = len(s[2])
    return build(secs)


def index_of(raw: bytes) -> list[dict[str, Any]]:
    return msgpack.unpackb(next(s[2] for s in sections_of(raw) if s[0] == INDEX))


def bad(raw: bytes, match: str, **kw: Any) -> MLEFormatError:
    with pytest.raises(MLEFormatError, match=match) as info:
        read_mle(raw, **kw)
    return info.value


@pytest.fixture
def raw(tmp_path) -> bytes:
    return make_file(tmp_path)


# --------------------------------------------------------------------------- builder sanity


def test_builder_reproduces_writer(raw):
    assert build(sections_of(raw)) == raw
    assert fix_checksums(raw) == raw
    read_mle(raw)


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_version_1_files_still_read(tmp_path, compression):
    raw = make_file(tmp_path, compression)
    v1 = build(sections_of(raw), version=1)
    f = read_mle(v1)
    assert f.format_version == 1 and f.metadata["classes"] == ["a", "b"]
    np.testing.assert_array_equal(f.tensors["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    secs = sections_of(raw)
    bad(build(secs + [[5, 0, bytes(104), 104]], version=1, flags=1), "version 1 does not support")
    bad(build(secs + [[6, 0, b"x", 1]], version=1), "kind 6 is reserved for format version 2")
    bad(build([[k, f | 2, p, r] for k, f, p, r in secs], version=1), "unknown or reserved bits")


# --------------------------------------------------------------------------- whole-file damage


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_truncation_at_every_byte(tmp_path, compression):
    raw = make_file(tmp_path, compression)
    for n in range(len(raw)):
        with pytest.raises(MLEFormatError):
            read_mle(raw[:n])


def test_truncated_file_on_disk(tmp_path, raw):
    for n in (0, 10, 63, 64, 200, len(raw) - 1):
        (tmp_path / "t.mle").write_bytes(raw[:n])
        with pytest.raises(MLEFormatError, match=r"t\.mle: .*(shorter|header records|past the end)"):
            read_mle(tmp_path / "t.mle")


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_bit_flip_anywhere(tmp_path, compression):
    raw = make_file(tmp_path, compression)
    for i in range(len(raw)):
        for bit in (0x01, 0x80):
            mutated = bytearray(raw)
            mutated[i] ^= bit
            with pytest.raises(MLEFormatError, match="checksum|magic|version|padding|zero"):
                read_mle(bytes(mutated))


def test_trailing_garbage(raw):
    bad(raw + b"\0", "header records")
    grown = set_header(raw + bytes(64), file_size=len(raw) + 64)
    bad(grown, "trailing bytes")


# --------------------------------------------------------------------------- header


def test_bad_magic(raw):
    bad(b"PK\x03\x04" + raw[4:], "not a .mle file")
    bad(b"\0" * 200, "not a .mle file")


@pytest.mark.parametrize("version", [0, 3, 2**32 - 1])
def test_unsupported_version(raw, version):
    err = bad(set_header(raw, version=version), f"format version {version} is not supported")
    assert "versions 1 to 2" in str(err)
    if version > 2:
        assert "upgrade mlejax" in str(err)


def test_header_fields(raw):
    bad(set_header(raw, flags=1), "signed or encrypted, but it has no signature section")
    bad(set_header(raw, flags=2), "the file is encrypted but this section is not")
    bad(set_header(raw, flags=0x100), "unknown bits")
    bad(set_header(raw, reserved=b"\1" + bytes(19)), "reserved bytes")
    bad(set_header(raw, file_size=2**63), "header records")
    bad(set_header(raw, count=0), "section count 0")
    bad(set_header(raw, count=65), "section count 65")
    bad(set_header(raw, count=2**32 - 1), "section count")
    bad(set_header(raw, table_off=128), "section table offset")
    bad(set_header(raw, table_off=2**64 - 1), "section table offset")
    bad(set_header(raw, table_crc=0), "section table checksum")
    bad(raw[:60] + b"\0\0\0\0" + raw[64:], "header checksum")


# --------------------------------------------------------------------------- section table


def test_section_offsets_and_lengths(raw):
    secs = [ENTRY.unpack_from(raw, 64 + i * 32) for i in range(4)]
    bad(set_entry(raw, 1, offset=secs[0][3]), "starts at byte .* expected")  # overlaps metadata
    bad(set_entry(raw, 0, offset=2**64 - 1), "starts at byte")
    bad(set_entry(raw, 0, offset=secs[0][3] + 1), "expected")  # misaligned
    bad(set_entry(raw, 3, length=2**63, raw_length=2**63), "past the end")
    bad(set_entry(raw, 3, length=2**64 - 1, raw_length=2**64 - 1), "past the end")
    bad(set_entry(raw, 0, length=secs[0][4] + 64, raw_length=secs[0][4] + 64), "expected|past the end")
    bad(set_entry(raw, 3, length=secs[3][4] - 1, raw_length=secs[3][4] - 1), "trailing bytes")
    bad(set_entry(raw, 0, raw_length=secs[0][4] + 1), "uncompressed but raw length")
    mutated = bytearray(raw)
    struct.pack_into("<I", mutated, 64 + 4, secs[0][2] ^ 1)
    mutated[20:24] = struct.pack("<I", zlib.crc32(mutated[64:192]))
    bad(seal(mutated), "metadata section: checksum mismatch")


def test_padding_must_be_zero(raw):
    meta_end = ENTRY.unpack_from(raw, 64)[3] + ENTRY.unpack_from(raw, 64)[4]
    mutated = bytearray(raw)
    mutated[meta_end] = 0xAA
    bad(bytes(mutated), "padding bytes before the section must be zero")


def test_section_kinds(raw):
    secs = sections_of(raw)
    read_mle(build([secs[1], secs[0], *secs[2:]]))  # table order is free; layout follows it
    bad(build(secs[:3]), "missing: tensor_data")
    bad(build(secs + [secs[0]]), "duplicate metadata")
    bad(build(secs + [[99, 0, b"x", 1]]), "kind 99 is unknown")
    bad(build(secs + [[7, 0, b"x", 1]]), "kind 7 is unknown; version 2 knows kinds 1-6")
    bad(build(secs + [[5, 0, b"x" * 64, 64]]), "signature section in a file whose header does not mark it")
    bad(build(secs + [[6, 0, b"x", 1]]), "encryption section in a file whose header does not mark it")
    bad(build([[k, f | 2, p, r] for k, f, p, r in secs]), "unknown or reserved bits")
    bad(build([[k, f | 0x8000, p, r] for k, f, p, r in secs]), "unknown or reserved bits")


# --------------------------------------------------------------------------- msgpack sections


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"", "invalid msgpack"),
        (b"\xc1", "invalid msgpack"),  # never-used byte
        (b"\x81\xa1a", "invalid msgpack"),  # truncated map
        (b"\x80\x80", "invalid msgpack.*ExtraData"),
        (b"\xdd\xff\xff\xff\xff", "invalid msgpack.*max_array_len"),  # 4G-element array claimed
        (b"\xdb\xff\xff\xff\xff", "invalid msgpack"),  # 4 GB string claimed
        (b"\x81\xa1a\xa2\xff\xfe", "invalid msgpack.*UnicodeDecodeError"),
        (b"\x81\xa1a\xd4\x05\x00", "extension type 5"),
        (msgpack.packb({"t": msgpack.Timestamp(1, 0)}), "Timestamp is not plain data"),
        (b"\x91" * 3000 + b"\xc0", "invalid msgpack.*StackError|nested deeper"),  # depth bomb
        (b"\x81\xa1d" + b"\x91" * 100 + b"\xc0", "nested deeper than 64"),
        (b"\x81\x01\xc0", "invalid msgpack"),  # int map key
        (b"\x81\xc4\x01k\xc0", "map key b'k' is bytes"),
        (b"\x82\xa1k\x01\xa1k\x02", "duplicate map key 'k'"),
        (msgpack.packb([1, 2]), "expected a map, got list"),
        (msgpack.packb(3), "expected a map, got int"),
    ],
)
@pytest.mark.parametrize("kind, name", [(META, "metadata"), (GRAPH, "graph")])
def test_bad_msgpack(raw, kind, name, payload, match):
    err = bad(with_section(raw, kind, payload=payload), match)
    assert f"{name} section" in str(err)


# --------------------------------------------------------------------------- tensor index


def _with_index(raw: bytes, index: Any) -> bytes:
    return with_section(raw, INDEX, index)


def _entry(raw: bytes, i: int = 0, **changes: Any) -> bytes:
    index = index_of(raw)
    index[i].update(changes)
    return _with_index(raw, index)


def test_index_structure(raw):
    bad(_with_index(raw, {"w": 1}), "tensor_index section: expected a list, got dict")
    bad(_with_index(raw, [1]), r"tensor_index\[0\]: expected a map, got int")
    index = index_of(raw)
    del index[0]["nbytes"]
    bad(_with_index(raw, index), r"keys are \['dtype', 'name', 'offset', 'shape'\], expected")
    index = index_of(raw)
    index[0]["path"] = "/etc/passwd"
    bad(_with_index(raw, index), "keys are")
    bad(_entry(raw, name=""), "name must be a non-empty str")
    bad(_entry(raw, name=b"w"), "name must be a non-empty str")
    bad(_entry(raw, 1, name="w"), "tensor 'w'.*duplicate tensor name")
    bad(_with_index(raw, []), "tensor_data section is .* bytes but its tensors end at byte 0")


def test_index_dtype(raw):
    bad(_entry(raw, dtype="complex64"), "tensor 'w'.*unknown dtype 'complex64'; supported: bool")
    bad(_entry(raw, dtype="object"), "unknown dtype 'object'")
    bad(_entry(raw, dtype=7), "unknown dtype 7")


@pytest.mark.parametrize(
    "shape, match",
    [
        ([2**40, 2**40], "too large"),
        ([2**62, 2], "too large"),
        ([2**64 - 1], "too large"),
        ([2**40, 2**40, 0], "too large"),
        ([-1, 6], "non-negative int, got -1"),
        ([True, 6], "non-negative int, got True"),
        ([2.0, 3], "non-negative int, got 2.0"),
        ("2,3", "shape must be a list"),
        ([1] * 65, "at most 64"),
        ([3, 3], "nbytes is 24, but shape .* needs 36"),
        ([], "nbytes is 24, but shape .* needs 4"),
    ],
)
def test_index_shape(raw, shape, match):
    bad(_entry(raw, shape=shape), match)


def test_index_offsets(raw):
    bad(_entry(raw, 1, offset=0), "tensor 'b'.*offset is 0, expected 64")  # overlaps 'w'
    bad(_entry(raw, 1, offset=32), "offset is 32, expected 64")  # misaligned
    bad(_entry(raw, 1, offset=128), "offset is 128, expected 64")  # gap
    bad(_entry(raw, 1, offset=2**64 - 1), "expected 64")
    bad(_entry(raw, 0, offset=-64), "non-negative int")
    bad(_entry(raw, 1, nbytes=2**63), "nbytes is")
    bad(_entry(raw, 1, shape=[100], nbytes=100), "run past the 66-byte tensor_data section")
    bad(_entry(raw, 1, shape=[1], nbytes=1), "tensors end at byte 65")


def test_tensor_data_content(raw):
    data = next(s for s in sections_of(raw) if s[0] == DATA)[2]
    bad(with_section(raw, DATA, payload=data[:24] + b"\1" + data[25:]), "padding bytes before the tensor")
    bad(with_section(raw, DATA, payload=data[:64] + b"\2" + data[65:]), "tensor 'b'.*bool tensor holds bytes")


# --------------------------------------------------------------------------- zstd


def _zstd_section(raw: bytes, kind: int, payload: bytes, raw_length: int) -> bytes:
    secs = sections_of(raw)
    for s in secs:
        if s[0] == kind:
            s[1:] = [1, payload, raw_length]
    return build(secs)


def _zeros_frame(n: int, *, content_size: bool) -> bytes:
    cobj = zstandard.ZstdCompressor(level=1, write_content_size=content_size).compressobj(
        size=n if content_size else -1
    )
    chunk = bytes(1 << 20)
    parts = [cobj.compress(chunk) for _ in range(n >> 20)]
    return b"".join(parts) + cobj.flush()


def test_zstd_bomb_small_declared_large_actual(raw):
    frame = _zeros_frame(256 << 20, content_size=False)  # 256 MiB of zeros in a few KiB
    assert len(frame) < 64 << 10
    bad(_zstd_section(raw, DATA, frame, 66), "tensor_data section: decompresses to more than the 66 bytes")
    bad(_zstd_section(raw, META, frame, 10), "metadata section: decompresses to more than")


def test_zstd_frame_size_disagrees(raw):
    frame = zstandard.ZstdCompressor().compress(bytes(1000))
    bad(_zstd_section(raw, DATA, frame, 66), "zstd frame declares 1000 bytes, section table says 66")
    bad(_zstd_section(raw, DATA, frame, 2000), "zstd frame declares 1000")
    short = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(10))
    bad(_zstd_section(raw, DATA, short, 66), "decompressed to 10 bytes, section table says 66")


def test_zstd_declared_huge(raw):
    frame = zstandard.ZstdCompressor().compress(b"\x80")
    bad(_zstd_section(raw, META, frame, 2**63), "over max_decompressed_bytes")
    bad(_zstd_section(raw, META, frame, 2**64 - 1), "over max_decompressed_bytes")
    bad(_zstd_section(raw, META, frame, 5 << 30), "over max_decompressed_bytes=4294967296")


def test_zstd_limit_is_configurable(tmp_path):
    raw = make_file(tmp_path, "zstd", w=np.zeros(10_000, np.float64))
    read_mle(raw, max_decompressed_bytes=1 << 20)
    bad(raw, "over max_decompressed_bytes=1000", max_decompressed_bytes=1000)


def test_zstd_corrupt(raw):
    bad(_zstd_section(raw, META, b"\x28\xb5\x2f\xfd" + b"\xff" * 20, 10), "metadata section: corrupt zstd")
    bad(_zstd_section(raw, META, b"not zstd", 10), "metadata section: corrupt zstd")
    frame = zstandard.ZstdCompressor().compress(b"\x80")
    bad(_zstd_section(raw, META, frame + b"junk", 1), "corrupt zstd|more than")
    bad(_zstd_section(raw, META, frame + frame, 1), "corrupt zstd|more than")


# --------------------------------------------------------------------------- fuzz


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_random_mutations_past_checksums(tmp_path, compression):
    """Random byte edits with checksums recomputed: a clean load or an MLEFormatError, nothing else."""
    raw = make_file(tmp_path, compression)
    rng = random.Random(1234)
    for _ in range(1500):
        mutated = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(raw))
            mutated[i] = rng.choice([0, 0xFF, rng.randrange(256), mutated[i] ^ (1 << rng.randrange(8))])
        try:
            read_mle(fix_checksums(bytes(mutated)))
        except MLEFormatError:
            pass
