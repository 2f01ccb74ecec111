"""JAX's persistent compilation cache, on by default, and checked compilation.

The cache lives in ``$MLEJAX_CACHE_DIR`` (default: the user cache dir,
``~/.cache/mlejax/xla``). Set ``MLEJAX_COMPILATION_CACHE=0`` to turn it off.
If the user already configured ``jax_compilation_cache_dir`` we leave it as
is. Small models compile in well under JAX's default 1 s threshold, so we
cache every entry regardless of compile time.

Compiled programs hold model values as constants, so the programs of an
encrypted model never go through the cache: :func:`compile_lowered` with
``persistent=False`` neither reads nor writes it (the decrypted values stay in
memory).

The cache directory is trusted: anyone who can write to it can make this
process run code (JAX's own warning). It is private to the user by default.
Against mistakes (a stale, copied or mixed-up entry), every program is named
after a digest of the model and what is compiled (see ``Program``), and
:func:`compile_lowered` checks that the executable it gets back carries that
name and the expected output shapes and dtypes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import jax
import numpy as np

from ..format.errors import MLEError

__all__ = ["enable_persistent_cache", "cache_dir", "compile_lowered", "read_entry", "write_entry"]

_done = False
#: Held while the persistent cache is switched off for one compilation.
_off_lock = threading.Lock()


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


def _active_dir() -> str | None:
    """The persistent cache directory in use (after :func:`enable_persistent_cache`), or ``None`` when off."""
    enable_persistent_cache()
    if not jax.config.jax_enable_compilation_cache:
        return None
    return jax.config.jax_compilation_cache_dir or None


def read_entry(name: str) -> bytes | None:
    """The bytes of mlejax's own cache entry ``name`` (beside JAX's entries), or ``None``.

    Entries are named ``mlejax-<kind>-<digest>-cache`` so that ``mle-cache``
    prunes and clears them with JAX's. ``None`` when the persistent cache is
    off, the entry is missing or unreadable.
    """
    directory = _active_dir()
    if directory is None or "://" in directory:
        return None
    try:
        with open(os.path.join(directory, name), "rb") as f:
            return f.read()
    except OSError:
        return None


def write_entry(name: str, data: bytes) -> None:
    """Write mlejax's cache entry ``name`` atomically (temporary file, rename); errors are ignored (a cache)."""
    directory = _active_dir()
    if directory is None or "://" in directory:
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".mlejax-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(directory, name))
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


@contextlib.contextmanager
def _persistent_cache_off() -> Iterator[None]:
    """JAX's persistent cache off (no read, no write) for the compilations inside, then as it was.

    JAX decides once per process whether the cache is used, so the switch
    resets that decision on the way in and out. The setting is global:
    compilations of other threads meanwhile skip the cache too (they only
    compile again), never the other way round.
    """
    from jax._src import compilation_cache

    with _off_lock:
        previous = jax.config.jax_enable_compilation_cache
        jax.config.update("jax_enable_compilation_cache", False)
        compilation_cache.reset_cache()
        try:
            yield
        finally:
            jax.config.update("jax_enable_compilation_cache", previous)
            compilation_cache.reset_cache()


def compile_lowered(lowered: Any, name: str, *, persistent: bool = True, **compile_kwargs: Any) -> Any:
    """``lowered.compile(**compile_kwargs)``, checked; ``persistent=False`` keeps it out of the persistent cache.

    ``name`` is the jitted function's name, unique to the program (a digest).
    Raises :class:`MLEError` when the executable that comes back (from the
    persistent cache) is another program: another module name, other output
    shapes or dtypes than ``lowered`` promises, or one JAX cannot wrap.
    """
    _seen.cache_hit = False
    try:
        with _persistent_cache_off() if not persistent else contextlib.nullcontext():
            compiled = lowered.compile(**compile_kwargs)
    except Exception as e:
        if not _seen.cache_hit:
            raise
        raise _replaced(name, f"JAX could not use it ({type(e).__name__}: {e})") from e
    _check_compiled(compiled, name)
    return compiled


#: Per thread: whether the last compilation was served by the persistent cache.
_seen = threading.local()


def _on_event(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _seen.cache_hit = True


jax.monitoring.register_event_listener(_on_event)


def _check_compiled(compiled: Any, name: str) -> None:
    """Raise :class:`MLEError` unless ``compiled`` is the program named ``name`` with the expected outputs."""
    from jax._src.lib import xla_client

    module = compiled.runtime_executable().hlo_modules()[0]
    shape = xla_client.XlaComputation(module.as_serialized_hlo_module_proto()).program_shape().result_shape()
    got = [(tuple(s.dimensions()), np.dtype(s.numpy_dtype())) for s in (shape.tuple_shapes() if shape.is_tuple() else [shape])]
    expected = [(tuple(o.shape), np.dtype(o.dtype)) for o in jax.tree_util.tree_leaves(compiled.out_info)]
    if name not in module.name or got != expected:
        raise _replaced(
            name, f"the executable is {module.name!r} with outputs {_describe(got)}, expected one named after "
            f"{name!r} with outputs {_describe(expected)}"
        )


def _replaced(name: str, detail: str) -> MLEError:
    return MLEError(
        f"the compiled program for {name} is not the program that was compiled: {detail}. An entry of the "
        f"persistent compilation cache ({jax.config.jax_compilation_cache_dir}) was replaced or corrupted: "
        "delete that directory, or set MLEJAX_COMPILATION_CACHE=0"
    )


def _describe(outputs: list[tuple[tuple, np.dtype]]) -> str:
    return "[" + ", ".join(f"{dtype.name}{list(shape)}" for shape, dtype in outputs) + "]"
