"""Keras preprocessing, upsampling, transposed-convolution and TimeDistributed layers against Keras itself.

Each test bundles several layers as outputs of one functional model, exports it
once and compares every output with ``model(x, training=False)`` at batch sizes
1 and 3. Bound: |ours - keras| <= 1e-5 * (1 + |keras|) (bilinear blends and
transposed convolutions sum a few products; everything else moves data).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
layers = keras.layers

import mlejax as mle  # noqa: E402
from mlejax.format.errors import UnsupportedModelError  # noqa: E402

rng = np.random.default_rng(1)
TOL = 1e-5


def check(model, shape, tmp_path, batches=(1, 3)):
    """Export ``model`` and compare all its outputs with Keras; return the worst abs error."""
    make = lambda n: rng.standard_normal((n, *shape)).astype(np.float32)  # noqa: E731
    path = tmp_path / "m.mle"
    mle.export_model(model, path, sample_input=make(2))
    m = mle.load_model(path)
    worst = 0.0
    for n in batches:
        x = make(n)
        native = [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(model(x, training=False))]
        by_name = dict(zip(m.outputs, m.run([x])))
        keys = ["output"] + [f"output:{name}" for name in model.output_names[1:]]
        assert sorted(by_name) == sorted(keys)
        for i, (key, t) in enumerate(zip(keys, native)):
            o = by_name[key]
            assert o.shape == t.shape, (i, o.shape, t.shape)
            err = np.abs(o.astype(np.float64) - t)
            assert np.all(err <= TOL * (1 + np.abs(t))), f"output {i} ({model.output_names[i]}) at batch {n}: {err.max()}"
            worst = max(worst, float(err.max()))
    return worst


def _randomized(layer, shape):
    """Build ``layer`` on ``shape`` and give it random weights."""
    layer.build((None, *shape))
    layer.set_weights([0.3 * rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def test_resizing_bilinear_nearest_antialias_crop_pad(tmp_path):
    inp = keras.Input((9, 13, 4))
    outs = []
    for interp in ("bilinear", "nearest"):
        for h, w in ((5, 7), (17, 29), (4, 20)):
            for aa, crop, pad in ((False, False, False), (True, False, False), (False, True, False), (False, False, True)):
                outs.append(layers.Resizing(h, w, interpolation=interp, antialias=aa, crop_to_aspect_ratio=crop,
                                            pad_to_aspect_ratio=pad, fill_value=0.5)(inp))
    outs.append(layers.CenterCrop(5, 8)(inp))
    outs.append(layers.UpSampling2D((2, 3))(inp))
    outs.append(layers.UpSampling2D((2, 2), interpolation="bilinear")(inp))
    check(keras.Model(inp, outs), (9, 13, 4), tmp_path)


def test_normalization_rescaling(tmp_path):
    inp = keras.Input((6, 5, 3))
    data = rng.standard_normal((20, 6, 5, 3)).astype(np.float32) * 3 + 1
    adapted = layers.Normalization(axis=(1, 3))
    adapted.adapt(data)
    inverted = layers.Normalization(axis=-1, invert=True, mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1e-20])
    fixed = layers.Normalization(axis=-1, mean=rng.standard_normal(3), variance=rng.uniform(0.1, 2, 3))
    rescale = layers.Rescaling([1 / 0.229, 1 / 0.224, 1 / 0.225], offset=-0.5)
    check(keras.Model(inp, [adapted(inp), inverted(inp), fixed(inp), rescale(fixed(inp))]), (6, 5, 3), tmp_path)


def test_upsampling_1d_3d(tmp_path):
    inp = keras.Input((7, 3))
    check(keras.Model(inp, [layers.UpSampling1D(3)(inp), layers.UpSampling1D(1)(inp)]), (7, 3), tmp_path)
    inp3 = keras.Input((3, 4, 5, 2))
    check(keras.Model(inp3, layers.UpSampling3D((2, 1, 3))(inp3)), (3, 4, 5, 2), tmp_path)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_transpose(padding, tmp_path):
    shape = (9, 13, 4)
    inp = keras.Input(shape)
    outs = []
    for kernel, strides, out_pad, dilation in ((3, 1, None, 1), (3, 1, None, 2), (3, 2, None, 1), (4, 3, None, 1),
                                               (3, 2, 1, 1), ((2, 3), (2, 1), None, 1)):
        layer = layers.Conv2DTranspose(5, kernel, strides=strides, padding=padding, output_padding=out_pad,
                                       dilation_rate=dilation, activation="relu")
        outs.append(_randomized(layer, shape)(inp))
    check(keras.Model(inp, outs), shape, tmp_path)


def test_conv1d_3d_transpose_and_channels_first(tmp_path):
    inp = keras.Input((7, 3))
    layer = _randomized(layers.Conv1DTranspose(4, 4, strides=2, padding="same"), (7, 3))
    check(keras.Model(inp, layer(inp)), (7, 3), tmp_path)
    inp3 = keras.Input((3, 4, 5, 2))
    layer = _randomized(layers.Conv3DTranspose(4, 2, strides=2), (3, 4, 5, 2))
    check(keras.Model(inp3, layer(inp3)), (3, 4, 5, 2), tmp_path)
    inp_cf = keras.Input((4, 6, 7))
    layer = _randomized(layers.Conv2DTranspose(3, 3, strides=2, padding="same", data_format="channels_first"), (4, 6, 7))
    check(keras.Model(inp_cf, layer(inp_cf)), (4, 6, 7), tmp_path)


def test_time_distributed(tmp_path):
    shape = (5, 8, 3)
    inp = keras.Input(shape)
    dense = _randomized(layers.Dense(6, activation="tanh"), (8, 3))
    conv = _randomized(layers.Conv1D(4, 3), (8, 3))
    check(keras.Model(inp, [layers.TimeDistributed(dense)(inp), layers.TimeDistributed(conv)(inp)]), shape, tmp_path)


def test_unsupported_resizing_options_name_themselves(tmp_path):
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, layers.Resizing(4, 4, interpolation="bicubic")(inp))
    with pytest.raises(UnsupportedModelError, match="bicubic.*bilinear and nearest"):
        mle.export_model(model, tmp_path / "m.mle", sample_input=np.zeros((1, 8, 8, 3), np.float32))
    model = keras.Model(inp, layers.CenterCrop(10, 4)(inp))
    with pytest.raises(UnsupportedModelError, match="CenterCrop to 10x4 of a smaller 8x8"):
        mle.export_model(model, tmp_path / "m.mle", sample_input=np.zeros((1, 8, 8, 3), np.float32))


# --- masks ---------------------------------------------------------------------------------------


def _token_batch(n, steps=7, vocab=20):
    """Token ids with padding (0): a fully padded row, leading, trailing and inner padding."""
    ids = rng.integers(1, vocab, (max(n, 4), steps)).astype(np.int32)
    ids[0, 4:] = 0
    ids[1, :] = 0
    ids[2, :2] = 0
    ids[3, 3] = 0
    return ids[:n] if n >= 4 else ids[[0, 2, 3][:n]]


def _output_keys(model):
    """The exporter's output names: ``output``, then ``output:<keras name>`` (repeats get ``_`` appended)."""
    names: list[str] = []
    for n in model.output_names:
        while n in names:
            n += "_"
        names.append(n)
    return ["output"] + [f"output:{n}" for n in names[1:]]


