"""Parity of Keras 3 models (Sequential and functional) against Keras itself in inference mode.

Each model is exported once (checked on 7 rows), loaded, and compared with
``model(x, training=False)`` at batch sizes 1, 7 and 64 (the file has a
symbolic batch). Several layers are bundled into one functional model with
one output per case, so one export covers many layers. Bound: max abs error
<= 1e-4 on float32 where values pass through sums (matmul, conv, norms,
recurrences: the summation order differs from TensorFlow's by a few ulps per
term), 1e-5 for elementwise-only and data-movement layers.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
layers = keras.layers

import mlejax as mle  # noqa: E402
from mlejax.cli import export_main  # noqa: E402
from mlejax.format.errors import InputError, UnsupportedModelError  # noqa: E402

BATCHES = (1, 7, 64)
rng = np.random.default_rng(0)


def _randomize(model, scale=0.1):
    """Perturb every weight (biases and BN statistics become non-trivial); variances stay positive."""
    for layer in model.layers:
        new = []
        for v, w in zip(layer.weights, layer.get_weights()):
            if "variance" in v.name:
                new.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
            else:
                new.append((w + scale * rng.standard_normal(w.shape)).astype(w.dtype))
        if new:
            layer.set_weights(new)
    return model


def _native(model, inputs):
    out = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(out)]


def check(model, make_inputs, tmp_path, tol=1e-4, relative=False):
    """Export ``model``, then compare every output at each batch size; return the worst abs error.

    ``relative`` bounds |ours - keras| by tol * (1 + |keras|) instead (for outputs such as exp(x)).
    """
    path = tmp_path / "net.mle"
    report = mle.export_model(model, path, sample_input=make_inputs(7))
    assert report["verification"]["predict"]["max_rel_error" if relative else "max_abs_error"] <= tol
    m = mle.load_model(path)
    keys = ["output"] + [f"output:{n}" for n in getattr(model, "output_names", [])[1:]]  # Sequential: one output
    assert sorted(m.outputs) == sorted(keys)
    worst = 0.0
    for n in BATCHES:
        inputs = make_inputs(n)
        native = _native(model, inputs)
        ours = dict(zip(m.outputs, m.run(inputs)))
        for key, t in zip(keys, native):
            o = ours[key]
            assert o.shape == t.shape, (key, o.shape, t.shape)
            diff = np.abs(o.astype(np.float64) - t)
            err = float(np.max(diff / (1 + np.abs(t)) if relative else diff)) if t.size else 0.0
            assert err <= tol, f"{key} at batch {n}: max {'relative' if relative else 'abs'} error {err} > {tol}"
            worst = max(worst, float(np.max(diff)) if t.size else 0.0)
        np.testing.assert_allclose(m.predict(*inputs), native[0], atol=tol, rtol=tol if relative else 0)
    return worst


def floats(*shape, scale=1.0):
    return lambda n: [(scale * rng.standard_normal((n, *shape))).astype(np.float32)]


def tokens(seq=10, vocab=40):
    return lambda n: [rng.integers(0, vocab, (n, seq)).astype(np.int32)]


def branches(inp, cases):
    """A functional model with one named output per (name, layer-or-fn) case applied to ``inp``."""
    outs = [(layer(inp) if callable(layer) else layer) for _, layer in cases]
    outs = [layers.Identity(name=f"out_{name}")(o) for (name, _), o in zip(cases, outs)]
    return keras.Model(inp, outs)


# --- reference models -------------------------------------------------------------------------


def mlp():
    return keras.Sequential([
        keras.Input((20,)), layers.Dense(32, activation="relu"), layers.Dropout(0.3),
        layers.Dense(16, activation="tanh"), layers.Dense(3, activation="softmax"),
    ])


def lenet():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(6, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, activation="relu"), layers.AveragePooling2D(2),
        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dropout(0.5), layers.Dense(10, activation="softmax"),
    ])


def resnet():
    def block(x, filters, stride):
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
        if stride != 1 or x.shape[-1] != filters:
            x = layers.BatchNormalization()(layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x))
        return layers.Activation("relu")(layers.Add()([x, y]))

    inp = keras.Input((16, 16, 3))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(inp)))
    for filters, stride in ((8, 1), (16, 2), (16, 1)):
        x = block(x, filters, stride)
    out = layers.Dense(5)(layers.GlobalAveragePooling2D()(x))
    return _randomize(keras.Model(inp, out))


def lstm_classifier():
    return _randomize(keras.Sequential([
        keras.Input((9, 6)), layers.LSTM(12, return_sequences=True), layers.LSTM(12), layers.Dense(4, activation="softmax"),
    ]))


def gru_bidirectional():
    return _randomize(keras.Sequential([
        keras.Input((9, 6)), layers.Bidirectional(layers.GRU(8, return_sequences=True)),
        layers.Bidirectional(layers.GRU(8, reset_after=False), merge_mode="sum"), layers.Dense(3),
    ]))


def transformer(vocab=40, seq=10, d=16):
    def encoder_block(x):
        attn = layers.MultiHeadAttention(num_heads=2, key_dim=8, dropout=0.1)(x, x)
        x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, layers.Dropout(0.1)(attn)]))
        ff = layers.Dense(d)(layers.Dense(32, activation="gelu")(x))
        return layers.LayerNormalization(epsilon=1e-6)(x + ff)

    ids = keras.Input((seq,), dtype="int32", name="ids")
    x = layers.Embedding(vocab, d)(ids)
    for _ in range(2):
        x = encoder_block(x)
    out = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling1D()(x))
    return _randomize(keras.Model(ids, out))


REFERENCE = {
    "mlp": (mlp, floats(20), 1e-5),
    "lenet": (lenet, floats(28, 28, 1), 1e-4),
    "resnet": (resnet, floats(16, 16, 3), 1e-4),
    "lstm": (lstm_classifier, floats(9, 6), 1e-4),
    "gru_bidirectional": (gru_bidirectional, floats(9, 6), 1e-4),
    "transformer": (transformer, tokens(), 1e-4),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_models(name, tmp_path):
    keras.utils.set_random_seed(0)
    make, inputs, tol = REFERENCE[name]
    worst = check(make(), inputs, tmp_path, tol)
    print(f"{name}: worst abs error {worst:.2e}")


# --- layers -----------------------------------------------------------------------------------

ACTIVATIONS = [
    "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "swish", "silu", "softplus", "softsign",
    "hard_sigmoid", "exponential", "linear", "relu6", "leaky_relu", "mish", "log_softmax", "celu", "hard_silu",
    "hard_tanh", "log_sigmoid", "tanh_shrink", "soft_shrink", "hard_shrink", "sparse_plus", "sparse_sigmoid",
    "squareplus", "sparsemax",
]


def test_activations(tmp_path):
    inp = keras.Input((12,))
    x = layers.Dense(12)(inp)
    cases = [(a, layers.Activation(a)(x)) for a in ACTIVATIONS]
    cases += [
        ("gelu_tanh", layers.Activation(keras.ops.gelu)(x)),  # keras.ops.gelu defaults to approximate=True
        ("elu_alpha", layers.Activation(functools.partial(keras.activations.elu, alpha=0.5))(x)),
        ("dense_swish", layers.Dense(5, activation="swish")(inp)),
        ("relu_layer", layers.ReLU(max_value=2.5, negative_slope=0.1, threshold=0.3)(x)),
        ("relu_threshold", layers.ReLU(threshold=0.2)(x)),
        ("relu_cap6", layers.ReLU(max_value=6.0, negative_slope=0.05)(x)),
        ("leaky", layers.LeakyReLU(negative_slope=0.1)(x)),
        ("elu_layer", layers.ELU(alpha=0.7)(x)),
        ("softmax_layer", layers.Softmax(axis=-1)(x)),
        ("prelu", layers.PReLU(alpha_initializer=keras.initializers.RandomUniform(-0.5, 0.5))(x)),
    ]
    model = branches(inp, cases)
    check(model, floats(12, scale=3.0), tmp_path, tol=1e-5, relative=True)


def test_conv_and_pooling_layers(tmp_path):
    img = keras.Input((12, 10, 4))
    seq = keras.Input((16, 3))
    chw = keras.Input((3, 9, 8))
    cases = [
        ("conv2d_stride_same", layers.Conv2D(5, (3, 2), strides=2, padding="same", activation="elu")(img)),
        ("conv2d_dilated_groups", layers.Conv2D(6, 3, dilation_rate=2, groups=2)(img)),
        ("depthwise", layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(img)),
        ("depthwise_stride", layers.DepthwiseConv2D((2, 3), strides=(2, 1))(img)),
        ("separable", layers.SeparableConv2D(7, 3, depth_multiplier=2, padding="same", activation="relu")(img)),
        ("max_same", layers.MaxPooling2D(3, strides=2, padding="same")(img)),
        ("avg_same", layers.AveragePooling2D(3, strides=2, padding="same")(img)),
        ("avg_valid", layers.AveragePooling2D((2, 3))(img)),
        ("gap2d", layers.GlobalAveragePooling2D()(img)),
        ("gmp2d_keep", layers.GlobalMaxPooling2D(keepdims=True)(img)),
        ("conv1d_causal", layers.Conv1D(4, 3, padding="causal", dilation_rate=2)(seq)),
        ("conv1d_same_stride", layers.Conv1D(4, 4, strides=3, padding="same")(seq)),
        ("separable1d", layers.SeparableConv1D(5, 3)(seq)),
        ("max1d", layers.MaxPooling1D(2)(seq)),
        ("avg1d_same", layers.AveragePooling1D(3, strides=2, padding="same")(seq)),
        ("gap1d", layers.GlobalAveragePooling1D()(seq)),
        ("gmp1d", layers.GlobalMaxPooling1D()(seq)),
    ]
    # TensorFlow runs channels_first convolutions on CPU only through oneDNN, which adds the bias to the
    # wrong channels for some shapes (checked against the same layer in channels_last), so the plain
    # channels_first convolutions here have no bias; the separable one's pointwise bias is right in TF.
    first = {"data_format": "channels_first"}
    cases += [
        ("cf_conv", layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False, **first)(chw)),
        ("cf_depthwise", layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, **first)(chw)),
        ("cf_separable", layers.SeparableConv2D(5, 3, padding="same", **first)(chw)),
        ("cf_max", layers.MaxPooling2D(2, **first)(chw)),
        ("cf_avg_same", layers.AveragePooling2D(3, strides=2, padding="same", **first)(chw)),
        ("cf_flatten", layers.Flatten(**first)(chw)),
        ("cf_gap", layers.GlobalAveragePooling2D(**first)(chw)),
        ("cf_zero_pad_crop", layers.Cropping2D(((1, 0), (0, 2)), **first)(layers.ZeroPadding2D((1, 2), **first)(chw))),
        ("zero_pad_2d", layers.ZeroPadding2D(((0, 1), (2, 1)))(img)),
    ]
    outs = [layers.Identity(name=f"out_{n}")(o) for n, o in cases]
    model = _randomize(keras.Model([img, seq, chw], outs))
    check(model, lambda n: floats(12, 10, 4)(n) + floats(16, 3)(n) + floats(3, 9, 8)(n), tmp_path)


def test_channels_first_convolutions_with_bias_match_their_channels_last_twin(tmp_path):
    """Where TensorFlow's CPU channels_first path is wrong (see above), the channels_last layer is the reference."""
    x = floats(3, 9, 8)(7)[0]
    for make in (lambda **k: layers.Conv2D(4, 3, strides=2, padding="same", **k), lambda **k: layers.DepthwiseConv2D(3, depth_multiplier=2, **k)):
        first = _randomize(keras.Sequential([keras.Input((3, 9, 8)), make(data_format="channels_first")]))
        last = keras.Sequential([keras.Input((9, 8, 3)), make()])
        last.set_weights(first.get_weights())
        mle.export_model(first, tmp_path / "cf.mle")
        ours = mle.load_model(tmp_path / "cf.mle").predict(x)
        twin = np.transpose(_native(last, [np.transpose(x, (0, 2, 3, 1))])[0], (0, 3, 1, 2))
        np.testing.assert_allclose(ours, twin, atol=1e-5, rtol=0)


