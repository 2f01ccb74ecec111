"""Read and write ``.mle`` files: header, section table, msgpack sections, tensor data.

The byte layout is specified in ``format/SPEC.md``; this module is its
reference implementation. Loading trusts nothing in the file: every length,
offset, checksum and decoded type is checked before it is used, and any
problem raises :class:`~mlejax.format.errors.MLEFormatError`.
"""

from __future__ import annotations

import mmap
import os
import secrets
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Mapping, Union

import numpy as np
import zstandard

from ._plain import pack_plain, unpack_plain
from .errors import MLEFormatError

__all__ = [
    "FORMAT_VERSION",
    "MIN_READABLE_VERSION",
    "MLEFile",
    "SectionInfo",
    "read_mle",
    "write_mle",
]

# Format version changelog (see SPEC.md "Versioning"):
#   1 (2026-11-27): first version.
FORMAT_VERSION = 1
MIN_READABLE_VERSION = 1

MAGIC = b"\x89MLE\r\n\x1a\n"
ALIGN = 64
HEADER_SIZE = 64
MAX_SECTIONS = 64
MAX_NDIM = 64

# magic, version, flags, section_count, table_crc, table_offset, file_size, reserved; header_crc follows.
_HEADER = struct.Struct("<8sIIIIQQ20s")
_HEADER_CRC = struct.Struct("<I")
# kind, flags, checksum, offset, stored_length, raw_length
_ENTRY = struct.Struct("<HHIQQQ")
assert _HEADER.size + _HEADER_CRC.size == HEADER_SIZE and _ENTRY.size == 32

KIND_METADATA, KIND_GRAPH, KIND_TENSOR_INDEX, KIND_TENSOR_DATA = 1, 2, 3, 4
KIND_SIGNATURE, KIND_ENCRYPTION = 5, 6  # reserved, not written or read by version 1
_KIND_NAMES = {
    KIND_METADATA: "metadata",
    KIND_GRAPH: "graph",
    KIND_TENSOR_INDEX: "tensor_index",
    KIND_TENSOR_DATA: "tensor_data",
    KIND_SIGNATURE: "signature",
    KIND_ENCRYPTION: "encryption",
}
_REQUIRED_KINDS = (KIND_METADATA, KIND_GRAPH, KIND_TENSOR_INDEX, KIND_TENSOR_DATA)

SECTION_ZSTD = 1 << 0
SECTION_ENCRYPTED = 1 << 1  # reserved
FILE_SIGNED = 1 << 0  # reserved
FILE_ENCRYPTED = 1 << 1  # reserved

_COMPRESSIONS = (None, "zstd")
_INDEX_KEYS = frozenset({"name", "dtype", "shape", "offset", "nbytes"})
_WRITE_CHUNK = 16 << 20


def _dtype_table() -> dict[str, np.dtype]:
    names = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
    table = {n: np.dtype(n).newbyteorder("<") for n in names + ["float16", "float32", "float64"]}
    try:
        import ml_dtypes
    except ImportError:
        pass
    else:
        table["bfloat16"] = np.dtype(ml_dtypes.bfloat16)
    return table


#: dtype code (as stored in the tensor index) -> little-endian numpy dtype.
DTYPES: dict[str, np.dtype] = _dtype_table()
_DTYPE_CODES = {dt: code for code, dt in DTYPES.items()}


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class SectionInfo:
    """One section table entry. ``length`` is the stored size, ``raw_length`` the decoded size."""

    kind: str
    kind_id: int
    flags: int
    offset: int
    length: int
    raw_length: int
    checksum: int

    @property
    def compressed(self) -> bool:
        return bool(self.flags & SECTION_ZSTD)


