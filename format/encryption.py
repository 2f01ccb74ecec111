"""AES-256-GCM encryption of ``.mle`` sections (the ``encryption`` section, SPEC.md §11).

An encrypted file has one ``encryption`` section (msgpack map, not encrypted)::

    {"cipher": "AES-256-GCM", "chunk_size": int,
     "kdf": {"name": "raw"} | {"name": "scrypt", "salt": bin, "n": int, "r": int, "p": int},
     "key_check": bin (12-byte nonce + 16-byte tag)}

and every metadata, graph, tensor_index and tensor_data section is stored as
chunks of ``nonce (12 bytes, random) || ciphertext || tag (16 bytes)``, each
chunk holding ``chunk_size`` plaintext bytes except the last (1..chunk_size
bytes; 0 only for an empty section). The plaintext is the section's stored
form before encryption (a zstd frame for compressed sections). Each chunk's
associated data binds the file's format version, the SHA-256 of the encryption
section, the section's kind, flags and raw length, and the chunk's index and
whether it is the last, so no chunk or section can be moved, dropped, repeated
or taken from another file. A wrong key or password is detected by
``key_check`` before any section is decrypted. Decryption is into memory only.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._plain import pack_plain, unpack_plain
from .errors import MLEFormatError, MLESecurityError

__all__ = ["Encryption", "Decryptor", "ChunkEncrypter", "DEFAULT_SCRYPT_N", "encrypted_length", "random_key"]

CIPHER = "AES-256-GCM"
NONCE, TAG = 12, 16
OVERHEAD = NONCE + TAG
#: scrypt cost for passwords when none is given (about 32 MiB and 0.1 s per derivation).
DEFAULT_SCRYPT_N = 2**15
DEFAULT_CHUNK_SIZE = 4 << 20
#: Largest plaintext per chunk a reader accepts (AES-GCM calls take < 2**31 bytes).
MAX_CHUNK_SIZE = 1 << 30
#: Largest scrypt memory (128 * n * r * p bytes) a reader or writer accepts.
MAX_SCRYPT_MEMORY = 256 << 20
_KEY_CHECK_AD = b"mlejax key check v1\x00"
_AD_PREFIX = b"mlejax aead v1\x00"
_AD = struct.Struct("<IHHQQB")  # version, kind, flags, raw_length, chunk_index, last


def encrypted_length(plain: int, chunk_size: int) -> int:
    """Stored length of ``plain`` bytes encrypted in chunks of ``chunk_size``."""
    chunks = max(1, -(-plain // chunk_size))
    return plain + chunks * OVERHEAD


def _check_scrypt(n: Any, r: Any, p: Any) -> None:
    """ValueError unless scrypt(n, r, p) can run within :data:`MAX_SCRYPT_MEMORY`.

    As OpenSSL (which derives the key) requires: ``n`` a power of two with
    ``2 <= n < 2**(16*r)``; its memory is ``128*r*(n + p)`` bytes and its work
    ``128*n*r*p``, both bounded by ``128*n*r*p <= MAX_SCRYPT_MEMORY``.
    """
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (n, r, p))
    if not ok or n < 2 or n & (n - 1) or 128 * n * r * p > MAX_SCRYPT_MEMORY or n.bit_length() > 16 * r:
        raise ValueError(
            f"scrypt parameters n={n!r}, r={r!r}, p={p!r} are invalid: n must be a power of two with "
            f"2 <= n < 2**(16*r), and 128*n*r*p at most {MAX_SCRYPT_MEMORY} bytes"
        )


def _derive(password: str | bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # cryptography is imported on first use

    pw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(pw)


def _raw_key(key: Any) -> bytes:
    if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != 32:
        raise MLESecurityError(
            f"an AES-256 key is 32 raw bytes; got {type(key).__name__}"
            + (f" of length {len(key)}" if isinstance(key, (bytes, bytearray, memoryview)) else "")
        )
    return bytes(key)


@dataclass
class Encryption:
    """How to encrypt a file: build with :meth:`with_key` or :meth:`with_password`."""

    key: bytes = field(repr=False)
    kdf: dict
    chunk_size: int = DEFAULT_CHUNK_SIZE

    @classmethod
    def with_key(cls, key: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> "Encryption":
        """Encrypt with a raw 32-byte AES-256 key."""
        return cls(_raw_key(key), {"name": "raw"}, chunk_size)

    @classmethod
    def with_password(
        cls, password: str | bytes, *, n: int = DEFAULT_SCRYPT_N, r: int = 8, p: int = 1,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> "Encryption":
        """Encrypt with a key derived from ``password`` by scrypt (random 16-byte salt, stored in the file)."""
        if not isinstance(password, (str, bytes)) or not password:
            raise ValueError("password must be a non-empty str or bytes")
        _check_scrypt(n, r, p)
        salt = secrets.token_bytes(16)
        return cls(_derive(password, salt, n, r, p), {"name": "scrypt", "salt": salt, "n": n, "r": r, "p": p}, chunk_size)

    def section(self) -> bytes:
        """The encryption section's bytes (fresh ``key_check`` nonce each call)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not isinstance(self.chunk_size, int) or not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be an int in 1..{MAX_CHUNK_SIZE}, got {self.chunk_size!r}")
        nonce = secrets.token_bytes(NONCE)
        check = nonce + AESGCM(self.key).encrypt(nonce, b"", _KEY_CHECK_AD)
        params = {"cipher": CIPHER, "chunk_size": self.chunk_size, "kdf": self.kdf, "key_check": check}
        return pack_plain(params, "encryption")


