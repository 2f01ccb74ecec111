"""ModelCache: hits in microseconds, never stale, LRU by bytes, thread-safe, and load_model(cache=...)."""

from __future__ import annotations

import os
import shutil
import threading
import time

import numpy as np
import pytest

import mlejax as mle
from helpers import assert_close
from helpers_registry import forest_file, variant


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    return forest_file(tmp_path_factory.mktemp("forest"))


def test_hit_returns_the_loaded_model_in_microseconds(forest):
    model, X, path = forest
    cache = mle.ModelCache()
    first = mle.load_model(path, cache=cache)
    assert_close(first.predict_proba(X), model.predict_proba(X))
    compiled = dict(first.program.compile_seconds)
    times = []
    for _ in range(200):
        start = time.perf_counter()
        again = cache.load(path)
        times.append(time.perf_counter() - start)
    assert again is first and again.program.compile_seconds == compiled  # compiled programs are kept
    assert np.median(times) < 500e-6, np.median(times)  # a stat and a few dict lookups (about 10 µs), not a load
    assert cache.stats() == {"hits": 200, "misses": 1, "evictions": 0, "bytes": cache.stats()["bytes"], "entries": 1,
                             "max_bytes": cache.max_bytes}
    assert cache.stats()["bytes"] >= path.stat().st_size


def test_an_edited_file_is_never_served_stale(forest, tmp_path):
    _, _, source = forest
    path, other = tmp_path / "m.mle", tmp_path / "other.mle"
    variant(source, path, "a")
    variant(source, other, "b")  # same size, different bytes
    assert path.stat().st_size == other.stat().st_size
    cache = mle.ModelCache()
    assert cache.load(path).metadata["user"] == {"variant": "a"}
    # in place, same size, mtime put back: the ctime still moves
    before = path.stat()
    with open(path, "r+b") as fh:
        fh.write(other.read_bytes())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cache.load(path).metadata["user"] == {"variant": "b"}
    # replaced by rename (how export_model writes)
    variant(source, path, "c")
    assert cache.load(path).metadata["user"] == {"variant": "c"}
    # the same content at another path is the same entry
    shutil.copy(path, tmp_path / "copy.mle")
    assert cache.load(tmp_path / "copy.mle") is cache.load(path)
    assert cache.stats()["misses"] == 3


def test_options_are_part_of_the_key(forest):
    _, _, path = forest
    cache = mle.ModelCache()
    a = cache.load(path)
    b = cache.load(path, batch_buckets=None)
    assert a is not b and a.program.batch_buckets == "pow2" and b.program.batch_buckets is None
    assert cache.load(path, batch_buckets=None) is b
    with pytest.raises(mle.MLESecurityError):  # unsigned: a cached copy never skips a requested verification
        cache.load(path, verify_signature=True, public_key=mle.SecurityUtils.generate_keypair()[0])


def test_least_recently_used_evicted_by_bytes(forest, tmp_path):
    _, _, source = forest
    paths = [tmp_path / f"{tag}.mle" for tag in "abc"]
    for p, tag in zip(paths, "abc"):
        variant(source, p, tag)
    one = mle.ModelCache().load(paths[0])
    size = mle.model_cache._model_bytes(one)
    cache = mle.ModelCache(max_bytes=2 * size + size // 2)  # room for two
    a, b = cache.load(paths[0]), cache.load(paths[1])
    assert cache.load(paths[0]) is a  # a is now the most recent
    cache.load(paths[2])  # evicts b
    stats = cache.stats()
    assert (stats["entries"], stats["evictions"], stats["bytes"]) == (2, 1, 2 * size)
    assert cache.load(paths[0]) is a and cache.load(paths[1]) is not b
    cache.clear()
    assert len(cache) == 0 and cache.stats()["bytes"] == 0


def test_thread_safe(forest):
    _, X, path = forest
    cache = mle.ModelCache()
    seen, errors = [], []

    def worker():
        try:
            for _ in range(20):
                seen.append(cache.load(path))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(seen) == 160
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == 160 and stats["entries"] == 1
    assert all(m is seen[-1] for m in seen[-8:])


def test_default_cache_and_expected_hash(forest, tmp_path):
    _, _, path = forest
    assert mle.load_model(path, cache=True) is mle.load_model(path, cache=True)
    assert mle.model_cache.default_cache().stats()["hits"] >= 1
    with pytest.raises(mle.MLESecurityError, match="modified on disk"):
        mle.ModelCache().load(path, expected_sha256="0" * 64)
    with pytest.raises(TypeError, match="cache="):
        mle.load_model(path, cache="yes")
