"""Management of JAX's persistent compilation cache (``mle-cache info | clear | prune --max-bytes N``).

The cache directory is :func:`mlejax.lowering.cache.cache_dir`. Entries are
JAX's ``<key>-cache`` files (with ``<key>-atime`` stamps when JAX's own
eviction is on); nothing else in the directory is touched. Pruning removes
the least recently used entries first: by the ``-atime`` stamp when there is
one, else by the file's access or modification time, whichever is later.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Sequence

__all__ = ["info", "clear", "prune", "main"]

_CACHE, _ATIME = "-cache", "-atime"


def _directory(directory: str | os.PathLike | None) -> Path:
    if directory is not None:
        return Path(directory)
    from .lowering.cache import cache_dir

    return cache_dir()


def _entries(directory: Path) -> list[tuple[int, Path, int]]:
    """(last use in ns, path, size) of every entry, least recently used first."""
    out = []
    for path in directory.glob(f"*{_CACHE}") if directory.is_dir() else ():
        try:
            st = path.stat()
            stamp = path.with_name(path.name[: -len(_CACHE)] + _ATIME)
            used = int.from_bytes(stamp.read_bytes(), "little") if stamp.exists() else max(st.st_atime_ns, st.st_mtime_ns)
        except (OSError, ValueError):
            continue  # removed meanwhile by another process
        out.append((used, path, st.st_size))
    return sorted(out)


def info(directory: str | os.PathLike | None = None) -> dict:
    """The cache directory, its entry count and bytes."""
    d = _directory(directory)
    entries = _entries(d)
    return {"directory": str(d), "entries": len(entries), "bytes": sum(e[2] for e in entries)}


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name[: -len(_CACHE)] + _ATIME)):
        p.unlink(missing_ok=True)


def prune(max_bytes: int, directory: str | os.PathLike | None = None) -> dict:
    """Remove least recently used entries until the cache holds at most ``max_bytes``."""
    entries = _entries(_directory(directory))
    total, removed, freed = sum(e[2] for e in entries), 0, 0
    for _, path, size in entries:
        if total - freed <= max_bytes:
            break
        _remove(path)
        removed, freed = removed + 1, freed + size
    return {**info(directory), "removed": removed, "bytes_freed": freed}


def clear(directory: str | os.PathLike | None = None) -> dict:
    """Remove every entry."""
    return prune(0, directory)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mle-cache``."""
    p = argparse.ArgumentParser(prog="mle-cache", description="Inspect or trim mlejax's persistent XLA compilation cache.")
    p.add_argument("--dir", default=None, help="cache directory (default: $MLEJAX_CACHE_DIR or ~/.cache/mlejax/xla)")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help in (("info", "where the cache is and how big"), ("clear", "remove every entry"), ("prune", "remove least recently used entries")):
        c = sub.add_parser(name, help=help)
        c.add_argument("--json", action="store_true")
        if name == "prune":
            c.add_argument("--max-bytes", type=int, required=True, help="keep at most this many bytes")
    args = p.parse_args(argv)
    if args.command == "info":
        result = info(args.dir)
    elif args.command == "clear":
        result = clear(args.dir)
    else:
        result = prune(args.max_bytes, args.dir)
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0