def check_masked(model, make, tmp_path, batches=(1, 4)):
    """Like ``check`` for token inputs; NaN where Keras gives NaN (a mean over no kept step is 0/0)."""
    path = tmp_path / "masked.mle"
    mle.export_model(model, path, sample_input=make(4))
    m = mle.load_model(path)
    worst = 0.0
    for n in batches:
        x = make(n)
        native = [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(model(x, training=False))]
        ours = dict(zip(m.outputs, m.run([x])))
        for key, t in zip(_output_keys(model) if hasattr(model, "output_names") else ["output"], native):
            o = ours[key]
            assert o.shape == t.shape, (key, o.shape, t.shape)
            np.testing.assert_array_equal(np.isnan(o), np.isnan(t), err_msg=key)
            err = np.nan_to_num(np.abs(o.astype(np.float64) - t))
            assert np.all(err <= TOL * (1 + np.abs(np.nan_to_num(t)))), f"{key} at batch {n}: {err.max()}"
            worst = max(worst, float(err.max()))
    return worst


def _randomize(model, scale=0.3):
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([(w + scale * rng.standard_normal(w.shape)).astype(w.dtype) for w in weights])
    return model


def _recurrent_outputs(emb, full):
    outs = [layers.GRU(5, go_backwards=True, return_sequences=True)(emb)]
    outs += layers.LSTM(4, return_state=True)(emb)
    outs.append(layers.Bidirectional(layers.SimpleRNN(4, return_sequences=True))(emb))
    if full:
        outs.append(layers.Bidirectional(layers.LSTM(4, return_sequences=True))(emb))
        for cls in (layers.LSTM, layers.GRU, layers.SimpleRNN):
            outs += [cls(5, return_sequences=True)(emb), cls(5)(emb), cls(5, go_backwards=True)(emb)]
        outs += layers.GRU(4, return_state=True, return_sequences=True)(emb)
        outs.append(layers.Bidirectional(layers.GRU(4), merge_mode="sum")(emb))
        outs.append(layers.Bidirectional(layers.SimpleRNN(4, return_sequences=True), merge_mode="mul")(emb))
        seq = layers.GRU(6, return_sequences=True, reset_after=False)(emb)
        outs.append(layers.LSTM(3)(layers.Dense(6)(seq)))  # the mask passes through Dense
    return outs


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_masks_through_recurrent_layers(full, tmp_path):
    """Embedding(mask_zero=True) → LSTM/GRU/SimpleRNN: sequences, last outputs, go_backwards, states, bidirectional."""
    inp = keras.Input((7,), dtype="int32")
    emb = layers.Embedding(20, 6, mask_zero=True)(inp)
    model = _randomize(keras.Model(inp, _recurrent_outputs(emb, full)))
    check_masked(model, _token_batch, tmp_path, batches=(1, 3, 4) if full else (4,))


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_masks_through_pooling_merges_and_attention(full, tmp_path):
    inp = keras.Input((7,), dtype="int32")
    emb = layers.Embedding(20, 6, mask_zero=True)(inp)
    seq = layers.GRU(6, return_sequences=True)(emb)
    outs = [
        layers.GlobalAveragePooling1D()(layers.Average()([seq, emb])),
        layers.Attention()([seq, emb]),
        layers.GlobalAveragePooling1D()(layers.MultiHeadAttention(2, 3)(seq, emb)),
    ]
    if full:
        outs += [
            layers.GlobalAveragePooling1D()(seq),
            layers.LSTM(3)(layers.Concatenate()([seq, emb])),
            layers.LSTM(3)(layers.Add()([seq, emb])),
            layers.LSTM(3)(layers.Attention(use_scale=True)([emb, seq], use_causal_mask=True)),
        ]
        mha = layers.MultiHeadAttention(2, 3)(emb, emb, use_causal_mask=True)
        outs += [mha, layers.GlobalAveragePooling1D()(mha)]
        outs.append(layers.Attention()([emb, emb]))  # after MultiHeadAttention(emb, ...), Keras has removed emb's mask
    check_masked(_randomize(keras.Model(inp, outs)), _token_batch, tmp_path, batches=(1, 3, 4) if full else (4,))