def test_shape_merge_and_norm_layers(tmp_path):
    a = keras.Input((6, 4), name="a")
    b = keras.Input((6, 4), name="b")
    v = keras.Input((4,), name="v")
    inner = keras.Sequential([keras.Input((24,)), layers.Dense(5, activation="relu"), layers.Dense(2)], name="inner")
    shared = layers.Dense(3, name="shared")
    cases = [
        ("add3", layers.Add()([a, b, a])),
        ("subtract", layers.Subtract()([a, b])),
        ("multiply", layers.Multiply()([a, b])),
        ("average", layers.Average()([a, b])),
        ("maximum", layers.Maximum()([a, b])),
        ("minimum", layers.Minimum()([a, b])),
        ("concat_axis1", layers.Concatenate(axis=1)([a, b])),
        ("broadcast_add", layers.Add()([a, v])),
        ("ops_arith", (a * 2.0 + b) / 3.0 - 1.0),
        ("ops_getitem", a[:, 1:-1:2, 2] + keras.ops.cast(a, "int32")[:, -1, ::-2]),
        ("flatten", layers.Flatten()(a)),
        ("reshape", layers.Reshape((3, -1))(a)),
        ("permute", layers.Permute((2, 1))(a)),
        ("repeat", layers.RepeatVector(3)(v)),
        ("zero_pad", layers.ZeroPadding1D((1, 2))(a)),
        ("crop", layers.Cropping1D((2, 1))(a)),
        ("layer_norm", layers.LayerNormalization()(a)),
        ("layer_norm_2axes", layers.LayerNormalization(axis=[1, 2], center=False)(a)),
        ("rms_norm", layers.RMSNormalization()(a)),
        ("batch_norm", layers.BatchNormalization()(a)),
        ("batch_norm_plain", layers.BatchNormalization(axis=1, center=False, scale=False)(a)),
        ("einsum_dense", layers.EinsumDense("abc,cd->abd", output_shape=(None, 5), bias_axes="d")(a)),
        ("dense_3d", layers.Dense(3, use_bias=False)(a)),
        ("rescaling", layers.Rescaling(0.5, offset=-1.0)(a)),
        ("noise_identity", layers.GaussianNoise(1.0)(layers.SpatialDropout1D(0.5)(a))),
        ("nested_sequential", inner(layers.Flatten()(b))),
        ("shared_layer", layers.Add()([shared(a), shared(b)])),
    ]
    outs = [layers.Identity(name=f"out_{n}")(o) for n, o in cases]
    model = _randomize(keras.Model([a, b, v], outs))
    check(model, lambda n: floats(6, 4)(n) + floats(6, 4)(n) + floats(4)(n), tmp_path)