def _ad(context: bytes, version: int, kind: int, flags: int, raw_length: int, index: int, last: bool) -> bytes:
    return context + _AD.pack(version, kind, flags, raw_length, index, last)


def _context(section: bytes) -> bytes:
    return _AD_PREFIX + hashlib.sha256(section).digest()


class ChunkEncrypter:
    """Turns a section's stored bytes, fed in any pieces, into encrypted chunks."""

    def __init__(self, key: bytes, chunk_size: int, section: bytes, version: int, kind: int, flags: int, raw_length: int) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._chunk = chunk_size
        self._head = (_context(section), version, kind, flags, raw_length)
        self._buf = bytearray()
        self._index = 0

    def _seal(self, data: bytes | bytearray, last: bool) -> bytes:
        nonce = secrets.token_bytes(NONCE)
        ct = self._aead.encrypt(nonce, bytes(data), _ad(*self._head, self._index, last))
        self._index += 1
        return nonce + ct

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """Add bytes; return the chunks that are now complete (never the last one)."""
        self._buf += data
        out = []
        while len(self._buf) > self._chunk:
            out.append(self._seal(self._buf[: self._chunk], False))
            del self._buf[: self._chunk]
        return out

    def finish(self) -> bytes:
        """The last chunk."""
        return self._seal(self._buf, True)


