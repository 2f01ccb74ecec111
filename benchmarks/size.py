"""File size and load time: joblib against .mle (plain, zstd, quantized), on one machine, in one run.

Usage: python benchmarks/size.py
Prints a markdown table. Load times are medians of 7 loads in this process.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier

import mlejax as mle


def _median_ms(fn, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    X, y = make_classification(20_000, 28, n_informative=14, n_classes=3, random_state=0)
    X = X.astype(np.float32)
    models = {
        "RandomForest(100)": RandomForestClassifier(100, random_state=0, n_jobs=-1).fit(X, y),
        "MLP(256, 128)": MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=30, random_state=0).fit(X, y),
    }
    variants = {
        "plain": {},
        "zstd": {"compression": "zstd"},
        "int8 (weights; leaves too for trees)": {"quantize": "int8", "quantize_leaves": True},
        "int8 + zstd": {"quantize": "int8", "quantize_leaves": True, "compression": "zstd"},
    }
    tmp = tempfile.mkdtemp(prefix="mlejax-size-")
    print("| model | file | size | vs joblib | load (median) | max abs proba error |")
    print("|---|---|---:|---:|---:|---:|")
    for name, model in models.items():
        jl = os.path.join(tmp, "m.joblib")
        joblib.dump(model, jl)
        base = os.path.getsize(jl)
        print(f"| {name} | joblib | {base / 1e6:.2f} MB | 100% | {_median_ms(lambda: joblib.load(jl)):.1f} ms | - |")
        for label, kwargs in variants.items():
            path = os.path.join(tmp, "m.mle")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = mle.export_model(model, path, sample_input=X[:512], **kwargs)
            size = os.path.getsize(path)
            err = np.abs(mle.load_model(path).predict_proba(X[:2000]) - model.predict_proba(X[:2000])).max()
            print(f"| {name} | .mle {label} | {size / 1e6:.2f} MB | {size / base:.1%} | "
                  f"{_median_ms(lambda: mle.load_model(path)):.2f} ms | {err:.1e} |")
            assert report["file_size_bytes"] == size


if __name__ == "__main__":
    main()
