"""Read and write ``.mle`` files: header, section table, msgpack sections, tensor data.

The byte layout is specified in ``format/SPEC.md``; this module is its
reference implementation. Loading trusts nothing in the file: every length,
offset, checksum and decoded type is checked before it is used, and any
problem raises :class:`~mlejax.format.errors.MLEFormatError` (or
:class:`~mlejax.format.errors.MLESecurityError` for signatures and keys).
Signing is :mod:`.signing`, encryption :mod:`.encryption`; this module lays
their sections out.
"""

from __future__ import annotations

import math
import mmap
import os
import secrets
import struct
import sys
import threading
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator, Mapping, NamedTuple, Union

import numpy as np
import zstandard

from ._plain import pack_plain, unpack_plain
from .encryption import ChunkEncrypter, Decryptor, Encryption
from .errors import MLEError, MLEFormatError, MLESecurityError
from .signing import SIGNATURE_SIZE, check_signature_layout, load_private_key, load_public_key, signature_payload, verify_signature

__all__ = [
    "FORMAT_VERSION",
    "MIN_READABLE_VERSION",
    "MLEFile",
    "SectionInfo",
    "TensorMap",
    "TensorSpec",
    "read_mle",
    "write_mle",
    "sign_file",
    "encrypt_file",
    "verify_file",
    "fsync_dir",
]

# Format version changelog (see SPEC.md "Versioning"):
#   1 (2026-11-27): first version.
#   2 (2026-11-27): signature (kind 5) and encryption (kind 6) sections, file flags SIGNED/ENCRYPTED,
#                   section flag ENCRYPTED. Version 1 files are still read.
FORMAT_VERSION = 2
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
KIND_SIGNATURE, KIND_ENCRYPTION = 5, 6  # version 2 and later
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
SECTION_ENCRYPTED = 1 << 1
FILE_SIGNED = 1 << 0
FILE_ENCRYPTED = 1 << 1

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

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & SECTION_ENCRYPTED)


class TensorSpec(NamedTuple):
    """A stored tensor's index entry: what can be known about it without reading its bytes."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    nbytes: int
    code: str

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class TensorMap(Mapping[str, np.ndarray]):
    """The stored tensors by name, verified before the first value is read.

    Names and :attr:`specs` (shape, dtype) come from the tensor index, checked
    at load. Reading any value (``m[name]``, ``values()``, ``items()``,
    :meth:`verify`) first runs the deferred checks of the tensor data, once:
    its checksum (when the section is read in place), zero padding and bool
    bytes; a failure raises :class:`MLEFormatError` on this and every later read.
    """

    def __init__(self, specs: dict[str, TensorSpec], load: Callable[[], dict[str, np.ndarray]]) -> None:
        self.specs = specs
        self._load: Callable[[], dict[str, np.ndarray]] | None = load
        self._arrays: dict[str, np.ndarray] | None = None
        self._error: MLEFormatError | None = None
        self._lock = threading.Lock()

    @property
    def verified(self) -> bool:
        """Whether the tensor data has been verified (and the values can be read)."""
        return self._arrays is not None

    def verify(self) -> dict[str, np.ndarray]:
        """Run the deferred checks (once) and return the arrays by name; MLEFormatError if they fail."""
        if self._arrays is None:
            with self._lock:
                if self._arrays is None:
                    if self._error is None:
                        try:
                            self._arrays = self._load()  # type: ignore[misc]
                        except MLEFormatError as e:
                            self._error = e
                        self._load = None
                    if self._error is not None:
                        raise type(self._error)(str(self._error))
        return self._arrays  # type: ignore[return-value]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.specs:
            raise KeyError(name)
        return self.verify()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def __repr__(self) -> str:
        return f"TensorMap({len(self.specs)} tensors, {'verified' if self.verified else 'not verified yet'})"


class MLEFile:
    """A loaded ``.mle`` file.

    ``tensors`` is a :class:`TensorMap` (verified at open unless opened with
    ``lazy_tensors=True``, then on the first read of a value). For
    uncompressed, unencrypted files, its values are read-only views into
    ``buffer``, a uint8 array over a read-only mmap of the file (or over the
    bytes passed to :func:`read_mle`). Each view keeps the mapping alive on its
    own, so arrays stay valid after :meth:`close`; the mmap is unmapped when the
    last view is garbage collected. The file must not be modified while mapped.
    ``signer`` is the raw public key whose signature was verified, or None.
    """

    def __init__(
        self,
        *,
        metadata: dict[str, Any],
        graph: dict[str, Any],
        tensors: TensorMap,
        format_version: int,
        file_size: int,
        sections: list[SectionInfo],
        buffer: np.ndarray,
        mapping: mmap.mmap | None,
        signer: bytes | None = None,
    ) -> None:
        self.metadata = metadata
        self.graph = graph
        self.tensors = tensors
        self.format_version = format_version
        self.file_size = file_size
        self.sections = sections
        self.buffer = buffer
        self._mmap = mapping
        self.signer = signer

    @property
    def signed(self) -> bool:
        """Whether the file carries a signature section (verified only if ``signer`` is set)."""
        return any(s.kind_id == KIND_SIGNATURE for s in self.sections)

    @property
    def encrypted(self) -> bool:
        return any(s.kind_id == KIND_ENCRYPTION for s in self.sections)

    def close(self) -> None:
        """Drop this object's references; unmap now if no tensor view is still alive."""
        mapping, self._mmap = self._mmap, None
        self.tensors = TensorMap({}, dict)
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


