"""Byte-level .mle layout helpers for tests, re-encoded from format/SPEC.md (not imported from the reader)."""

from __future__ import annotations

import struct
import zlib
from typing import Any

HEADER = struct.Struct("<8sIIIIQQ20sI")  # magic version flags count table_crc table_off file_size reserved crc
ENTRY = struct.Struct("<HHIQQQ")  # kind flags checksum offset stored_length raw_length
MAGIC = b"\x89MLE\r\n\x1a\n"
META, GRAPH, INDEX, DATA, SIGNATURE, ENCRYPTION = 1, 2, 3, 4, 5, 6


def _crc(kind: int, payload: bytes) -> int:
    return 0 if kind == SIGNATURE else zlib.crc32(payload)  # the signature section has checksum field 0


def _align(n: int) -> int:
    return -(-n // 64) * 64


def sections_of(raw: bytes) -> list[list[Any]]:
    """[kind, flags, stored payload, raw_length] per section of a valid file."""
    count = HEADER.unpack_from(raw)[3]
    out = []
    for i in range(count):
        kind, flags, _, off, length, raw_len = ENTRY.unpack_from(raw, 64 + i * 32)
        out.append([kind, flags, raw[off : off + length], raw_len])
    return out


def build(sections: list[list[Any]], *, version: int = 2, flags: int = 0) -> bytes:
    """Lay out sections canonically with correct checksums."""
    pos = 64 + 32 * len(sections)
    table, body = b"", b""
    for kind, sflags, payload, raw_len in sections:
        off = _align(pos)
        body += bytes(off - pos) + payload
        table += ENTRY.pack(kind, sflags, _crc(kind, payload), off, len(payload), raw_len)
        pos = off + len(payload)
    return seal(HEADER.pack(MAGIC, version, flags, len(sections), zlib.crc32(table), 64, pos, bytes(20), 0) + table + body)


def seal(raw: bytes) -> bytes:
    """Recompute the header checksum only."""
    raw = bytearray(raw)
    raw[60:64] = struct.pack("<I", zlib.crc32(raw[:60]))
    return bytes(raw)


def fix_checksums(raw: bytes) -> bytes:
    """Recompute section, table and header checksums for whatever the table now says."""
    raw = bytearray(raw)
    count = HEADER.unpack_from(raw)[3]
    for i in range(min(count, (len(raw) - 64) // 32)):
        at = 64 + i * 32
        kind, flags, _, off, length, raw_len = ENTRY.unpack_from(raw, at)
        ENTRY.pack_into(raw, at, kind, flags, _crc(kind, bytes(raw[off : off + length])), off, length, raw_len)
    raw[20:24] = struct.pack("<I", zlib.crc32(raw[64 : 64 + 32 * count]))
    return seal(raw)


def set_entry(raw: bytes, i: int, **fields: int) -> bytes:
    raw = bytearray(raw)
    names = ["kind", "flags", "checksum", "offset", "length", "raw_length"]
    values = dict(zip(names, ENTRY.unpack_from(raw, 64 + i * 32)))
    values.update(fields)
    ENTRY.pack_into(raw, 64 + i * 32, *values.values())
    return fix_checksums(raw)


def set_header(raw: bytes, **fields: Any) -> bytes:
    names = ["magic", "version", "flags", "count", "table_crc", "table_off", "file_size", "reserved", "crc"]
    values = dict(zip(names, HEADER.unpack_from(raw)))
    values.update(fields)
    return seal(HEADER.pack(*values.values()) + raw[64:])


def flags_of(raw: bytes) -> int:
    """The header's file flags."""
    return HEADER.unpack_from(raw)[2]
