"""JAX's persistent compilation cache, on by default.

The cache lives in ``$MLEJAX_CACHE_DIR`` (default: the user cache dir,
``~/.cache/mlejax/xla``). Set ``MLEJAX_COMPILATION_CACHE=0`` to turn it off.
If the user already configured ``jax_compilation_cache_dir`` we leave it as
is. Small models compile in well under JAX's default 1 s threshold, so we
cache every entry regardless of compile time.

The cache directory is trusted: anyone who can write to it can make this
process run code (JAX's own warning). It is private to the user by default.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["enable_persistent_cache", "cache_dir"]

_done = False


def cache_dir() -> Path:
    """Where compiled programs are cached."""
    env = os.environ.get("MLEJAX_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlejax" / "xla"


def enable_persistent_cache() -> None:
    """Turn on the persistent cache once per process (no-op when disabled or preset)."""
    global _done
    if _done:
        return
    _done = True
    if os.environ.get("MLEJAX_COMPILATION_CACHE", "1").lower() in ("0", "false", "off", "no"):
        return
    if jax.config.jax_compilation_cache_dir:
        return
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
