"""Ed25519 signatures over a whole ``.mle`` file (the ``signature`` section, SPEC.md §10).

The signature section is the last section of a signed file and holds
:data:`SIGNATURE_SIZE` bytes::

    u32 algorithm (2)   u32 reserved (0)   32 bytes signer public key   64 bytes signature

The signature is Ed25519 (RFC 8032) over
``SIGNED_CONTEXT + section[0:40] + SHA-512(file[0:offset])`` where ``offset``
is where the signature section starts and ``section[0:40]`` is the algorithm,
reserved and signer fields: every byte of the file but the 64 signature bytes
is signed (header, section table, every other section, all padding and the
signer field), so nothing can be changed, swapped, reordered or appended.
Algorithm 1 (written by earlier releases) signs ``SIGNED_CONTEXT_V1 + SHA-512(file[0:offset])``
only, leaving the signer field unsigned; such files still verify. The
embedded public key only names the signer; verification always uses the keys
the caller trusts.

Keys are accepted as ``cryptography`` key objects, raw 32-byte strings, PEM
(bytes or str), or the path of a file holding either.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import Any, Iterable, Union

import numpy as np

from .errors import MLEFormatError, MLESecurityError

__all__ = [
    "SIGNATURE_SIZE",
    "KeyLike",
    "load_private_key",
    "load_public_key",
    "public_bytes",
    "fingerprint",
    "signature_payload",
    "verify_signature",
    "check_signature_layout",
]

#: Size of the signature section's content.
SIGNATURE_SIZE = 104
#: Algorithm 2: Ed25519 over the section's first 40 bytes and the SHA-512 of the file before it (written).
ALGORITHM_ED25519_SHA512 = 2
#: Algorithm 1: Ed25519 over the SHA-512 of the file before the section; the signer field is unsigned (read only).
ALGORITHM_ED25519_SHA512_V1 = 1
#: Domain separation: prefixed to the signed message (one per algorithm).
SIGNED_CONTEXT = b"mlejax .mle signature v2\x00"
SIGNED_CONTEXT_V1 = b"mlejax .mle signature v1\x00"
_PAYLOAD = struct.Struct("<II32s64s")
#: The signed fields of the section: algorithm, reserved, signer.
_SIGNED_FIELDS = 40
_HASH_CHUNK = 64 << 20
assert _PAYLOAD.size == SIGNATURE_SIZE

KeyLike = Union[bytes, bytearray, str, "os.PathLike[str]", "Ed25519PrivateKey", "Ed25519PublicKey"]


def _key_bytes(key: Any, what: str) -> bytes:
    """The bytes of a raw/PEM key given inline or as a file path."""
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, str) and key.lstrip().startswith("-----BEGIN"):
        return key.encode("ascii")
    if isinstance(key, (str, os.PathLike)):
        try:
            with open(key, "rb") as fh:
                return fh.read(1 << 16)
        except OSError as e:
            raise MLESecurityError(f"cannot read {what} from {os.fspath(key)!r}: {e}") from None
    raise TypeError(
        f"{what} must be an Ed25519 key object, 32 raw bytes, PEM, or a key file path; got {type(key).__name__}"
    )


def load_private_key(key: Any, password: bytes | str | None = None) -> Ed25519PrivateKey:
    """An Ed25519 private key from a key object, 32 raw bytes, PEM (optionally password-protected) or a path."""
    from cryptography.hazmat.primitives import serialization  # cryptography: imported on first use
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(key, Ed25519PrivateKey):
        return key
    data = _key_bytes(key, "private key")
    if len(data) == 32 and not data.startswith(b"-----"):
        return Ed25519PrivateKey.from_private_bytes(data)
    pw = password.encode() if isinstance(password, str) else password
    try:
        loaded = serialization.load_pem_private_key(data, password=pw)
    except (ValueError, TypeError) as e:
        raise MLESecurityError(f"not a usable Ed25519 private key (PEM or 32 raw bytes): {e}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise MLESecurityError(f"private key is {type(loaded).__name__}; mlejax signs with Ed25519 keys only")
    return loaded


def load_public_key(key: Any) -> Ed25519PublicKey:
    """An Ed25519 public key from a key object, 32 raw bytes, PEM or a path (a private key yields its public key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    data = _key_bytes(key, "public key")
    if len(data) == 32 and not data.startswith(b"-----"):
        return Ed25519PublicKey.from_public_bytes(data)
    if b"PRIVATE KEY" in data:
        return load_private_key(data).public_key()
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise MLESecurityError(f"not a usable Ed25519 public key (PEM or 32 raw bytes): {e}") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise MLESecurityError(f"public key is {type(loaded).__name__}; mlejax verifies Ed25519 signatures only")
    return loaded


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte form of a public key."""
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Any) -> str:
    """Short hex id of a public (or private) key: the first 16 bytes of SHA-256 of its raw form."""
    return hashlib.sha256(public_bytes(load_public_key(key))).hexdigest()[:32]


def _message(signed: np.ndarray, head: bytes) -> bytes:
    """The message signed under the algorithm in ``head`` (the section's first 40 bytes)."""
    h = hashlib.sha512()
    for i in range(0, len(signed), _HASH_CHUNK):
        h.update(memoryview(signed[i : i + _HASH_CHUNK]))
    if int.from_bytes(head[:4], "little") == ALGORITHM_ED25519_SHA512_V1:
        return SIGNED_CONTEXT_V1 + h.digest()
    return SIGNED_CONTEXT + head + h.digest()


def signature_payload(signed: np.ndarray, private_key: Ed25519PrivateKey) -> bytes:
    """The signature section content for a file whose bytes before the section are ``signed``."""
    head = _PAYLOAD.pack(ALGORITHM_ED25519_SHA512, 0, public_bytes(private_key.public_key()), bytes(64))[:_SIGNED_FIELDS]
    return head + private_key.sign(_message(signed, head))


def check_signature_layout(payload: np.ndarray) -> tuple[bytes, bytes]:
    """Parse the signature section; return (signer public key, signature). Format errors only."""
    if len(payload) != SIGNATURE_SIZE:
        raise MLEFormatError(f"signature section: {len(payload)} bytes, expected {SIGNATURE_SIZE}")
    algorithm, reserved, signer, signature = _PAYLOAD.unpack(payload.tobytes())
    if algorithm not in (ALGORITHM_ED25519_SHA512, ALGORITHM_ED25519_SHA512_V1):
        raise MLEFormatError(
            f"signature section: algorithm {algorithm} is unknown; this mlejax knows 2 (Ed25519, signer signed) "
            "and 1 (Ed25519, older files); upgrade mlejax"
        )
    if reserved:
        raise MLEFormatError("signature section: reserved bytes 4..7 must be zero")
    return signer, signature


def verify_signature(buf: np.ndarray, offset: int, public_keys: Iterable[Ed25519PublicKey]) -> bytes:
    """Check the signature section at ``offset`` of ``buf`` against any of ``public_keys``.

    Returns the raw public key that verified; raises :class:`MLESecurityError` otherwise.
    """
    from cryptography.exceptions import InvalidSignature

    payload = buf[offset : offset + SIGNATURE_SIZE]
    signer, signature = check_signature_layout(payload)
    keys = list(public_keys)
    message = _message(buf[:offset], payload[:_SIGNED_FIELDS].tobytes())
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return public_bytes(key)
    trusted = ", ".join(fingerprint(k) for k in keys)
    if any(public_bytes(k) == signer for k in keys):
        raise MLESecurityError(
            "signature check failed: the file was modified after it was signed "
            f"(signer {fingerprint(signer)} is trusted, but the content does not match the signature)"
        )
    raise MLESecurityError(
        f"signature check failed: the file claims signer {fingerprint(signer)}, which is not a trusted key "
        f"(trusted: {trusted}), or the file was modified after signing"
    )
