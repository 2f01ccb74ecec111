"""Property: any mutation, truncation or splice of a valid file loads and predicts as a valid model or raises an MLEError.

Runs the hypothesis engine of ``benchmarks/fuzz_loader.py`` (seeds: plain,
zstd, version 1, signed, encrypted, signed + encrypted + compressed) for a
bounded number of inputs; the long run is ``python benchmarks/fuzz_loader.py``.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import sys
import time

import pytest

_HARNESS = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "fuzz_loader.py")


def _harness():
    spec = importlib.util.spec_from_file_location("mlejax_fuzz_loader", _HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the module executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    harness = _harness()
    workdir = str(tmp_path_factory.mktemp("fuzz"))
    seeds = harness.build_seeds(workdir)
    return harness, harness.Loader(workdir), harness.Mutator(seeds)


def test_seeds_load(fuzz):
    harness, loader, mutator = fuzz
    for seed in mutator.seeds:
        for kwargs in seed.loads:
            loader.load(seed.data, kwargs)
    assert loader.successes == sum(len(s.loads) for s in mutator.seeds) and not loader.errors


def test_fuzz_load_model(fuzz):
    harness, loader, mutator = fuzz
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    count = harness.run_hypothesis(loader, mutator, runs=2500, max_seconds=10.0, derandomize=True)
    elapsed = time.perf_counter() - start
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # ru_maxrss is KiB on Linux
    assert count >= 2500
    # the inputs reached every outcome: valid models, bad files, bad signatures or ciphertext
    assert loader.successes > 50 and loader.errors["MLEFormatError"] > 500 and loader.errors["MLESecurityError"] > 50
    assert grown_mib < 512, f"peak memory grew by {grown_mib:.0f} MiB"
    print(f"{count} inputs in {elapsed:.1f}s: {loader.successes} loaded, {loader.errors}")