class MLEFile:
    """A loaded ``.mle`` file.

    For uncompressed files, ``tensors`` are read-only views into ``buffer``, a
    uint8 array over a read-only mmap of the file (or over the bytes passed to
    :func:`read_mle`). Each view keeps the mapping alive on its own, so arrays
    stay valid after :meth:`close`; the mmap is unmapped when the last view is
    garbage collected. The file must not be modified while mapped.
    """

    def __init__(
        self,
        *,
        metadata: dict[str, Any],
        graph: dict[str, Any],
        tensors: dict[str, np.ndarray],
        format_version: int,
        file_size: int,
        sections: list[SectionInfo],
        buffer: np.ndarray,
        mapping: mmap.mmap | None,
    ) -> None:
        self.metadata = metadata
        self.graph = graph
        self.tensors = tensors
        self.format_version = format_version
        self.file_size = file_size
        self.sections = sections
        self.buffer = buffer
        self._mmap = mapping

    def close(self) -> None:
        """Drop this object's references; unmap now if no tensor view is still alive."""
        mapping, self._mmap = self._mmap, None
        self.tensors = {}
        self.buffer = np.empty(0, np.uint8)
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:
                pass  # live views remain; the mapping closes when they are collected

    def __enter__(self) -> MLEFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"MLEFile(format_version={self.format_version}, file_size={self.file_size}, "
            f"tensors={len(self.tensors)}, sections={[s.kind for s in self.sections]})"
        )


# --------------------------------------------------------------------------- writing


def _prepare_tensor(name: Any, value: Any) -> tuple[str, np.ndarray, str]:
    if not isinstance(name, str):
        raise TypeError(f"tensor name {name!r} is {type(name).__name__}, expected str")
    if not name:
        raise ValueError("tensor names must be non-empty")
    arr = np.asarray(value)
    le = arr.dtype if arr.dtype.byteorder == "|" else arr.dtype.newbyteorder("<")
    for code, dt in DTYPES.items():
        if dt == le:
            return name, arr.astype(dt, order="C", copy=False), code
    raise TypeError(f"tensor {name!r}: dtype {arr.dtype} is not supported; supported: {', '.join(DTYPES)}")


class _SectionSink:
    """Writes one section to ``fh``, compressing if asked, tracking stored length and CRC32."""

    def __init__(self, fh: BinaryIO, raw_length: int, compression: str | None, level: int) -> None:
        self.fh, self.length, self.crc, self.raw_pos = fh, 0, 0, 0
        self._z = None
        if compression == "zstd":
            cctx = zstandard.ZstdCompressor(level=level, write_content_size=True)
            self._z = cctx.compressobj(size=raw_length)

    def _emit(self, b: bytes | memoryview) -> None:
        if len(b):
            self.fh.write(b)
            self.crc = zlib.crc32(b, self.crc)
            self.length += len(b)

    def write(self, raw: bytes | memoryview) -> None:
        for i in range(0, len(raw), _WRITE_CHUNK):
            chunk = raw[i : i + _WRITE_CHUNK]
            self._emit(self._z.compress(chunk) if self._z else chunk)
        self.raw_pos += len(raw)

    def finish(self) -> None:
        if self._z:
            self._emit(self._z.flush())


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; rename there is already durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_mle(
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any],
    graph: dict[str, Any],
    tensors: Mapping[str, np.ndarray],
    compression: str | None = None,
    compression_level: int = 3,
) -> int:
    """Write a ``.mle`` file atomically (temp file in the same directory, fsync, rename).

    Returns the file size in bytes. Raises TypeError/ValueError on bad input,
    before anything is written; an existing file at ``path`` is left intact on
    any failure.
    """
    if compression not in _COMPRESSIONS:
        raise ValueError(f"compression={compression!r} is not supported; use one of {_COMPRESSIONS}")
    for what, value in (("metadata", metadata), ("graph", graph)):
        if not isinstance(value, dict):
            raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping of name -> array, got {type(tensors).__name__}")
    prepared = [_prepare_tensor(k, v) for k, v in tensors.items()]
    index, data_len = [], 0
    for name, arr, code in prepared:
        offset = _align(data_len)
        index.append({"name": name, "dtype": code, "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes})
        data_len = offset + arr.nbytes
    blobs = {
        KIND_METADATA: pack_plain(metadata, "metadata"),
        KIND_GRAPH: pack_plain(graph, "graph"),
        KIND_TENSOR_INDEX: pack_plain(index, "tensor_index"),
    }

    def write_data(sink: _SectionSink) -> None:
        for (_, arr, _), entry in zip(prepared, index):
            sink.write(bytes(entry["offset"] - sink.raw_pos))
            sink.write(memoryview(arr.reshape(-1).view(np.uint8)))

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            pos = HEADER_SIZE + len(_REQUIRED_KINDS) * _ENTRY.size
            fh.write(bytes(pos))  # header and table are filled in once sections are written
            entries = []
            for kind in _REQUIRED_KINDS:
                fh.write(bytes(_align(pos) - pos))
                pos = _align(pos)
                raw_len = data_len if kind == KIND_TENSOR_DATA else len(blobs[kind])
                sink = _SectionSink(fh, raw_len, compression, compression_level)
                if kind == KIND_TENSOR_DATA:
                    write_data(sink)
                else:
                    sink.write(blobs[kind])
                sink.finish()
                flags = SECTION_ZSTD if compression else 0
                entries.append(_ENTRY.pack(kind, flags, sink.crc, pos, sink.length, raw_len))
                pos += sink.length
            table = b"".join(entries)
            head = _HEADER.pack(
                MAGIC, FORMAT_VERSION, 0, len(entries), zlib.crc32(table), HEADER_SIZE, pos, bytes(20)
            )
            fh.seek(0)
            fh.write(head + _HEADER_CRC.pack(zlib.crc32(head)) + table)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)
    return pos


# --------------------------------------------------------------------------- reading

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]


