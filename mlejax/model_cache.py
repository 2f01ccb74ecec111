"""``ModelCache``: loaded models kept in memory, keyed by file content and load options.

A hit must cost microseconds and an edited file must never be served stale.
A content hash costs a read of the whole file, so it is computed once per
*file identity*: ``(path, device, inode, size, mtime_ns, ctime_ns)`` from one
``os.stat``. Any write to the file, in place or by rename, changes the inode
or ctime (which, unlike mtime, user code cannot set back), so a changed file
gets a new identity and is hashed again; an unchanged one is looked up by
its identity alone. Models are then keyed by ``(sha256, load options)``, so
two copies of one file share an entry. A model whose file changed while it
was loading is returned but not kept.

Entries are evicted least recently used first once their bytes (the mapped
file plus a device copy of its tensors) pass ``max_bytes``. A cached model
keeps its compiled programs. The cache is thread-safe; models themselves
are shared between the callers that get them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import threading
from collections import OrderedDict
from typing import Any

from .format.policy import check_policy, signature_keys

__all__ = ["ModelCache", "default_cache", "resolve_cache", "load_via"]

#: Default size of the process-wide cache (``$MLEJAX_MODEL_CACHE_BYTES`` overrides it).
DEFAULT_MAX_BYTES = 4 << 30


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a load option (bytes, such as keys, by their sha256)."""
    if isinstance(value, (bytes, bytearray)):
        return ("sha256", hashlib.sha256(value).hexdigest())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _identity(path: str) -> tuple:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=None)
def _load_defaults() -> dict[str, Any]:
    """``load_model``'s keyword options and their defaults."""
    from .model import load_model

    params = inspect.signature(load_model).parameters
    return {k: p.default for k, p in params.items() if k not in ("path", "cache")}


def _model_bytes(model: Any) -> int:
    mfile = model._file
    return int(mfile.file_size + sum(spec.nbytes for spec in mfile.tensors.specs.values()))  # the index: no tensor read


class ModelCache:
    """An LRU cache of loaded :class:`mlejax.Model` objects, bounded by ``max_bytes``.

    Use it through ``load_model(path, cache=my_cache)`` (or ``cache=True`` for
    the process-wide one, :func:`default_cache`), or call :meth:`load`.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()  # (sha256, options) -> (model, bytes)
        self._hashes: dict[str, tuple[tuple, str]] = {}  # path -> (identity, sha256)
        self._stats = {"hits": 0, "misses": 0, "evictions": 0, "bytes": 0}

    def load(self, path: str | os.PathLike, *, expected_sha256: str | None = None, **load_options: Any) -> Any:
        """The model at ``path`` from the cache, or loaded with :func:`mlejax.load_model` and kept.

        ``expected_sha256``: refuse (``MLESecurityError``) a file whose content hash differs.
        ``warmup`` applies when the model is loaded, not on hits.
        """
        path = os.fspath(path)
        identity = _identity(path)
        known = self._hashes.get(path)
        sha = known[1] if known is not None and known[0] == identity else self._hash(path, identity)
        if expected_sha256 is not None and sha != expected_sha256:
            from .registry.registry import check_blob

            check_blob(path, expected_sha256, "cached load", sha)
        unknown = set(load_options) - set(_load_defaults())
        if unknown:
            raise TypeError(f"unknown load_model options {sorted(unknown)}; it takes {sorted(_load_defaults())}")
        given = {**_load_defaults(), **load_options}  # explicit defaults and omitted options give one key
        options = {k: v for k, v in given.items() if k not in ("verify_signature", "public_key", "warmup")}
        keys = signature_keys(load_options.get("verify_signature"), load_options.get("public_key"))
        key = (sha, _freeze(keys), tuple(sorted((k, _freeze(v)) for k, v in options.items())))
        with self._lock:
            entry = self._models.get(key)
            if entry is not None:
                self._models.move_to_end(key)
                self._stats["hits"] += 1
            else:
                self._stats["misses"] += 1
        if entry is not None:
            policy = entry[0].metadata.get("policy")
            if policy is not None:  # expiry and hosts are checked on every load
                from . import __version__

                check_policy(policy, runtime_version=__version__)
            return entry[0]
        from .model import load_model

        model = load_model(path, **load_options)
        if _identity(path) == identity:  # unchanged while loading: the hash describes what was loaded
            self._insert(key, model)
        return model

    def _hash(self, path: str, identity: tuple) -> str:
        from .registry.store import sha256_file

        sha = sha256_file(path)
        self._hashes[path] = (identity, sha)
        return sha

    def _insert(self, key: tuple, model: Any) -> None:
        size = _model_bytes(model)
        with self._lock:
            if key in self._models:
                return
            self._models[key] = (model, size)
            self._stats["bytes"] += size
            while self._stats["bytes"] > self.max_bytes and self._models:
                _, (_, freed) = self._models.popitem(last=False)
                self._stats["bytes"] -= freed
                self._stats["evictions"] += 1

    def stats(self) -> dict[str, int]:
        """``hits``, ``misses``, ``evictions``, ``bytes`` held, ``entries`` and ``max_bytes``."""
        with self._lock:
            return {**self._stats, "entries": len(self._models), "max_bytes": self.max_bytes}

    def clear(self) -> None:
        """Drop every model (statistics are kept)."""
        with self._lock:
            self._models.clear()
            self._hashes.clear()
            self._stats["bytes"] = 0

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        s = self.stats()
        return f"ModelCache({s['entries']} models, {s['bytes']} of {s['max_bytes']} bytes, {s['hits']} hits, {s['misses']} misses)"


_default: ModelCache | None = None
_default_lock = threading.Lock()


def default_cache() -> ModelCache:
    """The process-wide cache used by ``load_model(..., cache=True)`` (``$MLEJAX_MODEL_CACHE_BYTES`` bytes)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ModelCache(int(os.environ.get("MLEJAX_MODEL_CACHE_BYTES", DEFAULT_MAX_BYTES)))
        return _default


def resolve_cache(cache: Any) -> ModelCache:
    """``True`` → :func:`default_cache`; a :class:`ModelCache` → itself."""
    if cache is True:
        return default_cache()
    if isinstance(cache, ModelCache):
        return cache
    raise TypeError(f"cache={cache!r}: expected True, False, None or a mlejax.ModelCache")


def load_via(path: Any, cache: Any, **load_options: Any) -> Any:
    """``load_model`` for a ``registry://`` URI and/or through a cache."""
    if isinstance(path, str) and path.startswith("registry://"):
        from .registry.registry import load_uri

        return load_uri(path, cache=cache, **load_options)
    return resolve_cache(cache).load(path, **load_options)
