"""Registry and model-cache figures: cached load hits, register/load of a RandomForest(100), 8 concurrent writers.

Usage: python benchmarks/registry.py [--trees 100] [--writers 8] [--per-writer 5]
Prints one JSON object. Times are medians (loads: of 15 runs, interleaved;
register: of 7; a cache hit: of 10,000). Everything is written to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

import mlejax as mle
from _timing import median_ms  # benchmarks/ is the script directory
from mlejax.registry import ModelRegistry
from mlejax.registry.store import sha256_file


def _concurrent_writers(root: str, path: str, writers: int, per_writer: int) -> dict:
    """Fork ``writers`` processes that each register ``per_writer`` versions of one name at the same moment."""
    ModelRegistry(root).close()
    start = time.time() + 0.5
    pids = []
    for _ in range(writers):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # forking after JAX started; the children do not use JAX
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with ModelRegistry(root) as reg:
                    time.sleep(max(0.0, start - time.time()))
                    for _ in range(per_writer):
                        reg.register("shared", path)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    failed = sum(os.waitpid(pid, 0)[1] != 0 for pid in pids)
    wall = time.time() - start
    with ModelRegistry(root) as reg:
        versions = [v.version for v in reg.versions("shared")]
    expected = writers * per_writer
    return {"writers": writers, "registrations": expected, "failed_processes": failed,
            "versions_distinct_and_consecutive": versions == list(range(1, expected + 1)),
            "wall_s": round(wall, 3), "registrations_per_s": round(expected / wall, 1)}


def _interleaved_ms(fns: dict, repeats: int = 15) -> dict:
    """Median ms of each function, run in turn so that a noisy machine affects them alike."""
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--per-writer", type=int, default=5)
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="mlejax-registry-")
    X, y = make_classification(2000, 20, n_informative=10, n_classes=3, random_state=0)
    model = RandomForestClassifier(args.trees, random_state=0).fit(X, y)
    path = os.path.join(tmp, "forest.mle")
    mle.export_model(model, path, sample_input=X[:256])
    batch = X[:1]

    reg = ModelRegistry(os.path.join(tmp, "registry"))
    register_file_ms = median_ms(lambda: reg.register("forest", path))
    t = time.perf_counter()
    reg.register("forest", model, sample_input=X[:256])
    register_model_ms = (time.perf_counter() - t) * 1e3
    loads = _interleaved_ms({
        "load_model": lambda: mle.load_model(path),
        "load_and_predict": lambda: mle.load_model(path).predict_proba(batch),
        "registry_load": lambda: reg.load("forest"),
    })
    load_ms, load_predict_ms = loads["load_model"], loads["load_and_predict"]
    cache = mle.ModelCache()
    mle.load_model(path, cache=cache).predict_proba(batch)
    hits = []
    for _ in range(10_000):
        t = time.perf_counter()
        mle.load_model(path, cache=cache)
        hits.append(time.perf_counter() - t)
    hit_us = statistics.median(hits) * 1e6

    registry_load_ms = loads["registry_load"]
    registry_cached = mle.ModelCache()
    reg.load("forest", cache=registry_cached)
    registry_hit_ms = median_ms(lambda: reg.load("forest", cache=registry_cached), repeats=1001)

    print(json.dumps({
        "model": f"RandomForestClassifier({args.trees}), 20 features, file {os.path.getsize(path)} bytes",
        "load_model_ms": round(load_ms, 3),
        "load_model_and_first_predict_ms": round(load_predict_ms, 3),
        "cached_load_hit_us": round(hit_us, 2),
        "cache_speedup_vs_load_model": round(load_ms * 1e3 / hit_us, 1),
        "cache_speedup_vs_load_and_first_predict": round(load_predict_ms * 1e3 / hit_us, 1),
        "registry_register_file_ms": round(register_file_ms, 3),
        "registry_register_model_ms (export included)": round(register_model_ms, 1),
        "registry_load_ms (sha256 check + load_model)": round(registry_load_ms, 3),
        "registry_load_cached_ms (lookup + cache hit)": round(registry_hit_ms, 3),
        "registry_lookup_ms": round(median_ms(lambda: reg.get("forest"), repeats=101), 3),
        "sha256_check_ms": round(median_ms(lambda: sha256_file(path), repeats=101), 3),
        "concurrency": _concurrent_writers(os.path.join(tmp, "concurrent"), path, args.writers, args.per_writer),
    }, indent=2))


if __name__ == "__main__":
    main()