def _decompress(stored: np.ndarray, raw_length: int, where: str) -> np.ndarray:
    """Decompress one zstd frame into exactly ``raw_length`` bytes (64-byte aligned), never more."""
    try:
        declared = zstandard.frame_content_size(stored)
        if declared not in (-1, raw_length):
            raise MLEFormatError(f"{where}: zstd frame declares {declared} bytes, section table says {raw_length}")
        out = np.empty(raw_length + ALIGN, np.uint8)
        start = -out.ctypes.data % ALIGN
        out = out[start : start + raw_length]
        reader = zstandard.ZstdDecompressor().stream_reader(memoryview(stored))
        view, filled = memoryview(out), 0
        while filled < raw_length:
            n = reader.readinto(view[filled:])
            if n == 0:
                break
            filled += n
        if filled < raw_length:
            raise MLEFormatError(f"{where}: decompressed to {filled} bytes, section table says {raw_length}")
        if reader.read(1):
            raise MLEFormatError(f"{where}: decompresses to more than the {raw_length} bytes the section table says")
    except zstandard.ZstdError as e:
        raise MLEFormatError(f"{where}: corrupt zstd data ({e})") from None
    out.flags.writeable = False
    return out


def _parse_header(buf: np.ndarray) -> tuple[int, list[SectionInfo]]:
    n = len(buf)
    if n < HEADER_SIZE:
        raise MLEFormatError(f"file is {n} bytes, shorter than the {HEADER_SIZE}-byte header (truncated?)")
    magic, version, flags, count, table_crc, table_off, file_size, reserved = _HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise MLEFormatError(f"not a .mle file: magic is {magic!r}, expected {MAGIC!r}")
    if not MIN_READABLE_VERSION <= version <= FORMAT_VERSION:
        hint = "; upgrade mlejax to read it" if version > FORMAT_VERSION else ""
        raise MLEFormatError(
            f"format version {version} is not supported: this mlejax reads versions "
            f"{MIN_READABLE_VERSION} to {FORMAT_VERSION}{hint}"
        )
    (header_crc,) = _HEADER_CRC.unpack_from(buf, _HEADER.size)
    if zlib.crc32(buf[: _HEADER.size]) != header_crc:
        raise MLEFormatError("header checksum mismatch: the header is corrupted")
    if flags & (FILE_SIGNED | FILE_ENCRYPTED):
        raise MLEFormatError(f"header flags {flags:#x} mark a signed or encrypted file, not supported by format version 1")
    if flags:
        raise MLEFormatError(f"header flags {flags:#x} set unknown bits; expected 0")
    if any(reserved):
        raise MLEFormatError("header reserved bytes 40..59 must be zero")
    if file_size != n:
        raise MLEFormatError(f"file is {n} bytes but its header records {file_size} (truncated or trailing bytes)")
    if not 1 <= count <= MAX_SECTIONS:
        raise MLEFormatError(f"section count {count} is out of range 1..{MAX_SECTIONS}")
    if table_off != HEADER_SIZE:
        raise MLEFormatError(f"section table offset is {table_off}, expected {HEADER_SIZE}")
    table_end = table_off + count * _ENTRY.size
    if table_end > n:
        raise MLEFormatError(f"section table ends at byte {table_end}, past the end of the {n}-byte file")
    if zlib.crc32(buf[table_off:table_end]) != table_crc:
        raise MLEFormatError("section table checksum mismatch: the section table is corrupted")

    sections: list[SectionInfo] = []
    cursor = table_end
    for i in range(count):
        kind_id, sflags, crc, offset, length, raw_length = _ENTRY.unpack_from(buf, table_off + i * _ENTRY.size)
        kind = _KIND_NAMES.get(kind_id)
        where = f"section {i} ({kind or f'kind {kind_id}'})"
        if kind_id not in _REQUIRED_KINDS:
            state = "reserved for a later format version" if kind else "unknown"
            raise MLEFormatError(f"{where}: section kind {kind_id} is {state}; version 1 knows kinds 1-4")
        if any(s.kind_id == kind_id for s in sections):
            raise MLEFormatError(f"{where}: duplicate {kind} section")
        if sflags & ~SECTION_ZSTD:
            raise MLEFormatError(f"{where}: flags {sflags:#x} set unknown or reserved bits (only bit 0, zstd, is known)")
        if not sflags & SECTION_ZSTD and raw_length != length:
            raise MLEFormatError(f"{where}: uncompressed but raw length {raw_length} != stored length {length}")
        if offset != _align(cursor):
            raise MLEFormatError(
                f"{where}: starts at byte {offset}, expected {_align(cursor)} "
                "(sections follow each other in table order, each 64-byte aligned)"
            )
        end = offset + length
        if end > n:
            raise MLEFormatError(f"{where}: bytes {offset}..{end} run past the end of the {n}-byte file")
        if buf[cursor:offset].any():
            raise MLEFormatError(f"{where}: padding bytes before the section must be zero")
        sections.append(SectionInfo(kind, kind_id, sflags, offset, length, raw_length, crc))
        cursor = end
    if cursor != n:
        raise MLEFormatError(f"sections end at byte {cursor} but the file is {n} bytes (trailing bytes)")
    missing = [_KIND_NAMES[k] for k in _REQUIRED_KINDS if all(s.kind_id != k for s in sections)]
    if missing:
        raise MLEFormatError(f"required section(s) missing: {', '.join(missing)}")
    return version, sections


