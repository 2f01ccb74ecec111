"""``SecurityUtils``: keys, signing, verification and encryption of ``.mle`` files.

Example:
    >>> from mlejax import SecurityUtils, load_model                       # doctest: +SKIP
    >>> public_key, private_key = SecurityUtils.generate_keypair()          # doctest: +SKIP
    >>> SecurityUtils.sign_model("model.mle", private_key)                  # doctest: +SKIP
    >>> m = load_model("model.mle", verify_signature=True, public_key=public_key)  # doctest: +SKIP

Signatures are Ed25519 over the whole file (``format/SPEC.md`` §10);
encryption is AES-256-GCM with a raw key or an scrypt password (§11); the
access policy and this machine's trust settings are described in
:mod:`mlejax.format.policy`. Keys are accepted as ``cryptography`` key
objects, raw 32-byte strings, PEM, or key file paths.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .format.container import encrypt_file, sign_file, verify_file
from .format.encryption import DEFAULT_SCRYPT_N, Encryption, random_key
from .format.policy import make_policy
from .format.signing import fingerprint, load_private_key, load_public_key, public_bytes

__all__ = ["SecurityUtils", "encryption_for"]


def encryption_for(key: bytes | None = None, password: str | None = None, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> Encryption | None:
    """An :class:`Encryption` for a raw 32-byte key or a password (not both); None if neither."""
    if key is not None and password is not None:
        raise ValueError("give an encryption key or a password, not both")
    if key is not None:
        return Encryption.with_key(key)
    if password is not None:
        return Encryption.with_password(password, n=scrypt_n)
    return None


def _write_private(path: str | os.PathLike, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class SecurityUtils:
    """Static helpers for model provenance and confidentiality (names as in the mle-runtime seed)."""

    @staticmethod
    def generate_keypair() -> tuple[bytes, bytes]:
        """A new Ed25519 key pair as ``(public_key, private_key)``, each 32 raw bytes."""
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        return public_bytes(private.public_key()), raw

    @staticmethod
    def generate_key() -> bytes:
        """A new random AES-256 key (32 raw bytes) for ``encrypt_key=`` / ``key=``."""
        return random_key()

    @staticmethod
    def save_private_key(private_key: Any, path: str | os.PathLike, *, password: str | None = None, raw: bool = False) -> None:
        """Write a private key (file mode 0600): PKCS#8 PEM, encrypted if ``password``; or 32 raw bytes."""
        key = load_private_key(private_key)
        if raw:
            if password is not None:
                raise ValueError("raw private keys cannot be password-protected; use PEM")
            data = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        else:
            enc = (
                serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
            )
            data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
        _write_private(path, data)

    @staticmethod
    def save_public_key(public_key: Any, path: str | os.PathLike, *, raw: bool = False) -> None:
        """Write a public key as SubjectPublicKeyInfo PEM, or 32 raw bytes."""
        key = load_public_key(public_key)
        if raw:
            data = public_bytes(key)
        else:
            data = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with open(path, "wb") as fh:
            fh.write(data)

    @staticmethod
    def load_private_key(source: Any, password: str | None = None) -> Ed25519PrivateKey:
        """A private key from raw bytes, PEM, or a file path."""
        return load_private_key(source, password)

    @staticmethod
    def load_public_key(source: Any) -> Any:
        """A public key from raw bytes, PEM, or a file path."""
        return load_public_key(source)

    @staticmethod
    def fingerprint(key: Any) -> str:
        """A short hex id of a key (first 16 bytes of SHA-256 of the raw public key)."""
        return fingerprint(key)

    @staticmethod
    def sign_model(path: str | os.PathLike, private_key: Any, output_path: str | os.PathLike | None = None) -> dict:
        """Sign a ``.mle`` file in place (or into ``output_path``); any previous signature is replaced.

        Returns ``{"path", "file_size_bytes", "fingerprint"}``.
        """
        key = load_private_key(private_key)
        size = sign_file(path, key, output_path)
        return {"path": os.fspath(output_path or path), "file_size_bytes": size, "fingerprint": fingerprint(key)}

    @staticmethod
    def verify_model(path: str | os.PathLike, public_key: Any) -> dict:
        """Check a file's signature against ``public_key`` (one or a list) without loading the model.

        Returns ``{"valid": True, "fingerprint": <signer>}``; raises
        :class:`~mlejax.MLESecurityError` for unsigned, tampered or foreign files.
        """
        signer = verify_file(path, public_key)
        return {"valid": True, "fingerprint": fingerprint(signer)}

    @staticmethod
    def encrypt_model(
        path: str | os.PathLike, output_path: str | os.PathLike | None = None, *,
        key: bytes | None = None, password: str | None = None, scrypt_n: int = DEFAULT_SCRYPT_N,
    ) -> int:
        """Encrypt an existing unsigned file (sign afterwards). Returns the new size.

        Prefer ``export_model(..., encrypt_key=...)``: this post-step reads a
        plaintext file that already sits on disk.
        """
        enc = encryption_for(key, password, scrypt_n=scrypt_n)
        if enc is None:
            raise ValueError("encrypt_model needs key= (32 raw bytes) or password=")
        return encrypt_file(path, enc, output_path)

    make_policy = staticmethod(make_policy)