def test_embedding(tmp_path):
    ids = keras.Input((5,), dtype="int32")
    model = keras.Model(ids, layers.Flatten()(layers.Embedding(30, 3)(ids)))
    check(model, tokens(5, 30), tmp_path, tol=1e-5)  # masks: tests/test_nn_keras_layers.py


def test_recurrent_layers(tmp_path):
    seq = keras.Input((7, 5))
    cases = [
        ("gru_reset_after", layers.GRU(6, return_sequences=True)(seq)),
        ("gru_reset_before", layers.GRU(6, reset_after=False, go_backwards=True)(seq)),
        ("gru_no_bias", layers.GRU(4, use_bias=False)(seq)),
        ("simple_rnn", layers.SimpleRNN(6, return_sequences=True)(seq)),
        ("simple_rnn_relu_back", layers.SimpleRNN(4, activation="relu", go_backwards=True, return_sequences=True)(seq)),
        ("lstm_hard_sigmoid", layers.LSTM(5, recurrent_activation="hard_sigmoid", activation="relu")(seq)),
        ("lstm_backwards_seq", layers.LSTM(5, go_backwards=True, return_sequences=True)(seq)),
        ("bi_concat", layers.Bidirectional(layers.LSTM(4, return_sequences=True))(seq)),
        ("bi_ave", layers.Bidirectional(layers.SimpleRNN(4), merge_mode="ave")(seq)),
        ("bi_mul", layers.Bidirectional(layers.GRU(4, return_sequences=True), merge_mode="mul")(seq)),
    ]
    bi_none = layers.Bidirectional(layers.GRU(3), merge_mode=None)(seq)
    cases += [("bi_none_fwd", bi_none[0]), ("bi_none_bwd", bi_none[1])]
    out, h, c = layers.LSTM(4, return_state=True)(seq)
    cases += [("state_out", out), ("state_h", h), ("state_c", c)]
    decoded = layers.LSTM(4, return_sequences=True)(seq, initial_state=[h, c])
    cases.append(("initial_state", decoded))
    bi_states = layers.Bidirectional(layers.GRU(3, return_state=True))(seq)
    cases += [(f"bi_state{i}", t) for i, t in enumerate(bi_states)]
    outs = [layers.Identity(name=f"out_{n}")(o) for n, o in cases]
    model = _randomize(keras.Model(seq, outs))
    check(model, floats(7, 5), tmp_path)