def _int(value: Any, where: str, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MLEFormatError(f"{where}: {field} must be a non-negative int, got {value!r}")
    return value


def _build_tensors(index: Any, data: np.ndarray) -> dict[str, np.ndarray]:
    if not isinstance(index, list):
        raise MLEFormatError(f"tensor_index section: expected a list, got {type(index).__name__}")
    tensors: dict[str, np.ndarray] = {}
    cursor = 0
    for i, entry in enumerate(index):
        where = f"tensor_index[{i}]"
        if not isinstance(entry, dict):
            raise MLEFormatError(f"{where}: expected a map, got {type(entry).__name__}")
        if set(entry) != _INDEX_KEYS:
            raise MLEFormatError(f"{where}: keys are {sorted(entry)}, expected {sorted(_INDEX_KEYS)}")
        name = entry["name"]
        if not isinstance(name, str) or not name:
            raise MLEFormatError(f"{where}: name must be a non-empty str, got {name!r}")
        where = f"tensor {name!r} ({where})"
        if name in tensors:
            raise MLEFormatError(f"{where}: duplicate tensor name")
        code = entry["dtype"]
        dt = DTYPES.get(code) if isinstance(code, str) else None
        if dt is None:
            hint = " (install ml_dtypes to read bfloat16)" if code == "bfloat16" else ""
            raise MLEFormatError(f"{where}: unknown dtype {code!r}{hint}; supported: {', '.join(DTYPES)}")
        shape = entry["shape"]
        if not isinstance(shape, list) or len(shape) > MAX_NDIM:
            raise MLEFormatError(f"{where}: shape must be a list of at most {MAX_NDIM} ints, got {shape!r}")
        numel = 1
        for d in shape:
            numel *= _int(d, where, "each shape dimension") or 1
            if numel * dt.itemsize >= 2**63:
                raise MLEFormatError(f"{where}: shape {shape} is too large (over 2**63 bytes)")
        if 0 in shape:
            numel = 0
        offset, nbytes = _int(entry["offset"], where, "offset"), _int(entry["nbytes"], where, "nbytes")
        if nbytes != numel * dt.itemsize:
            raise MLEFormatError(f"{where}: nbytes is {nbytes}, but shape {shape} of {code} needs {numel * dt.itemsize}")
        if offset != _align(cursor):
            raise MLEFormatError(
                f"{where}: offset is {offset}, expected {_align(cursor)} "
                "(tensors follow each other in index order, each 64-byte aligned)"
            )
        end = offset + nbytes
        if end > len(data):
            raise MLEFormatError(f"{where}: bytes {offset}..{end} run past the {len(data)}-byte tensor_data section")
        if data[cursor:offset].any():
            raise MLEFormatError(f"{where}: padding bytes before the tensor must be zero")
        raw = data[offset:end]
        if code == "bool" and (raw > 1).any():
            raise MLEFormatError(f"{where}: bool tensor holds bytes other than 0 and 1")
        arr = raw.view(dt).reshape(shape)
        if sys.byteorder == "big" and dt.byteorder == "<":
            arr = arr.astype(dt.newbyteorder("="))
            arr.flags.writeable = False
        tensors[name] = arr
        cursor = end
    if cursor != len(data):
        raise MLEFormatError(f"tensor_data section is {len(data)} bytes but its tensors end at byte {cursor}")
    return tensors


def _parse(buf: np.ndarray, mapping: mmap.mmap | None, max_decompressed_bytes: int) -> MLEFile:
    version, sections = _parse_header(buf)
    for s in sections:
        if zlib.crc32(buf[s.offset : s.offset + s.length]) != s.checksum:
            raise MLEFormatError(f"{s.kind} section: checksum mismatch, the section is corrupted")
    total_raw = sum(s.raw_length for s in sections if s.compressed)
    if total_raw > max_decompressed_bytes:
        raise MLEFormatError(
            f"compressed sections declare {total_raw} bytes in all, over max_decompressed_bytes="
            f"{max_decompressed_bytes}; raise the limit if you trust this file"
        )
    decoded: dict[str, np.ndarray] = {}
    for s in sections:
        stored = buf[s.offset : s.offset + s.length]
        decoded[s.kind] = _decompress(stored, s.raw_length, f"{s.kind} section") if s.compressed else stored
    metadata = unpack_plain(memoryview(decoded["metadata"]), "metadata")
    graph = unpack_plain(memoryview(decoded["graph"]), "graph")
    for kind, value in (("metadata", metadata), ("graph", graph)):
        if not isinstance(value, dict):
            raise MLEFormatError(f"{kind} section: expected a map, got {type(value).__name__}")
    index = unpack_plain(memoryview(decoded["tensor_index"]), "tensor_index")
    tensors = _build_tensors(index, decoded["tensor_data"])
    return MLEFile(
        metadata=metadata,
        graph=graph,
        tensors=tensors,
        format_version=version,
        file_size=len(buf),
        sections=sections,
        buffer=buf,
        mapping=mapping,
    )


def read_mle(source: Source, *, max_decompressed_bytes: int = 4 << 30) -> MLEFile:
    """Open and fully validate a ``.mle`` file given as a path or as bytes.

    Uncompressed tensors are read-only zero-copy views of the file's mmap (or
    of the given bytes). Raises :class:`MLEFormatError` for any invalid file.
    """
    mapping: mmap.mmap | None = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        prefix = ""
        buf = np.frombuffer(memoryview(source).cast("B"), np.uint8)
    else:
        prefix = f"{os.fspath(source)}: "
        with open(source, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < HEADER_SIZE:
                raise MLEFormatError(f"{prefix}file is {size} bytes, shorter than the {HEADER_SIZE}-byte header")
            mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        buf = np.frombuffer(mapping, np.uint8)
    buf.flags.writeable = False
    try:
        return _parse(buf, mapping, max_decompressed_bytes)
    except MLEFormatError as e:
        del buf
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:
                pass  # a traceback still references a view; the mapping closes when it is collected
        raise MLEFormatError(f"{prefix}{e}") from None
