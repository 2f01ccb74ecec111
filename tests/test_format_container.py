"""Round trips, zero-copy loading, alignment, atomic writes and compression of .mle files."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from mlejax.format import FORMAT_VERSION, MIN_READABLE_VERSION, MLEFile, read_mle, write_mle
from mlejax.format.container import DTYPES

GRAPH = {"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 3]}], "nodes": [], "outputs": []}
METADATA = {
    "name": "model ✓",
    "classes": [0, 1, 2],
    "labels": ["a", "b"],
    "score": 0.75,
    "nested": {"k": [None, True, -(2**63), 2**64 - 1, b"\x00\xff", (1, 2)]},
}


def _sample_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for code, dt in DTYPES.items():
        if code == "bool":
            arr = rng.random((3, 5)) > 0.5
        elif dt.kind in "iu":
            info = np.iinfo(dt)
            arr = rng.integers(info.min, info.max, size=(7,), dtype=dt, endpoint=True)
        else:
            arr = rng.standard_normal((2, 3, 4)).astype(dt)
        out[code] = arr
        out[f"{code}/scalar"] = arr.reshape(-1)[0].reshape(())
        out[f"{code}/empty"] = np.zeros((0, 4), dt)
    out["权重/λ"] = np.arange(13, dtype=np.uint8)  # odd size: the next tensor needs padding
    out["big"] = rng.standard_normal((256, 1024)).astype(np.float32)  # 1 MiB
    out["big_endian"] = np.arange(5, dtype=">i4")
    out["strided"] = np.arange(20, dtype=np.float64).reshape(4, 5).T
    return out


def _expected(arr: np.ndarray) -> np.ndarray:
    return arr.astype(arr.dtype.newbyteorder("<") if arr.dtype.byteorder != "|" else arr.dtype)


@pytest.fixture(scope="module")
def tensors() -> dict[str, np.ndarray]:
    return _sample_tensors()


def _write(path: os.PathLike[str], tensors: dict[str, np.ndarray], **kw: object) -> int:
    return write_mle(path, metadata=METADATA, graph=GRAPH, tensors=tensors, **kw)


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_round_trip(tmp_path, tensors, compression):
    path = tmp_path / "m.mle"
    n = _write(path, tensors, compression=compression)
    assert n == path.stat().st_size
    with read_mle(path) as f:
        assert isinstance(f, MLEFile)
        assert f.format_version == FORMAT_VERSION >= MIN_READABLE_VERSION
        assert f.file_size == n
        assert [s.kind for s in f.sections] == ["metadata", "graph", "tensor_index", "tensor_data"]
        assert all(s.compressed == (compression == "zstd") for s in f.sections)
        assert f.graph == GRAPH
        expected_meta = dict(METADATA, nested={"k": [None, True, -(2**63), 2**64 - 1, b"\x00\xff", [1, 2]]})
        assert f.metadata == expected_meta
        assert list(f.tensors) == list(tensors)  # order kept
        for name, arr in tensors.items():
            got = f.tensors[name]
            assert got.shape == arr.shape, name
            assert got.dtype == arr.dtype.newbyteorder("=") if arr.dtype.byteorder != "|" else arr.dtype
            np.testing.assert_array_equal(got, _expected(arr), err_msg=name)
            assert not got.flags.writeable, name
            assert got.flags.c_contiguous


def test_zero_copy_and_alignment(tmp_path, tensors):
    path = tmp_path / "m.mle"
    _write(path, tensors)
    f = read_mle(path)
    data = next(s for s in f.sections if s.kind == "tensor_data")
    assert data.offset % 64 == 0
    base_addr = f.buffer.__array_interface__["data"][0]
    for name, arr in f.tensors.items():
        if arr.size == 0:
            continue
        assert np.shares_memory(arr, f.buffer), name
        file_offset = arr.__array_interface__["data"][0] - base_addr
        assert file_offset % 64 == 0, (name, file_offset)
        # the base chain (via a memoryview) ends at the mmap, so the array keeps the mapping alive by itself
        base = arr
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(getattr(base, "obj", base), mmap.mmap)
    with pytest.raises(ValueError):
        f.tensors["big"][0, 0] = 1.0
    big = f.tensors["big"]
    f.close()
    np.testing.assert_array_equal(big, tensors["big"])  # views outlive close()


def test_compressed_tensors_are_aligned_copies(tmp_path, tensors):
    path = tmp_path / "m.mle"
    _write(path, tensors, compression="zstd")
    with read_mle(path) as f:
        for arr in f.tensors.values():
            if arr.size:
                assert arr.__array_interface__["data"][0] % 64 == 0
                assert not arr.flags.writeable


def test_compression_ratio(tmp_path):
    tensors = {"w": np.tile(np.arange(1000, dtype=np.float32), 256)}
    plain = _write(tmp_path / "a.mle", tensors)
    small = _write(tmp_path / "b.mle", tensors, compression="zstd", compression_level=9)
    assert small * 20 < plain
    np.testing.assert_array_equal(read_mle(tmp_path / "b.mle").tensors["w"], tensors["w"])


def test_bytes_input(tmp_path, tensors):
    path = tmp_path / "m.mle"
    _write(path, tensors)
    raw = path.read_bytes()
    for source in (raw, bytearray(raw), memoryview(raw)):
        f = read_mle(source)
        np.testing.assert_array_equal(f.tensors["big"], tensors["big"])
        assert not f.tensors["big"].flags.writeable
        assert np.shares_memory(f.tensors["big"], f.buffer)


def test_empty_model(tmp_path):
    path = tmp_path / "m.mle"
    _write(path, {})
    f = read_mle(path)
    assert f.tensors == {} and f.graph == GRAPH


def test_read_after_delete(tmp_path, tensors):
    path = tmp_path / "m.mle"
    _write(path, tensors)
    f = read_mle(path)
    path.unlink()
    np.testing.assert_array_equal(f.tensors["big"], tensors["big"])


def test_overwrite_is_atomic_on_failure(tmp_path):
    path = tmp_path / "m.mle"
    _write(path, {"a": np.ones(3)})
    before = path.read_bytes()
    bad_inputs = [
        {"tensors": {"obj": np.array([object()])}},
        {"tensors": {"c": np.ones(2, np.complex64)}},
        {"tensors": {"": np.ones(2)}},
        {"tensors": {1: np.ones(2)}},
        {"metadata": {"x": np.float32(1)}},
        {"metadata": {"x": {1: "non-str key"}}},
        {"graph": {"x": object()}},
        {"compression": "gzip"},
    ]
    for bad in bad_inputs:
        kwargs = {"metadata": METADATA, "graph": GRAPH, "tensors": {"a": np.ones(3)}, **bad}
        with pytest.raises((TypeError, ValueError)):
            write_mle(path, **kwargs)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.mle"]


def test_failure_mid_write_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.mle"
    _write(path, {"a": np.ones(3)})
    before = path.read_bytes()

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        _write(path, {"b": np.zeros(5)})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.mle"]


def test_write_errors_name_the_key_path(tmp_path):
    with pytest.raises(TypeError, match=r"metadata\['a'\]\[1\]\['b'\]"):
        write_mle(tmp_path / "m.mle", metadata={"a": [0, {"b": {1, 2}}]}, graph={}, tensors={})
    with pytest.raises(TypeError, match=r"tensor 'x'.*complex128.*float32"):
        write_mle(tmp_path / "m.mle", metadata={}, graph={}, tensors={"x": np.ones(2, complex)})
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        write_mle(tmp_path / "m.mle", metadata={"d": deep}, graph={}, tensors={})
    with pytest.raises(ValueError, match="64-bit"):
        write_mle(tmp_path / "m.mle", metadata={"i": 2**64}, graph={}, tensors={})
