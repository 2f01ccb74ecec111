"""File size and load time of .mle against joblib, ONNX and skops, measured in one run on one machine.

Usage: python benchmarks/size.py [--quick]

Models: RandomForest(100), XGBoost(500 rounds), LightGBM(500 rounds),
LogisticRegression and an MLP, trained on 20k x 28 float32 rows. Formats:
joblib (plain and compress=3), ONNX (skl2onnx / onnxmltools), skops, and
.mle plain, zstd, fp16 and int8 (quantized formats touch weights only;
tree thresholds stay exact, so tree files shrink only through leaves when
``quantize_leaves=True``, which this table does not use). Load time is the
median of 7 loads in this process. Needs: joblib, skl2onnx, onnxmltools,
onnxruntime, skops, xgboost, lightgbm.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings

import joblib
import numpy as np

import mlejax as mle
from _timing import median_ms  # benchmarks/ is the script directory


def _models(X, y, rounds: int):
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    return {
        "RandomForest(100)": RandomForestClassifier(100, random_state=0, n_jobs=-1).fit(X, y),
        f"XGBoost({rounds})": xgb.XGBClassifier(n_estimators=rounds, max_depth=6, n_jobs=2).fit(X, y),
        f"LightGBM({rounds})": lgb.LGBMClassifier(n_estimators=rounds, num_leaves=63, verbose=-1).fit(X, y),
        "LogisticRegression": LogisticRegression(max_iter=300).fit(X, y),
        "MLP(256, 128)": MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=20, random_state=0).fit(X, y),
    }


def _onnx_bytes(model, n_features: int) -> bytes:
    """The model as ONNX with the converter its framework needs."""
    top = type(model).__module__.split(".")[0]
    if top == "sklearn":
        from skl2onnx import to_onnx

        return to_onnx(model, np.zeros((1, n_features), np.float32), options={"zipmap": False}).SerializeToString()
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    convert = onnxmltools.convert_xgboost if top == "xgboost" else onnxmltools.convert_lightgbm
    return convert(model, initial_types=[("X", FloatTensorType([None, n_features]))]).SerializeToString()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2k rows and 50 boosting rounds (smoke run)")
    args = p.parse_args()
    from sklearn.datasets import make_classification

    warnings.simplefilter("ignore")  # convergence chatter from the small MLP
    rows, rounds = (2_000, 50) if args.quick else (20_000, 500)
    X, y = make_classification(rows, 28, n_informative=14, n_classes=3, random_state=0)
    X = X.astype(np.float32)
    tmp = tempfile.mkdtemp(prefix="mlejax-size-")
    print("| model | format | size | vs joblib | load (median) |")
    print("|---|---|---:|---:|---:|")
    for name, model in _models(X, y, rounds).items():
        rows_out = []
        jl = os.path.join(tmp, "m.joblib")
        joblib.dump(model, jl)
        base = os.path.getsize(jl)
        rows_out.append(("joblib", base, median_ms(lambda: joblib.load(jl))))
        joblib.dump(model, jl + "3", compress=3)
        rows_out.append(("joblib compress=3", os.path.getsize(jl + "3"), median_ms(lambda: joblib.load(jl + "3"))))
        try:
            import onnxruntime as ort

            onnx_path = os.path.join(tmp, "m.onnx")
            with open(onnx_path, "wb") as fh:
                fh.write(_onnx_bytes(model, X.shape[1]))
            rows_out.append(("ONNX", os.path.getsize(onnx_path), median_ms(lambda: ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]))))
        except Exception as exc:  # a peer converter failing is a result, not a crash
            rows_out.append((f"ONNX: n/a ({type(exc).__name__})", None, None))
        try:
            import skops.io as sio

            sk_path = os.path.join(tmp, "m.skops")
            sio.dump(model, sk_path)
            trusted = sio.get_untrusted_types(file=sk_path)
            rows_out.append(("skops", os.path.getsize(sk_path), median_ms(lambda: sio.load(sk_path, trusted=trusted))))
        except Exception as exc:
            rows_out.append((f"skops: n/a ({type(exc).__name__})", None, None))
        for label, kwargs in {
            ".mle": {},
            ".mle zstd": {"compression": "zstd"},
            ".mle fp16": {"quantize": "fp16"},
            ".mle int8": {"quantize": "int8"},
        }.items():
            path = os.path.join(tmp, "m.mle")
            mle.export_model(model, path, sample_input=X[:256], **kwargs)
            rows_out.append((label, os.path.getsize(path), median_ms(lambda: mle.load_model(path))))
        for label, size, load in rows_out:
            if size is None:
                print(f"| {name} | {label} | - | - | - |")
            else:
                print(f"| {name} | {label} | {size / 1e6:.3f} MB | {size / base:.1%} | {load:.2f} ms |")


if __name__ == "__main__":
    main()