def test_open_sequence_length_is_fixed_from_sample(tmp_path):
    model = _randomize(keras.Sequential([keras.Input((None, 4)), layers.GRU(5), layers.Dense(2)]))
    check(model, floats(6, 4), tmp_path)
    with pytest.raises(InputError, match="open dimensions"):
        mle.export_model(model, tmp_path / "open.mle")


def test_attention_masks_and_cross_attention(tmp_path):
    q = keras.Input((5, 8), name="query")
    kv = keras.Input((7, 6), name="memory")
    mask = keras.Input((5, 7), name="mask")
    mha = layers.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=5, output_shape=10)
    cases = [
        ("cross", mha(q, kv)),
        ("masked", mha(q, kv, attention_mask=mask)),
        ("key_value", layers.MultiHeadAttention(2, 3, use_bias=False)(q, kv, key=kv * 0.5)),
        ("causal", layers.MultiHeadAttention(2, 4)(q, q, use_causal_mask=True)),
        ("kwargs_call", layers.MultiHeadAttention(1, 8)(query=q, value=q)),
    ]
    outs = [layers.Identity(name=f"out_{n}")(o) for n, o in cases]
    model = _randomize(keras.Model([q, kv, mask], outs))

    def inputs(n):
        m = rng.random((n, 5, 7)) > 0.3
        m[:, :, 0] = True  # every query attends to at least one key (Keras and we differ on empty rows)
        return floats(5, 8)(n) + floats(7, 6)(n) + [m.astype(np.float32)]

    check(model, inputs, tmp_path)


