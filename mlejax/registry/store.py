"""Content-addressed blob store: ``blobs/sha256/ab/cdef…``, written crash-safely.

A blob is copied into ``blobs/tmp/`` while it is hashed, fsynced, made
read-only and renamed to its content address, and the directory is fsynced,
all before the registry's database row that names it commits. A process
killed midway leaves at most a temporary file (removed by ``gc``) or an
unreferenced blob (also removed by ``gc``), never a row without its blob.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Iterator

from ..format.container import fsync_dir

__all__ = ["BlobStore", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class BlobStore:
    """Files addressed by the sha256 of their content under ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, sha256: str) -> Path:
        """Where the blob with this content hash lives (whether or not it exists)."""
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def put(self, source: str | os.PathLike) -> tuple[str, int]:
        """Copy ``source`` in (once per content); return its ``(sha256, size)``."""
        tmp = self.tmp / f"{secrets.token_hex(8)}.part"
        digest, size = hashlib.sha256(), 0
        try:
            with open(source, "rb") as src, open(tmp, "xb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            sha = digest.hexdigest()
            target = self.path(sha)
            if target.exists():
                tmp.unlink()
                return sha, size
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)
        return sha, size

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def delete(self, sha256: str) -> int:
        """Remove a blob; return the bytes freed (0 if it was absent)."""
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def hashes(self) -> Iterator[str]:
        """Every stored blob's content hash."""
        base = self.root / "sha256"
        if base.is_dir():
            for sub in base.iterdir():
                for blob in sub.iterdir():
                    yield sub.name + blob.name

    def remove_stale_tmp(self, older_than_s: float) -> int:
        """Delete temporary files left by killed writers; return how many."""
        cutoff, removed = time.time() - older_than_s, 0
        for tmp in self.tmp.iterdir():
            try:
                if tmp.stat().st_mtime <= cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
