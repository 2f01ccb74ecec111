"""Console scripts ``mle-keygen``, ``mle-sign`` and ``mle-verify``.

    mle-keygen publisher                    # publisher.key (private, 0600) + publisher.pub (PEM)
    mle-sign model.mle --key publisher.key  # sign in place (or -o signed.mle)
    mle-verify model.mle --key publisher.pub   # exit 0 if valid, 1 if not

A password-protected private key is read with ``--password-env VAR``.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from .cli import add_debug_flag, password_from_env, run_cli
from .security import SecurityUtils

__all__ = ["keygen_main", "sign_main", "verify_main"]


def _run(fn, argv: Sequence[str] | None, parser: argparse.ArgumentParser) -> int:
    """Run ``fn(args)`` under :func:`mlejax.cli.run_cli` and print what it returns."""

    def body(args: argparse.Namespace) -> int:
        print(fn(args))
        return 0

    return run_cli(add_debug_flag(parser), argv, body)


def keygen_main(argv: Sequence[str] | None = None) -> int:
    """``mle-keygen PREFIX``: write an Ed25519 key pair to PREFIX.key and PREFIX.pub."""
    p = argparse.ArgumentParser(prog="mle-keygen", description="Create an Ed25519 key pair for signing .mle files.")
    p.add_argument("prefix", help="writes PREFIX.key (private, mode 0600) and PREFIX.pub")
    p.add_argument("--raw", action="store_true", help="write 32 raw bytes instead of PEM")
    p.add_argument("--password-env", metavar="VAR", help="encrypt the PEM private key with the password in $VAR")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")

    def run(a: argparse.Namespace) -> str:
        private_path, public_path = f"{a.prefix}.key", f"{a.prefix}.pub"
        for path in (private_path, public_path):
            if os.path.exists(path) and not a.force:
                raise ValueError(f"{path} exists; pass --force to overwrite it")
        public, private = SecurityUtils.generate_keypair()
        SecurityUtils.save_private_key(private, private_path, password=password_from_env(a.password_env), raw=a.raw)
        SecurityUtils.save_public_key(public, public_path, raw=a.raw)
        return f"wrote {private_path} and {public_path} (fingerprint {SecurityUtils.fingerprint(public)})"

    return _run(run, argv, p)


def sign_main(argv: Sequence[str] | None = None) -> int:
    """``mle-sign MODEL --key PRIVATE``: sign a model file in place or into ``-o``."""
    p = argparse.ArgumentParser(prog="mle-sign", description="Sign a .mle file with an Ed25519 private key.")
    p.add_argument("model")
    p.add_argument("--key", required=True, help="private key file (PEM or raw)")
    p.add_argument("-o", "--output", help="write the signed file here instead of in place")
    p.add_argument("--password-env", metavar="VAR", help="password of the private key, from $VAR")

    def run(a: argparse.Namespace) -> str:
        key = SecurityUtils.load_private_key(a.key, password_from_env(a.password_env))
        info = SecurityUtils.sign_model(a.model, key, a.output)
        return f"signed {info['path']} ({info['file_size_bytes']} bytes) with key {info['fingerprint']}"

    return _run(run, argv, p)


def verify_main(argv: Sequence[str] | None = None) -> int:
    """``mle-verify MODEL --key PUBLIC [--key ...]``: exit 0 if signed by one of the keys and untampered."""
    p = argparse.ArgumentParser(prog="mle-verify", description="Verify the Ed25519 signature of a .mle file.")
    p.add_argument("model")
    p.add_argument("--key", required=True, action="append", help="trusted public key file (PEM or raw); repeatable")

    def run(a: argparse.Namespace) -> str:
        info = SecurityUtils.verify_model(a.model, a.key)
        return f"OK: {a.model} is signed by {info['fingerprint']} and unmodified"

    return _run(run, argv, p)