@dataclass
class _Part:
    """One section to write: its table fields and how to produce its bytes.

    ``emit`` writes the section's bytes *before* the transformations this part
    asks for: zstd compression if ``compress``, encryption if ``encrypt``.
    """

    kind: int
    flags: int
    raw_length: int
    emit: Callable[["_SectionSink"], None]
    compress: bool = False
    encrypt: bool = False


def _bytes_part(kind: int, flags: int, data: bytes | memoryview, raw_length: int | None = None, **kw: bool) -> _Part:
    return _Part(kind, flags, len(data) if raw_length is None else raw_length, lambda sink: sink.write(data), **kw)


class _SectionSink:
    """Writes one section to ``fh`` (compressing, then encrypting, as asked), tracking stored length and CRC32."""

    def __init__(
        self, fh: BinaryIO, raw_length: int, level: int | None, encrypter: ChunkEncrypter | None
    ) -> None:
        self.fh, self.length, self.crc, self.raw_pos = fh, 0, 0, 0
        self._z = None
        if level is not None:
            cctx = zstandard.ZstdCompressor(level=level, write_content_size=True)
            self._z = cctx.compressobj(size=raw_length)
        self._enc = encrypter

    def _out(self, b: bytes | memoryview) -> None:
        if len(b):
            self.fh.write(b)
            self.crc = zlib.crc32(b, self.crc)
            self.length += len(b)

    def _emit(self, b: bytes | memoryview) -> None:
        if self._enc is None:
            self._out(b)
        else:
            for chunk in self._enc.feed(b):
                self._out(chunk)

    def write(self, raw: bytes | memoryview) -> None:
        for i in range(0, len(raw), _WRITE_CHUNK):
            chunk = raw[i : i + _WRITE_CHUNK]
            self._emit(self._z.compress(chunk) if self._z else chunk)
        self.raw_pos += len(raw)

    def finish(self) -> None:
        if self._z:
            self._emit(self._z.flush())
        if self._enc:
            self._out(self._enc.finish())


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename inside ``directory`` durable (fsync the directory; a no-op where that is impossible)."""
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


def _write_file(
    path: str | os.PathLike[str],
    parts: list[_Part],
    *,
    level: int = 3,
    encryption: tuple[Encryption, bytes] | None = None,
    signer: Any = None,
) -> int:
    """Lay out ``parts`` (plus a signature section if ``signer``) atomically at ``path``; return the size."""
    path = os.fspath(path)
    if signer is not None:
        parts = parts + [_bytes_part(KIND_SIGNATURE, 0, bytes(SIGNATURE_SIZE))]
    encrypted = any(p.kind == KIND_ENCRYPTION for p in parts)
    file_flags = (FILE_ENCRYPTED if encrypted else 0) | (FILE_SIGNED if signer is not None else 0)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w+b") as fh:
            pos = HEADER_SIZE + len(parts) * _ENTRY.size
            fh.write(bytes(pos))  # header and table are filled in once sections are written
            entries = []
            for part in parts:
                fh.write(bytes(_align(pos) - pos))
                pos = _align(pos)
                encrypter = None
                if part.encrypt:
                    enc, section = encryption  # type: ignore[misc]
                    encrypter = ChunkEncrypter(
                        enc.key, enc.chunk_size, section, FORMAT_VERSION, part.kind, part.flags, part.raw_length
                    )
                sink = _SectionSink(fh, part.raw_length, level if part.compress else None, encrypter)
                part.emit(sink)
                sink.finish()
                crc = 0 if part.kind == KIND_SIGNATURE else sink.crc
                entries.append(_ENTRY.pack(part.kind, part.flags, crc, pos, sink.length, part.raw_length))
                pos += sink.length
            table = b"".join(entries)
            head = _HEADER.pack(
                MAGIC, FORMAT_VERSION, file_flags, len(entries), zlib.crc32(table), HEADER_SIZE, pos, bytes(20)
            )
            fh.seek(0)
            fh.write(head + _HEADER_CRC.pack(zlib.crc32(head)) + table)
            fh.flush()
            if signer is not None:
                sig_offset = pos - SIGNATURE_SIZE
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    view = np.frombuffer(mapped, np.uint8)
                    payload = signature_payload(view[:sig_offset], signer)
                    del view
                fh.seek(sig_offset)
                fh.write(payload)
                fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)
    return pos


def write_mle(
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any],
    graph: dict[str, Any],
    tensors: Mapping[str, np.ndarray],
    compression: str | None = None,
    compression_level: int = 3,
    encryption: Encryption | None = None,
) -> int:
    """Write a ``.mle`` file atomically (temp file in the same directory, fsync, rename).

    ``encryption`` (an :class:`~mlejax.format.encryption.Encryption`, from a
    raw key or a password) encrypts every section but the encryption
    parameters, so the plaintext never reaches the disk. Returns the file size
    in bytes. Raises TypeError/ValueError on bad input, before anything is
    written; an existing file at ``path`` is left intact on any failure.
    """
    if compression not in _COMPRESSIONS:
        raise ValueError(f"compression={compression!r} is not supported; use one of {_COMPRESSIONS}")
    if encryption is not None and not isinstance(encryption, Encryption):
        raise TypeError(f"encryption must be an Encryption (Encryption.with_key/with_password), got {encryption!r:.80}")
    for what, value in (("metadata", metadata), ("graph", graph)):
        if not isinstance(value, dict):
            raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping of name -> array, got {type(tensors).__name__}")
    prepared = [_prepare_tensor(k, v) for k, v in tensors.items()]
    index, data_len = [], 0
    for name, arr, code in prepared:
        offset = _align(data_len)
        entry = {"name": name, "dtype": code, "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes}
        index.append(entry)
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

    crypt = None if encryption is None else (encryption, encryption.section())
    flags = (SECTION_ZSTD if compression else 0) | (SECTION_ENCRYPTED if crypt else 0)
    kw = {"compress": compression is not None, "encrypt": crypt is not None}
    parts = [_bytes_part(kind, flags, blobs[kind], **kw) for kind in (KIND_METADATA, KIND_GRAPH, KIND_TENSOR_INDEX)]
    parts.append(_Part(KIND_TENSOR_DATA, flags, data_len, write_data, **kw))
    if crypt:
        parts.append(_bytes_part(KIND_ENCRYPTION, 0, crypt[1]))
    return _write_file(path, parts, level=compression_level, encryption=crypt)


def _stored_parts(buf: np.ndarray, sections: list[SectionInfo], *, encrypt: bool = False) -> list[_Part]:
    """Parts that copy the stored bytes of ``sections`` (encrypting the data sections if asked)."""
    parts = []
    for s in sections:
        data = memoryview(buf[s.offset : s.offset + s.length])
        if encrypt and s.kind_id in _REQUIRED_KINDS:
            parts.append(_bytes_part(s.kind_id, s.flags | SECTION_ENCRYPTED, data, s.raw_length, encrypt=True))
        else:
            parts.append(_bytes_part(s.kind_id, s.flags, data, s.raw_length))
    return parts


def _map_checked(path: str | os.PathLike[str]) -> tuple[np.ndarray, mmap.mmap, int, int, list[SectionInfo]]:
    """Map a file and check its layout and checksums (not its content)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size < HEADER_SIZE:
            raise MLEFormatError(f"{os.fspath(path)}: shorter than the {HEADER_SIZE}-byte header")
        mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    buf = np.frombuffer(mapping, np.uint8)
    try:
        version, flags, sections = _parse_header(buf)
        _check_crcs(buf, sections)
    except MLEError as e:
        buf = None
        _close_quietly(mapping)
        raise type(e)(f"{os.fspath(path)}: {e}") from None
    return buf, mapping, version, flags, sections