# --- files and errors -------------------------------------------------------------------------


# keras' own .keras writer trips numpy 2's __array__(copy=) deprecation; nothing of ours is involved
_SAVE_WARNING = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@_SAVE_WARNING
def test_keras_file_exports_by_path(tmp_path):
    keras.utils.set_random_seed(0)
    model = lenet()
    model.save(tmp_path / "lenet.keras")
    X = floats(28, 28, 1)(5)[0]
    report = mle.export_model(str(tmp_path / "lenet.keras"), tmp_path / "lenet.mle", sample_input=X)
    assert report["verification"]["predict"]["max_abs_error"] <= 1e-4
    np.testing.assert_allclose(mle.load_model(tmp_path / "lenet.mle").predict(X), _native(model, [X])[0], atol=1e-4, rtol=0)
    np.save(tmp_path / "sample.npy", X)
    assert export_main([str(tmp_path / "lenet.keras"), str(tmp_path / "cli.mle"), "--sample", str(tmp_path / "sample.npy")]) == 0
    np.testing.assert_allclose(mle.load_model(tmp_path / "cli.mle").predict(X), _native(model, [X])[0], atol=1e-4, rtol=0)


@_SAVE_WARNING
def test_lambda_and_custom_layers_are_refused(tmp_path):
    inp = keras.Input((4,))
    lam = keras.Model(inp, layers.Dense(2)(layers.Lambda(lambda t: t * 2, name="double")(inp)), name="lam")
    with pytest.raises(UnsupportedModelError, match=r"lam/double.*Lambda"):
        mle.export_model(lam, tmp_path / "lam.mle")
    lam.save(tmp_path / "lam.keras")
    with pytest.raises(UnsupportedModelError, match=r"lam/double: Lambda"):
        mle.export_model(str(tmp_path / "lam.keras"), tmp_path / "lam2.mle")

    class Scale(layers.Layer):
        def call(self, x):
            return x * 3.0

    custom = keras.Sequential([keras.Input((4,)), layers.Dense(3), Scale(name="scale")], name="seq")
    with pytest.raises(UnsupportedModelError, match=r"seq/scale.*custom"):
        mle.export_model(custom, tmp_path / "custom.mle")
    custom.save(tmp_path / "custom.keras")
    with pytest.raises(UnsupportedModelError, match=r"seq/scale: custom class 'Scale'"):
        mle.export_model(str(tmp_path / "custom.keras"), tmp_path / "custom2.mle")


def test_unsupported_layer_and_subclassed_model_name_themselves(tmp_path):
    inp = keras.Input((8, 8, 2))
    model = keras.Model(inp, layers.ConvLSTM1D(2, 3, name="clstm")(inp), name="net")
    with pytest.raises(UnsupportedModelError, match=r"net/clstm: layer ConvLSTM1D is not supported"):
        mle.export_model(model, tmp_path / "up.mle")

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub(np.zeros((1, 3), np.float32))
    with pytest.raises(UnsupportedModelError, match="subclassed"):
        mle.export_model(sub, tmp_path / "sub.mle", input_shape=(1, 3))