@pytest.mark.slow
def test_masks_in_sequential_and_nested_models(tmp_path):
    seq_model = keras.Sequential([keras.Input((7,), dtype="int32"), layers.Embedding(20, 6, mask_zero=True),
                                  layers.LSTM(5, return_sequences=True), layers.Dense(4), layers.GRU(3)])
    check_masked(_randomize(seq_model), _token_batch, tmp_path, batches=(3, 4))
    inner_in = keras.Input((7, 6))
    inner = keras.Model(inner_in, layers.LSTM(4, return_sequences=True)(inner_in))
    inp = keras.Input((7,), dtype="int32")
    out = layers.GlobalAveragePooling1D()(inner(layers.Embedding(20, 6, mask_zero=True)(inp)))
    check_masked(_randomize(keras.Model(inp, out)), _token_batch, tmp_path, batches=(3, 4))


def test_masking_layer(tmp_path):
    def make(n):
        x = rng.standard_normal((n, 6, 3)).astype(np.float32)
        x[0, 4:] = 0.5
        x[-1, 1] = 0.5
        return x

    inp = keras.Input((6, 3))
    masked = layers.Masking(0.5)(inp)
    outs = [masked, layers.LSTM(4)(masked)]
    check_masked(_randomize(keras.Model(inp, outs)), make, tmp_path, batches=(3,))


def test_unsupported_mask_consumers_name_themselves(tmp_path):
    inp = keras.Input((7, 3, 2))
    model = keras.Model(inp, layers.TimeDistributed(layers.LSTM(3))(layers.Masking()(inp)))
    with pytest.raises(UnsupportedModelError, match="TimeDistributed of LSTM with a mask is not supported"):
        mle.export_model(model, tmp_path / "m.mle", sample_input=np.ones((2, 7, 3, 2), np.float32))