def verify_file(path: str | os.PathLike[str], public_key: Any) -> bytes:
    """Check the signature of the file at ``path`` against ``public_key`` (one or a list), without decrypting.

    Returns the raw public key that verified; raises :class:`MLESecurityError`
    (unsigned, wrong key, tampered) or :class:`MLEFormatError` (invalid layout).
    """
    keys = _public_keys(public_key)
    buf, mapping, _, _, sections = _map_checked(path)
    try:
        signature = next((s for s in sections if s.kind_id == KIND_SIGNATURE), None)
        if signature is None:
            raise MLESecurityError(f"{os.fspath(path)}: the file is not signed")
        try:
            return verify_signature(buf, signature.offset, keys)
        except MLEError as e:
            raise type(e)(f"{os.fspath(path)}: {e}") from None
    finally:
        buf = None
        _close_quietly(mapping)


def sign_file(path: str | os.PathLike[str], private_key: Any, output: str | os.PathLike[str] | None = None) -> int:
    """Sign the ``.mle`` file at ``path`` (replacing any signature), writing to ``output`` (default: in place).

    The layout and checksums are checked first; the content is not decrypted,
    so encrypted files are signed as they are (encrypt, then sign).
    """
    key = load_private_key(private_key)
    buf, mapping, _, _, sections = _map_checked(path)
    try:
        parts = _stored_parts(buf, [s for s in sections if s.kind_id != KIND_SIGNATURE])
        return _write_file(output or path, parts, signer=key)
    finally:
        parts = buf = None
        _close_quietly(mapping)