class Decryptor:
    """Decrypts the sections of one file, given its encryption section and the key or password."""

    def __init__(self, section: np.ndarray, version: int, *, key: Any = None, password: Any = None) -> None:
        raw = section.tobytes()
        params = unpack_plain(memoryview(raw), "encryption")
        self.chunk_size, kdf, check = _parse_params(params)
        if key is not None:
            if kdf["name"] != "raw":
                raise MLESecurityError("this file is encrypted with a password; pass password=, not key=")
            self._key = _raw_key(key)
        else:
            if kdf["name"] != "scrypt":
                raise MLESecurityError("this file is encrypted with a raw key; pass key=, not password=")
            if not isinstance(password, (str, bytes)):
                raise MLESecurityError(f"password must be str or bytes, got {type(password).__name__}")
            self._key = _derive(password, kdf["salt"], kdf["n"], kdf["r"], kdf["p"])
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(self._key)
        try:
            self._aead.decrypt(check[:NONCE], check[NONCE:], _KEY_CHECK_AD)
        except InvalidTag:
            raise MLESecurityError("wrong key or password: this file was encrypted with another one") from None
        self._context = _context(raw)
        self._version = version

    def plain_length(self, stored: int, where: str) -> int:
        """Plaintext length of a section stored in ``stored`` bytes (format error if impossible)."""
        step = self.chunk_size + OVERHEAD
        chunks = max(1, -(-stored // step))
        last = stored - (chunks - 1) * step
        if last < OVERHEAD or (chunks > 1 and last == OVERHEAD):
            raise MLEFormatError(
                f"{where}: {stored} stored bytes cannot hold AES-GCM chunks of {self.chunk_size} bytes "
                f"(each chunk adds {OVERHEAD} bytes; the last holds 1..{self.chunk_size})"
            )
        return stored - chunks * OVERHEAD

    def decrypt(self, stored: np.ndarray, kind: int, flags: int, raw_length: int, where: str) -> np.ndarray:
        """Decrypt one section into a fresh 64-byte-aligned read-only buffer."""
        from cryptography.exceptions import InvalidTag

        plain = self.plain_length(len(stored), where)
        out = np.empty(plain + 64, np.uint8)
        start = -out.ctypes.data % 64
        out = out[start : start + plain]
        step = self.chunk_size + OVERHEAD
        view = memoryview(stored)
        pos, index = 0, 0
        for begin in range(0, len(stored), step):
            chunk = view[begin : begin + step]
            n = len(chunk) - OVERHEAD
            last = begin + step >= len(stored)
            ad = _ad(self._context, self._version, kind, flags, raw_length, index, last)
            try:
                self._aead.decrypt_into(bytes(chunk[:NONCE]), chunk[NONCE:], ad, memoryview(out)[pos : pos + n])
            except InvalidTag:
                raise MLESecurityError(
                    f"{where}: authentication failed on chunk {index}: the file was tampered with "
                    "(the key is right, but this encrypted data is not what was written with it)"
                ) from None
            pos += n
            index += 1
        out.flags.writeable = False
        return out


def _parse_params(params: Any) -> tuple[int, dict, bytes]:
    def bad(msg: str) -> MLEFormatError:
        return MLEFormatError(f"encryption section: {msg}")

    keys = {"cipher", "chunk_size", "kdf", "key_check"}
    if not isinstance(params, dict) or set(params) != keys:
        raise bad(f"expected a map with keys {sorted(keys)}, got {params!r:.200}")
    if params["cipher"] != CIPHER:
        raise bad(f"cipher {params['cipher']!r:.50} is not supported; this mlejax knows {CIPHER!r}")
    chunk = params["chunk_size"]
    if not isinstance(chunk, int) or isinstance(chunk, bool) or not 1 <= chunk <= MAX_CHUNK_SIZE:
        raise bad(f"chunk_size must be an int in 1..{MAX_CHUNK_SIZE}, got {chunk!r:.50}")
    check = params["key_check"]
    if not isinstance(check, bytes) or len(check) != OVERHEAD:
        raise bad(f"key_check must be {OVERHEAD} bytes")
    kdf = params["kdf"]
    if kdf == {"name": "raw"}:
        return chunk, kdf, check
    if not isinstance(kdf, dict) or set(kdf) != {"name", "salt", "n", "r", "p"} or kdf["name"] != "scrypt":
        raise bad(f"kdf must be {{'name': 'raw'}} or scrypt with salt, n, r, p; got {kdf!r:.200}")
    if not isinstance(kdf["salt"], bytes) or not 8 <= len(kdf["salt"]) <= 64:
        raise bad("scrypt salt must be 8..64 bytes")
    try:
        _check_scrypt(kdf["n"], kdf["r"], kdf["p"])
    except ValueError as e:
        raise bad(str(e)) from None
    return chunk, kdf, check


def random_key() -> bytes:
    """A fresh random 32-byte AES-256 key."""
    return os.urandom(32)
