"""Registry under concurrent writers and killed processes."""

from __future__ import annotations

import os
import signal
import time
import warnings

import pytest

from helpers_registry import forest_file, variant
from mlejax.registry import ModelRegistry
from mlejax.registry.store import sha256_file

WRITERS, PER_WRITER = 8, 3


def _fork(fn) -> int:
    """Run ``fn`` in a forked child (no JAX use there) that exits 0 on success, 1 on error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX warns that forking a threaded process is unsafe; the child does not use JAX
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    return pid


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    _, _, path = forest_file(tmp)
    out = {}
    for w in range(WRITERS):
        for i in range(PER_WRITER):
            out[w, i] = tmp / f"w{w}-{i}.mle"
            variant(path, out[w, i], f"{w}-{i}")
    return out


def test_concurrent_writers_get_distinct_consecutive_versions(files, tmp_path):
    root = tmp_path / "registry"
    ModelRegistry(root).close()
    start = time.time() + 0.5  # every writer starts at once

    def writer(w: int) -> None:
        with ModelRegistry(root) as reg:
            time.sleep(max(0.0, start - time.time()))
            for i in range(PER_WRITER):
                reg.register("shared", files[w, i], description=f"{w}-{i}")

    pids = [_fork(lambda w=w: writer(w)) for w in range(WRITERS)]
    codes = [os.waitpid(pid, 0)[1] for pid in pids]
    assert codes == [0] * WRITERS
    with ModelRegistry(root) as reg:
        versions = reg.versions("shared")
        assert [v.version for v in versions] == list(range(1, WRITERS * PER_WRITER + 1))
        assert sorted(v.description for v in versions) == sorted(f"{w}-{i}" for w, i in files)
        assert {v.description: v.sha256 for v in versions} == {f"{w}-{i}": sha256_file(p) for (w, i), p in files.items()}
        assert reg.verify() == []


def _crash_after_blob() -> None:
    from mlejax.registry import store

    put = store.BlobStore.put

    def put_then_die(self, source):
        result = put(self, source)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    store.BlobStore.put = put_then_die


def _crash_in_transaction() -> None:
    from mlejax.registry import registry

    class DyingJson:  # dies while the version row is being written, inside BEGIN IMMEDIATE
        loads = staticmethod(registry.json.loads)

        @staticmethod
        def dumps(*a, **k):
            os.kill(os.getpid(), signal.SIGKILL)

    registry.json = DyingJson


def _crash_mid_copy() -> None:
    from mlejax.registry import store

    class DyingFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    real_open = open
    store.open = lambda path, mode="r", *a, **k: DyingFile(real_open(path, mode, *a, **k)) if "x" in mode else real_open(path, mode, *a, **k)


@pytest.mark.parametrize("crash", [_crash_mid_copy, _crash_after_blob, _crash_in_transaction])
def test_killed_registration_leaves_the_registry_consistent(files, tmp_path, crash):
    root = tmp_path / "registry"
    with ModelRegistry(root) as reg:
        reg.register("m", files[0, 0])
        reg.set_alias("m", "prod", 1)

    def child() -> None:
        crash()
        with ModelRegistry(root) as r:
            r.register("m", files[0, 1])

    pid = _fork(child)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    with ModelRegistry(root) as reg:
        assert [v.version for v in reg.versions("m")] == [1]  # the killed registration left no row
        assert reg.verify() == []
        assert reg.get("m", alias="prod").version == 1
        assert reg.register("m", files[0, 2]).version == 2  # and used no version number
        reg.gc(tmp_age_s=0)
        assert list(reg.blobs.tmp.iterdir()) == []
        assert sorted(reg.blobs.hashes()) == sorted(v.sha256 for v in reg.versions("m"))