def encrypt_file(path: str | os.PathLike[str], encryption: Encryption, output: str | os.PathLike[str] | None = None) -> int:
    """Encrypt an unencrypted, unsigned ``.mle`` file (stored bytes as they are, compressed or not).

    Prefer ``write_mle(..., encryption=...)`` (or ``export_model(encrypt_key=...)``)
    so the plaintext never reaches the disk.
    """
    buf, mapping, _, flags, sections = _map_checked(path)
    try:
        if flags & FILE_ENCRYPTED:
            raise ValueError(f"{os.fspath(path)} is already encrypted")
        if flags & FILE_SIGNED:
            raise ValueError(f"{os.fspath(path)} is signed: encrypt the unsigned file, then sign the encrypted one")
        crypt = (encryption, encryption.section())
        parts = _stored_parts(buf, sections, encrypt=True) + [_bytes_part(KIND_ENCRYPTION, 0, crypt[1])]
        return _write_file(output or path, parts, encryption=crypt)
    finally:
        parts = buf = None
        _close_quietly(mapping)


def _close_quietly(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:
        pass  # a view is still referenced (e.g. by a traceback); the mapping closes when it is collected


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
    except MemoryError:
        raise MLEFormatError(
            f"{where}: cannot allocate the {raw_length} bytes the section table declares; "
            "lower max_decompressed_bytes to refuse such files up front"
        ) from None
    out.flags.writeable = False
    return out


def _check_header_flags(version: int, flags: int) -> None:
    if version == 1 and flags:
        state = "mark a signed or encrypted file" if flags & (FILE_SIGNED | FILE_ENCRYPTED) else "set unknown bits"
        raise MLEFormatError(f"header flags {flags:#x} {state}, which format version 1 does not support; expected 0")
    if flags & ~(FILE_SIGNED | FILE_ENCRYPTED):
        raise MLEFormatError(f"header flags {flags:#x} set unknown bits; known: 0x1 signed, 0x2 encrypted")


def _check_entry(version: int, file_flags: int, index: int, count: int, kind_id: int, sflags: int, crc: int, length: int, raw_length: int, where: str) -> None:
    """Per-entry rules of SPEC.md §4 that depend on the kind and the file flags."""
    kind = _KIND_NAMES.get(kind_id)
    known = _REQUIRED_KINDS if version == 1 else tuple(_KIND_NAMES)
    if kind_id not in known:
        state = "reserved for format version 2" if kind else "unknown"
        raise MLEFormatError(f"{where}: section kind {kind_id} is {state}; version {version} knows kinds {known[0]}-{known[-1]}")
    if kind_id in _REQUIRED_KINDS:
        allowed = SECTION_ZSTD | (SECTION_ENCRYPTED if file_flags & FILE_ENCRYPTED else 0)
        if sflags & ~allowed:
            raise MLEFormatError(
                f"{where}: flags {sflags:#x} set unknown or reserved bits "
                f"(known here: 0x1 zstd{', 0x2 encrypted' if allowed & SECTION_ENCRYPTED else ''})"
            )
        if file_flags & FILE_ENCRYPTED and not sflags & SECTION_ENCRYPTED:
            raise MLEFormatError(f"{where}: the file is encrypted but this section is not")
        if not sflags & (SECTION_ZSTD | SECTION_ENCRYPTED) and raw_length != length:
            raise MLEFormatError(f"{where}: uncompressed but raw length {raw_length} != stored length {length}")
        return
    if sflags:
        raise MLEFormatError(f"{where}: flags {sflags:#x} must be 0 for a {kind} section")
    if raw_length != length:
        raise MLEFormatError(f"{where}: raw length {raw_length} != stored length {length}")
    flag = FILE_SIGNED if kind_id == KIND_SIGNATURE else FILE_ENCRYPTED
    if not file_flags & flag:
        raise MLEFormatError(f"{where}: a {kind} section in a file whose header does not mark it signed or encrypted")
    if kind_id == KIND_SIGNATURE:
        if index != count - 1:
            raise MLEFormatError(f"{where}: the signature section must be the last section")
        if length != SIGNATURE_SIZE or crc != 0:
            raise MLEFormatError(f"{where}: expected {SIGNATURE_SIZE} bytes and checksum field 0, found {length} and {crc:#x}")


def _parse_header(buf: np.ndarray) -> tuple[int, int, list[SectionInfo]]:
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
    _check_header_flags(version, flags)
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
        _check_entry(version, flags, i, count, kind_id, sflags, crc, length, raw_length, where)
        if any(s.kind_id == kind_id for s in sections):
            raise MLEFormatError(f"{where}: duplicate {kind} section")
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
        sections.append(SectionInfo(kind, kind_id, sflags, offset, length, raw_length, crc))  # type: ignore[arg-type]
        cursor = end
    if cursor != n:
        raise MLEFormatError(f"sections end at byte {cursor} but the file is {n} bytes (trailing bytes)")
    present = {s.kind_id for s in sections}
    missing = [_KIND_NAMES[k] for k in _REQUIRED_KINDS if k not in present]
    if missing:
        raise MLEFormatError(f"required section(s) missing: {', '.join(missing)}")
    for flag, kind_id in ((FILE_SIGNED, KIND_SIGNATURE), (FILE_ENCRYPTED, KIND_ENCRYPTION)):
        if flags & flag and kind_id not in present:
            raise MLEFormatError(f"header flags mark the file signed or encrypted, but it has no {_KIND_NAMES[kind_id]} section")
    return version, flags, sections


def _check_crc(stored: np.ndarray, section: SectionInfo) -> None:
    if zlib.crc32(stored) != section.checksum:
        raise MLEFormatError(f"{section.kind} section: checksum mismatch, the section is corrupted")


def _check_crcs(buf: np.ndarray, sections: list[SectionInfo]) -> None:
    for s in sections:
        if s.kind_id != KIND_SIGNATURE:
            _check_crc(buf[s.offset : s.offset + s.length], s)


def _int(value: Any, where: str, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MLEFormatError(f"{where}: {field} must be a non-negative int, got {value!r}")
    return value


def _tensor_specs(index: Any, data_length: int) -> dict[str, TensorSpec]:
    """The tensor index checked against a tensor_data section of ``data_length`` bytes (its bytes unread)."""
    if not isinstance(index, list):
        raise MLEFormatError(f"tensor_index section: expected a list, got {type(index).__name__}")
    specs: dict[str, TensorSpec] = {}
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
        if name in specs:
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
        cursor = offset + nbytes
        if cursor > data_length:
            raise MLEFormatError(f"{where}: bytes {offset}..{cursor} run past the {data_length}-byte tensor_data section")
        specs[name] = TensorSpec(tuple(shape), dt, offset, nbytes, code)
    if cursor != data_length:
        raise MLEFormatError(f"tensor_data section is {data_length} bytes but its tensors end at byte {cursor}")
    return specs


def _tensor_arrays(specs: Mapping[str, TensorSpec], data: np.ndarray) -> dict[str, np.ndarray]:
    """The tensors of checked ``specs`` as views of ``data``, after checking padding and bool bytes."""
    tensors: dict[str, np.ndarray] = {}
    cursor = 0
    for i, (name, spec) in enumerate(specs.items()):
        where = f"tensor {name!r} (tensor_index[{i}])"
        end = spec.offset + spec.nbytes
        if data[cursor : spec.offset].any():
            raise MLEFormatError(f"{where}: padding bytes before the tensor must be zero")
        raw = data[spec.offset : end]
        if spec.code == "bool" and (raw > 1).any():
            raise MLEFormatError(f"{where}: bool tensor holds bytes other than 0 and 1")
        arr = raw.view(spec.dtype).reshape(spec.shape)
        if sys.byteorder == "big" and spec.dtype.byteorder == "<":
            arr = arr.astype(spec.dtype.newbyteorder("="))
            arr.flags.writeable = False
        tensors[name] = arr
        cursor = end
    return tensors


def _deferred_tensors(
    specs: dict[str, TensorSpec], data: np.ndarray, section: SectionInfo, in_place: bool, prefix: str
) -> TensorMap:
    """A :class:`TensorMap` whose first read checks the section's CRC (when ``in_place``: ``data`` is its
    stored bytes, not checked at load) and then the tensors' padding and bool bytes."""

    def load() -> dict[str, np.ndarray]:
        try:
            if in_place:
                _check_crc(data, section)
            return _tensor_arrays(specs, data)
        except MLEFormatError as e:
            raise MLEFormatError(f"{prefix}{e}") from None

    return TensorMap(specs, load)


def _unverifiable(error: MLEFormatError) -> MLESecurityError:
    """A signature was required, but the file is too damaged to find or check it."""
    return MLESecurityError(f"the signature cannot be verified, the file is damaged or was tampered with: {error}")


def _public_keys(public_key: Any) -> list[Any]:
    keys = list(public_key) if isinstance(public_key, (list, tuple)) else [public_key]
    if not keys:
        raise MLESecurityError("public_key= is an empty list: no key to verify the signature with")
    return [load_public_key(k) for k in keys]


def _parse(
    buf: np.ndarray, mapping: mmap.mmap | None, max_decompressed_bytes: int,
    public_key: Any, key: Any, password: Any, prefix: str, lazy_tensors: bool,
) -> MLEFile:
    try:
        version, flags, sections = _parse_header(buf)
    except MLEFormatError as e:
        if public_key is None:
            raise
        raise _unverifiable(e) from None
    by_kind = {s.kind_id: s for s in sections}
    signature = by_kind.get(KIND_SIGNATURE)
    signer = None
    if public_key is not None:
        if signature is None:
            raise MLESecurityError("the file is not signed, but a signature was required (sign it with mle-sign)")
        keys = _public_keys(public_key)
        try:
            signer = verify_signature(buf, signature.offset, keys)
        except MLEFormatError as e:
            raise _unverifiable(e) from None
    elif signature is not None:
        check_signature_layout(buf[signature.offset : signature.offset + signature.length])
    data = by_kind[KIND_TENSOR_DATA]
    in_place = not data.flags  # read in place (neither compressed nor encrypted): its CRC waits for the first read
    _check_crcs(buf, [s for s in sections if not (in_place and s is data)])
    encryption = by_kind.get(KIND_ENCRYPTION)
    decryptor = None
    if encryption is not None:
        if key is None and password is None:
            raise MLESecurityError("the file is encrypted: pass key= (32 raw bytes) or password=")
        stored = buf[encryption.offset : encryption.offset + encryption.length]
        decryptor = Decryptor(stored, version, key=key, password=password)
    elif key is not None or password is not None:
        raise MLESecurityError("a key or password was given, but the file is not encrypted (was it replaced?)")
    total_raw = sum(s.raw_length for s in sections if s.compressed)
    if total_raw > max_decompressed_bytes:
        raise MLEFormatError(
            f"compressed sections declare {total_raw} bytes in all, over max_decompressed_bytes="
            f"{max_decompressed_bytes}; raise the limit if you trust this file"
        )
    decoded: dict[str, np.ndarray] = {}
    for s in sections:
        if s.kind_id not in _REQUIRED_KINDS:
            continue
        where = f"{s.kind} section"
        stored = buf[s.offset : s.offset + s.length]
        if decryptor is not None:
            plain = decryptor.plain_length(s.length, where)
            if not s.compressed and plain != s.raw_length:
                raise MLEFormatError(f"{where}: decrypts to {plain} bytes, section table says {s.raw_length}")
            stored = decryptor.decrypt(stored, s.kind_id, s.flags, s.raw_length, where)
        decoded[s.kind] = _decompress(stored, s.raw_length, where) if s.compressed else stored
    metadata = unpack_plain(memoryview(decoded["metadata"]), "metadata")
    graph = unpack_plain(memoryview(decoded["graph"]), "graph")
    for kind, value in (("metadata", metadata), ("graph", graph)):
        if not isinstance(value, dict):
            raise MLEFormatError(f"{kind} section: expected a map, got {type(value).__name__}")
    index = unpack_plain(memoryview(decoded["tensor_index"]), "tensor_index")
    specs = _tensor_specs(index, data.raw_length)
    tensors = _deferred_tensors(specs, decoded["tensor_data"], data, in_place, prefix if lazy_tensors else "")
    if not lazy_tensors:
        tensors.verify()  # its errors get the prefix from read_mle
    return MLEFile(
        metadata=metadata,
        graph=graph,
        tensors=tensors,
        format_version=version,
        file_size=len(buf),
        sections=sections,
        buffer=buf,
        mapping=mapping,
        signer=signer,
    )


def read_mle(
    source: Source,
    *,
    max_decompressed_bytes: int = 4 << 30,
    public_key: Any = None,
    key: bytes | None = None,
    password: str | bytes | None = None,
    lazy_tensors: bool = False,
) -> MLEFile:
    """Open and fully validate a ``.mle`` file given as a path or as bytes.

    Uncompressed tensors of unencrypted files are read-only zero-copy views of
    the file's mmap (or of the given bytes); encrypted or compressed sections
    are decoded into memory, never to disk.

    Args:
      source: a path, or the file's bytes.
      max_decompressed_bytes: refuse files whose compressed sections declare
        more than this many bytes in all, before allocating anything.
      public_key: if given (an Ed25519 key, raw 32 bytes, PEM, a key file
        path, or a list of those), the file must carry a signature by one of
        these keys over its whole content; it is checked before any section is
        read. ``MLEFile.signer`` is then the raw key that verified.
      key, password: the AES-256 key (32 raw bytes) or password of an
        encrypted file; giving one for an unencrypted file is an error.
      lazy_tensors: defer the checks that read the tensor data (the
        checksum of an uncompressed, unencrypted tensor_data section, zero
        padding, bool bytes) to the first read of a tensor value
        (:class:`TensorMap`), which raises MLEFormatError if they fail.
        Everything else is checked now.

    Raises:
      MLEFormatError: the file is invalid.
      MLESecurityError: a missing or bad signature, a missing or wrong key or
        password, or encrypted data that fails authentication.
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
                error = MLEFormatError(f"{prefix}file is {size} bytes, shorter than the {HEADER_SIZE}-byte header")
                raise error if public_key is None else _unverifiable(error)
            mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        buf = np.frombuffer(mapping, np.uint8)
    buf.flags.writeable = False
    try:
        return _parse(buf, mapping, max_decompressed_bytes, public_key, key, password, prefix, lazy_tensors)
    except (MLEFormatError, MLESecurityError) as e:
        del buf
        if mapping is not None:
            _close_quietly(mapping)
        raise type(e)(f"{prefix}{e}") from None
