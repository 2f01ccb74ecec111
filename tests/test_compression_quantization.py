"""Quantization (fp16/bf16/int8, dequantized inside the XLA program) and zstd compression ratios."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor

import mlejax as mle
from mlejax import CompressionUtils
from mlejax.compression import quantize_graph
from mlejax.format import read_mle
from mlejax.format.graph import GraphBuilder
from mlejax.lowering import Program


def test_quantize_weights_int8_api():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((20, 6)).astype(np.float32) * np.array([1, 10, 0.01, 100, 0, 3], np.float32)
    q, scale, zero_point = CompressionUtils.quantize_weights_int8(w)
    assert q.dtype == np.int8 and q.shape == w.shape and scale.shape == (1, 6) and scale.dtype == np.float32
    assert zero_point.shape == scale.shape and not zero_point.any()
    assert np.abs(q).max() <= 127 and (np.abs(q).max(axis=0)[[0, 1, 2, 3, 5]] == 127).all()
    back = CompressionUtils.dequantize_weights_int8(q, scale, zero_point)
    assert (np.abs(back - w) <= scale / 2 * (1 + 1e-6)).all()  # per-channel: error at most half a step
    assert (back[:, 4] == 0).all()  # an all-zero channel stays exact
    q0, s0, _ = CompressionUtils.quantize_weights_int8(w, axis=0)
    assert s0.shape == (20, 1)
    q1, s1, _ = CompressionUtils.quantize_weights_int8(w[0])
    assert s1.shape == (1,)  # 1-d: one scale
    assert CompressionUtils.quantize_weights_fp16(w).dtype == np.float16
    assert str(CompressionUtils.quantize_weights_bf16(w).dtype) == "bfloat16"
    with pytest.raises(ValueError, match="float16 range"):
        CompressionUtils.quantize_weights_fp16(np.array([1e6], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        CompressionUtils.quantize_weights_int8(np.array([1.0, np.nan], np.float32))


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(600, 12, n_informative=8, n_classes=3, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def mlp(data):
    X, y = data
    return MLPClassifier((32, 16), max_iter=300, random_state=0).fit(X, y)


# Worst |quantized - float32| allowed on predict_proba: int8 keeps ~2 decimal digits per weight, halves ~3.
PROBA_BOUND = {"fp16": 2e-3, "bf16": 2e-2, "int8": 5e-2}


@pytest.mark.parametrize("mode", ["fp16", "bf16", "int8"])
def test_mlp_quantized(tmp_path, data, mlp, mode):
    X, _ = data
    plain = mle.export_model(mlp, tmp_path / "plain.mle")
    report = mle.export_model(mlp, tmp_path / "q.mle", sample_input=X[:200], quantize=mode)
    q = report["quantization"]
    assert q["mode"] == mode and len(q["quantized"]) == 3  # the three weight matrices, not the biases
    assert q["bytes_after"] < q["bytes_before"] / (3 if mode == "int8" else 1.9)  # int8: plus one scale per column
    assert report["file_size_bytes"] < plain["file_size_bytes"]
    with read_mle(tmp_path / "q.mle") as f:
        dtypes = {str(a.dtype) for a in f.tensors.values()}
        ops = [n["op"] for n in f.graph["nodes"]]
    expected = {"int8": "int8", "fp16": "float16", "bf16": "bfloat16"}[mode]
    assert expected in dtypes
    assert ops.count("Dequantize" if mode == "int8" else "Cast") == 3
    m, ref = mle.load_model(tmp_path / "q.mle"), mle.load_model(tmp_path / "plain.mle")
    err = np.abs(m.predict_proba(X[:200]) - ref.predict_proba(X[:200])).max()
    assert 0 < err <= PROBA_BOUND[mode]
    assert q["error"]["predict_proba"]["max_abs_error"] == pytest.approx(err, rel=1e-6, abs=1e-7)  # the report is measured
    assert m.metadata["quantization"]["error"] == q["error"]
    assert np.mean(m.predict(X) == mlp.predict(X)) > 0.97
    assert "max_abs_error" in report["verification"]["predict_proba"]  # parity vs the source is still reported


def test_quantized_model_is_a_jax_function(tmp_path, data, mlp):
    import jax

    X, _ = data
    mle.export_model(mlp, tmp_path / "q.mle", quantize="int8")
    m = mle.load_model(tmp_path / "q.mle")
    f = jax.jit(m.jax_function("predict_proba"))
    np.testing.assert_allclose(np.asarray(f(X[:5])), m.predict_proba(X[:5]), rtol=1e-6, atol=1e-6)


def test_regressor_int8(tmp_path, data):
    X, y = data
    reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=200, random_state=0).fit(X, y.astype(np.float32))
    report = mle.export_model(reg, tmp_path / "r.mle", sample_input=X[:100], quantize="int8")
    err = report["quantization"]["error"]["predict"]["max_abs_error"]
    assert 0 < err < 0.05 * (1 + np.abs(reg.predict(X[:100])).max())


def test_trees_keep_exact_thresholds(tmp_path, data):
    X, y = data
    rf = RandomForestClassifier(n_estimators=5, max_depth=6, random_state=0).fit(X, y)
    plain = mle.export_model(rf, tmp_path / "plain.mle")
    report = mle.export_model(rf, tmp_path / "q.mle", sample_input=X[:100], quantize="int8")
    assert report["quantization"]["quantized"] == []  # leaf values only on request
    assert report["file_size_bytes"] == pytest.approx(plain["file_size_bytes"], abs=512)
    report = mle.export_model(rf, tmp_path / "ql.mle", sample_input=X[:100], quantize="int8", quantize_leaves=True)
    assert len(report["quantization"]["quantized"]) == 1
    with read_mle(tmp_path / "plain.mle") as a, read_mle(tmp_path / "ql.mle") as b:
        floats_a = {k: v for k, v in a.tensors.items() if v.dtype == np.float32 and v.ndim == 1}
        floats_b = {k: v for k, v in b.tensors.items() if v.dtype == np.float32 and v.ndim == 1}
        assert floats_a.keys() == floats_b.keys() and floats_a  # thresholds: same tensors, bit-identical
        for k in floats_a:
            np.testing.assert_array_equal(floats_a[k], floats_b[k])
        assert any(v.dtype == np.int8 for v in b.tensors.values())
    m = mle.load_model(tmp_path / "ql.mle")
    assert np.abs(m.predict_proba(X) - rf.predict_proba(X)).max() <= 1 / 254 + 1e-6  # leaf values in [0, 1]
    assert report["quantization"]["error"]["predict_proba"]["max_abs_error"] <= 1 / 254 + 1e-6


def test_linear_weights_only_on_request(tmp_path, data):
    X, y = data
    lr = LogisticRegression(max_iter=500).fit(X, y)
    report = mle.export_model(lr, tmp_path / "a.mle", sample_input=X[:100], quantize="fp16")
    assert report["quantization"]["quantized"] == []
    assert "quantize_leaves=True" in next(iter(report["quantization"]["skipped"].values()))
    report = mle.export_model(lr, tmp_path / "b.mle", sample_input=X[:100], quantize="fp16", quantize_leaves=True)
    assert len(report["quantization"]["quantized"]) == 1
    err = report["quantization"]["error"]["decision_function"]["max_abs_error"]
    assert 0 < err < 1e-2
    with pytest.raises(ValueError, match="quantize='int4' is not supported"):
        mle.export_model(lr, tmp_path / "c.mle", quantize="int4")


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_conv_kernels_per_output_channel(layout):
    """Conv kernels are quantized per output channel, whichever axis holds it."""
    rng = np.random.default_rng(1)
    x_shape, w_shape = ((None, 3, 9, 9), (4, 3, 3, 3)) if layout == "channels_first" else ((None, 9, 9, 3), (3, 3, 3, 4))
    out_axis = 0 if layout == "channels_first" else 3
    scales = np.array([1e-3, 1, 30, 0.2], np.float32).reshape([4 if i == out_axis else 1 for i in range(4)])
    w = rng.standard_normal(w_shape).astype(np.float32) * scales
    b = GraphBuilder()
    x = b.add_input("X", "float32", x_shape)
    y = b.op("Conv", x, b.tensor("w", w), strides=[1, 1], padding=[[1, 1], [1, 1]], dilation=[1, 1], groups=1, layout=layout)
    b.set_output("output", y)
    graph = b.build()
    qgraph, qtensors, report = quantize_graph(graph, b.tensors, "int8")
    assert len(report["quantized"]) == 1
    scale = next(v for k, v in qtensors.items() if k.endswith(".scale"))
    assert scale.shape == tuple(4 if i == out_axis else 1 for i in range(4))
    xs = rng.standard_normal((2, *x_shape[1:])).astype(np.float32)
    ref = Program(graph, b.tensors).run(["output"], [xs])[0]
    got = Program(qgraph, qtensors).run(["output"], [xs])[0]
    channel = [slice(None)] * 4
    for c in range(4):  # each output channel's error scales with its own weights, not the largest channel's
        channel[1 if layout == "channels_first" else 3] = c
        bound = 27 * np.abs(xs).max() * float(np.abs(np.take(w, c, axis=out_axis)).max()) / 254
        assert np.abs(got[tuple(channel)] - ref[tuple(channel)]).max() <= bound


def test_zstd_compression_ratio(tmp_path, data, mlp):
    X, y = data
    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    plain = mle.export_model(rf, tmp_path / "rf.mle")
    packed = mle.export_model(rf, tmp_path / "rfz.mle", compression="zstd", compression_level=9)
    assert packed["file_size_bytes"] * 2 < plain["file_size_bytes"]
    assert packed["compression_ratio"] > 2
    assert CompressionUtils.compression_ratio(tmp_path / "rfz.mle") == pytest.approx(packed["compression_ratio"])
    both = mle.export_model(mlp, tmp_path / "mlp.mle", compression="zstd", quantize="int8")
    assert both["file_size_bytes"] < mle.export_model(mlp, tmp_path / "mlp0.mle")["file_size_bytes"] / 2
