"""Parity of PyTorch networks exported through torch.export against torch itself (eval mode).

Every model is exported once, loaded, and compared with torch at batch sizes
1, 7 and 64 (the file has a symbolic batch). Bound: |ours - torch| <=
tol * (1 + |torch|) with tol = 1e-4 for deep stacks and 1e-5 for single layers
(the outputs here are O(1), so this is the issue's max-abs bound; the relative
part only matters for the arithmetic test, whose values reach ~30). Float32
sums in a different order differ by a few ulps per accumulation, which is why
deep stacks get 1e-4.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import mlejax as mle  # noqa: E402
from mlejax.format.errors import UnsupportedModelError  # noqa: E402
from helpers import assert_close  # noqa: E402

BATCHES = (1, 7, 64)
rng = np.random.default_rng(0)


def _torch_out(module, inputs):
    tensors = [torch.as_tensor(a) if a.dtype.kind != "i" else torch.as_tensor(a).long() for a in inputs]
    with torch.no_grad():
        out = module(*tensors)
    return [t.numpy() for t in torch.utils._pytree.tree_leaves(out)]


def check(module, make_inputs, tmp_path, tol=1e-4, name="net.mle"):
    """Export ``module`` (sampled on 7 rows), then compare every output at each batch size; return the worst error."""
    torch.manual_seed(0)
    module.eval()
    path = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        report = mle.export_model(module, path, sample_input=make_inputs(7))
    assert report["verification"]["predict"]["max_rel_error"] <= tol
    m = mle.load_model(path)
    worst = 0.0
    for n in BATCHES:
        inputs = make_inputs(n)
        native = _torch_out(module, inputs)
        ours = m.run(inputs)
        assert len(ours) == len(native)
        for o, t in zip(ours, native):
            assert o.shape == t.shape, (o.shape, t.shape)
            worst = max(worst, assert_close(o, t, tol, what=f"batch {n}"))
        assert_close(m.predict(*inputs), native[0], tol, what=f"predict, batch {n}")
    return worst


def floats(*shape, scale=1.0):
    return lambda n: [(scale * rng.standard_normal((n, *shape))).astype(np.float32)]


# --- reference models -----------------------------------------------------------------


def mlp():
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 3))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))

    def forward(self, x):
        return F.log_softmax(self.head(self.features(x)), dim=-1)


def _randomize_bn(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return module


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2), Block(16, 16, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class LSTMClassifier(nn.Module):
    def __init__(self, cell="lstm", bidirectional=False, batch_first=True):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.batch_first = batch_first
        self.rnn = rnn(6, 12, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)
        self.fc = nn.Linear(12 * (2 if bidirectional else 1), 4)

    def forward(self, x):
        if not self.batch_first:
            x = x.transpose(0, 1)
        y, h = self.rnn(x)
        last = y[:, -1] if self.batch_first else y[-1]
        return self.fc(last), (h[0] if isinstance(h, tuple) else h).transpose(0, 1)


class TinyTransformer(nn.Module):
    def __init__(self, vocab=50, d=16, heads=2, seq=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, seq, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=32, dropout=0.1, batch_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 3)

    def forward(self, ids, padding_mask):
        h = self.encoder(self.embed(ids) + self.pos, src_key_padding_mask=padding_mask)
        keep = (~padding_mask).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def token_inputs(n, seq=10, vocab=50):
    ids = rng.integers(0, vocab, (n, seq)).astype(np.int64)
    lengths = rng.integers(3, seq + 1, n)
    mask = np.arange(seq)[None, :] >= lengths[:, None]  # True = padding
    return [ids, mask]


REFERENCE = {
    "mlp": (mlp, floats(20), 1e-5),
    "lenet": (LeNet, floats(1, 28, 28), 1e-4),
    "resnet": (lambda: _randomize_bn(ResNet()), floats(3, 16, 16), 1e-4),
    "lstm": (LSTMClassifier, floats(9, 6), 1e-4),
    "gru_bidirectional_time_major": (lambda: LSTMClassifier("gru", True, False), floats(9, 6), 1e-4),
    "rnn_bidirectional": (lambda: LSTMClassifier("rnn", True), floats(9, 6), 1e-4),
    "lstm_bidirectional_time_major": (lambda: LSTMClassifier("lstm", True, False), floats(9, 6), 1e-4),
    "transformer": (TinyTransformer, token_inputs, 1e-4),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_models(name, tmp_path):
    torch.manual_seed(0)
    make, inputs, tol = REFERENCE[name]
    worst = check(make(), inputs, tmp_path, tol)
    print(f"{name}: worst abs error {worst:.2e}")


def test_mlp_gradient_matches_torch_autograd(tmp_path):
    import jax

    torch.manual_seed(0)
    module = mlp().eval()
    X = rng.standard_normal((7, 20)).astype(np.float32)
    mle.export_model(module, tmp_path / "mlp.mle", input_shape=(1, 20))
    f = mle.load_model(tmp_path / "mlp.mle").jax_function()
    ours = jax.grad(lambda x: f(x).sum())(X)
    xt = torch.from_numpy(X).requires_grad_(True)
    module(xt).sum().backward()
    np.testing.assert_allclose(np.asarray(ours), xt.grad.numpy(), atol=1e-5, rtol=0)


# --- layers ---------------------------------------------------------------------------


class Lambda(nn.Module):
    def __init__(self, fn, *mods):
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleList(mods)

    def forward(self, *xs):
        return self.fn(self.mods, *xs)


LAYERS = {
    "conv1d_stride_dilation_groups": (nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), floats(4, 17), 1e-5),
    "conv2d_same_padding": (nn.Conv2d(3, 4, (3, 5), padding="same"), floats(3, 9, 11), 1e-5),
    "conv3d": (nn.Conv3d(2, 3, 3, stride=(1, 2, 2), padding=1), floats(2, 5, 6, 7), 1e-5),
    "conv_transpose2d": (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), floats(4, 5, 6), 1e-5),
    "conv_transpose2d_dilation": (nn.ConvTranspose2d(3, 2, (2, 3), stride=(1, 3), dilation=2), floats(3, 4, 5), 1e-5),
    "conv_transpose1d": (nn.ConvTranspose1d(3, 2, 4, stride=3, padding=1), floats(3, 7), 1e-5),
    "batchnorm1d": (_randomize_bn(nn.BatchNorm1d(5)), floats(5), 1e-5),
    "batchnorm1d_seq": (_randomize_bn(nn.BatchNorm1d(5)), floats(5, 4), 1e-5),
    "batchnorm_no_affine": (nn.BatchNorm2d(3, affine=False), floats(3, 4, 4), 1e-5),
    "layernorm_2d": (nn.LayerNorm((4, 5)), floats(3, 4, 5), 1e-5),
    "layernorm_no_affine": (nn.LayerNorm(6, elementwise_affine=False), floats(6), 1e-5),
    "groupnorm": (nn.GroupNorm(2, 6), floats(6, 3, 3), 1e-5),
    "maxpool_ceil_pad_dilation": (nn.MaxPool2d(3, stride=2, padding=1, dilation=1, ceil_mode=True), floats(2, 8, 9), 1e-5),
    "maxpool_dilation": (nn.MaxPool2d(2, stride=1, dilation=2), floats(2, 6, 6), 1e-5),
    "maxpool1d": (nn.MaxPool1d(3, stride=2, ceil_mode=True), floats(3, 10), 1e-5),
    "avgpool_ceil_include_pad": (nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True), floats(2, 8, 9), 1e-5),
    "avgpool_exclude_pad": (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), floats(2, 8, 9), 1e-5),
    "avgpool1d": (nn.AvgPool1d(2), floats(3, 9), 1e-5),
    "adaptive_avgpool": (nn.AdaptiveAvgPool2d((3, 2)), floats(2, 7, 5), 1e-5),
    "adaptive_maxpool": (nn.AdaptiveMaxPool2d((2, 3)), floats(2, 7, 5), 1e-5),
    "embedding": (nn.Embedding(10, 4), lambda n: [rng.integers(0, 10, (n, 6))], 1e-5),
    "flatten_dropout": (nn.Sequential(nn.Dropout(0.3), nn.Flatten(), nn.Linear(12, 2)), floats(3, 4), 1e-5),
    "reshape_permute_cat_split": (
        Lambda(lambda m, x: torch.cat([a * 2 for a in x.view(x.shape[0], 4, 3).permute(0, 2, 1).split([1, 3], dim=2)], dim=2).reshape(-1, 12)),
        floats(12), 1e-5,
    ),
    "arithmetic_broadcast": (
        Lambda(lambda m, x: ((x + 1) * x - x / (x.abs() + 1) - 0.5 * x.pow(2)).clamp(-3, 3) ** 3 + x.mean(-1, keepdim=True)),
        floats(3, 5), 1e-5,
    ),
    "matmul_bmm": (Lambda(lambda m, x: torch.bmm(x, x.transpose(1, 2)) @ torch.ones(4, 2)), floats(4, 3), 1e-5),
    "slice_select_chunk": (Lambda(lambda m, x: x[:, 1:4, ::2].sum(1) + x[:, 0, 1:2] + x.chunk(3, dim=1)[2].mean(1)[:, :3]), floats(6, 5), 1e-5),
    "multi_input_output": (
        Lambda(lambda m, a, b: (m[0](a) + b.sum(-1, keepdim=True), torch.sigmoid(b)), nn.Linear(3, 1)),
        lambda n: [rng.standard_normal((n, 3)).astype(np.float32), rng.standard_normal((n, 2)).astype(np.float32)],
        1e-5,
    ),
}

ACTIVATIONS = [
    nn.ReLU(), nn.LeakyReLU(0.2), nn.ELU(0.7), nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Sigmoid(), nn.Tanh(),
    nn.Softmax(dim=1), nn.LogSoftmax(dim=-1), nn.Softplus(beta=2.0, threshold=5.0), nn.Hardtanh(-0.5, 0.7), nn.Hardsigmoid(),
    nn.Hardswish(), nn.Mish(), nn.SELU(), nn.ReLU6(), nn.Softsign(), nn.LogSigmoid(), nn.PReLU(),
]


@pytest.mark.parametrize("name", list(LAYERS))
def test_layers(name, tmp_path):
    torch.manual_seed(0)
    module, inputs, tol = LAYERS[name]
    check(module, inputs, tmp_path, tol)


def test_activations(tmp_path):
    """All activations in one graph (one compile); inputs span the saturating ranges."""
    module = Lambda(lambda mods, x: torch.stack([mod(x) for mod in mods], dim=1), *ACTIVATIONS)
    check(module, floats(5, 8, scale=4.0), tmp_path, 1e-5)


def test_multihead_attention_masks(tmp_path):
    """nn.MultiheadAttention (time-major, need_weights) with a causal attention mask and a key padding mask."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)

    def fwd(mods, x, pad):
        q = x.transpose(0, 1)
        out, weights = mods[0](q, q, q, attn_mask=causal, key_padding_mask=pad)
        return out.transpose(0, 1), weights

    def inputs(n):
        pad = np.zeros((n, 5), bool)
        pad[:, -1] = np.arange(n) % 2 == 1  # True = ignore that key
        return [rng.standard_normal((n, 5, 8)).astype(np.float32), pad]

    check(Lambda(fwd, mha), inputs, tmp_path, 1e-5)


@pytest.mark.parametrize("kind", ["bool", "additive", "causal", "fully_masked_rows"])
def test_scaled_dot_product_attention(kind, tmp_path):
    def fwd(mods, q, k):
        if kind == "causal":
            return F.scaled_dot_product_attention(q, k, k, is_causal=True)
        if kind == "fully_masked_rows":  # query rows with q[..., 0] <= 0 see no key at all
            return F.scaled_dot_product_attention(q, k, k, attn_mask=q[..., :1] > 0)
        mask = (k[..., :1].transpose(-1, -2) > -1.0) if kind == "bool" else k[..., :1].transpose(-1, -2)
        mask = mask | torch.eye(6, dtype=torch.bool) if kind == "bool" else mask
        return F.scaled_dot_product_attention(q, k, k, attn_mask=mask, scale=0.3)

    def inputs(n):
        return [rng.standard_normal((n, 2, 6, 4)).astype(np.float32), rng.standard_normal((n, 2, 6, 4)).astype(np.float32)]

    check(Lambda(fwd), inputs, tmp_path, 1e-5)


def test_embedding_out_of_range_gives_nan(tmp_path):
    module = nn.Embedding(5, 3)
    mle.export_model(module, tmp_path / "e.mle", sample_input=np.array([[0, 4]]))
    out = mle.load_model(tmp_path / "e.mle").predict(np.array([[1, 5], [-1, 2]]))
    assert np.isnan(out[0, 1]).all() and np.isnan(out[1, 0]).all()
    np.testing.assert_array_equal(out[0, 0], module.weight[1].detach().numpy())


def test_input_shape_export_and_names(tmp_path):
    mle.export_model(mlp(), tmp_path / "m.mle", input_shape=(1, 20))
    m = mle.load_model(tmp_path / "m.mle")
    assert [i.name for i in m.graph.inputs] == ["input"]
    assert m.graph.inputs[0].shape == (None, 20)


def test_unsupported_op_names_op_and_module(tmp_path):
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Lambda(lambda m, x: torch.fft.rfft(x).abs())

        def forward(self, x):
            return self.inner(x)

    with pytest.raises(UnsupportedModelError, match=r"fft.*inner"):
        mle.export_model(Odd(), tmp_path / "o.mle", input_shape=(1, 8))


def test_rnn_with_initial_state(tmp_path):
    """Non-zero initial states are graph values (here a second input, batch-first, moved to torch's [L*D, B, H])."""
    gru = nn.GRU(4, 5, num_layers=2, bidirectional=True, batch_first=True)

    def fwd(mods, x, h):
        y, hn = mods[0](x, h.transpose(0, 1).contiguous())
        return y, hn.transpose(0, 1)

    inputs = lambda n: [rng.standard_normal((n, 6, 4)).astype(np.float32), rng.standard_normal((n, 4, 5)).astype(np.float32)]  # noqa: E731
    check(Lambda(fwd, gru), inputs, tmp_path, 1e-5)


# --- op rules in the layouts and modes the PyTorch exporter does not emit (Keras uses them) ----------


def run_op(op, *arrays, n_outputs=1, **attrs):
    from mlejax.format.graph import Node
    from mlejax.lowering.registry import get_rule

    node = Node(op, 1, op, tuple(f"in{i}" for i in range(len(arrays))), tuple(f"out{i}" for i in range(n_outputs)), attrs)
    return get_rule(node)(node, *arrays)


def _t(a):
    return torch.as_tensor(np.asarray(a))


def test_conv_channels_last_matches_channels_first():
    x = rng.standard_normal((2, 9, 8, 4)).astype(np.float32)  # NHWC
    w = rng.standard_normal((3, 3, 2, 6)).astype(np.float32)  # HWIO, groups=2
    b = rng.standard_normal(6).astype(np.float32)
    ours = run_op("Conv", x, w, b, strides=[2, 1], padding=[[1, 1], [0, 2]], dilation=[1, 2], groups=2, layout="channels_last")
    xt = F.pad(_t(x).permute(0, 3, 1, 2), (0, 2, 1, 1))
    ref = F.conv2d(xt, _t(w).permute(3, 2, 0, 1), _t(b), stride=(2, 1), dilation=(1, 2), groups=2).permute(0, 2, 3, 1)
    assert_close(np.asarray(ours), ref.numpy(), 1e-5)


def test_conv_transpose_channels_last_matches_torch():
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)  # NHWC
    w = rng.standard_normal((3, 2, 4, 3)).astype(np.float32)  # [kh, kw, O, I] (Keras Conv2DTranspose)
    ours = run_op("ConvTranspose", x, w, strides=[2, 2], padding=[[1, 1], [0, 0]], output_padding=[1, 0], layout="channels_last")
    ref = F.conv_transpose2d(_t(x).permute(0, 3, 1, 2), _t(w).permute(3, 2, 0, 1), stride=2, padding=(1, 0), output_padding=(1, 0))
    assert_close(np.asarray(ours), ref.permute(0, 2, 3, 1).numpy(), 1e-5)


def test_pools_and_norms_channels_last():
    x = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    xt = _t(x).permute(0, 3, 1, 2)
    back = lambda t: t.permute(0, 2, 3, 1).numpy()  # noqa: E731
    pool = dict(kernel=[3, 2], strides=[2, 2], padding=[[1, 1], [0, 0]], layout="channels_last")
    assert_close(np.asarray(run_op("MaxPool", x, **pool)), back(F.max_pool2d(xt, (3, 2), 2, (1, 0))), 1e-6)
    assert_close(np.asarray(run_op("AvgPool", x, count_include_pad=False, **pool)), back(F.avg_pool2d(xt, (3, 2), 2, (1, 0), count_include_pad=False)), 1e-6)
    assert_close(np.asarray(run_op("AdaptiveAvgPool", x, output_size=[3, 4], layout="channels_last")), back(F.adaptive_avg_pool2d(xt, (3, 4))), 1e-6)
    scale, bias = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    ours = run_op("GroupNorm", x, scale, bias, groups=2, eps=1e-3, layout="channels_last")
    assert_close(np.asarray(ours), back(F.group_norm(xt, 2, _t(scale), _t(bias), 1e-3)), 1e-5)
    mean, var = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    ours = run_op("BatchNorm", x, mean, var, scale, bias, eps=1e-3, axis=-1)
    assert_close(np.asarray(ours), back(F.batch_norm(xt, _t(mean), _t(var), _t(scale), _t(bias), False, 0.0, 1e-3)), 1e-5)
    ln_scale = rng.standard_normal((7, 4)).astype(np.float32)
    ours = run_op("LayerNorm", x, ln_scale, axes=[1, 3], eps=1e-3)  # non-trailing normalised axes
    xm = _t(x).permute(0, 2, 1, 3)  # move the normalised axes last
    ref = F.layer_norm(xm, (7, 4), _t(ln_scale), None, 1e-3).permute(0, 2, 1, 3)
    assert_close(np.asarray(ours), ref.numpy(), 1e-5)


def test_gru_reset_before_and_custom_activations():
    """GRU with linear_before_reset=False (Keras reset_after=False) and hard-sigmoid gates, against a numpy loop."""
    T_, B, I, H = 5, 3, 4, 6
    x = rng.standard_normal((B, T_, I)).astype(np.float32)
    W, R = rng.standard_normal((3 * H, I)).astype(np.float32) * 0.5, rng.standard_normal((3 * H, H)).astype(np.float32) * 0.5
    bw, br = rng.standard_normal(3 * H).astype(np.float32), rng.standard_normal(3 * H).astype(np.float32)
    y, hn = run_op("GRU", x, W, R, bw, br, n_outputs=2, hidden_size=H, linear_before_reset=False, recurrent_activation="HardSigmoid")
    hs = lambda v: np.clip(v / 6 + 0.5, 0, 1)  # noqa: E731
    h = np.zeros((B, H))
    for t in range(T_):
        xw = x[:, t] @ W.T + bw
        r = hs(xw[:, :H] + h @ R[:H].T + br[:H])
        z = hs(xw[:, H : 2 * H] + h @ R[H : 2 * H].T + br[H : 2 * H])
        n = np.tanh(xw[:, 2 * H :] + (r * h) @ R[2 * H :].T + br[2 * H :])
        h = (1 - z) * n + z * h
        assert_close(np.asarray(y)[:, t], h, 1e-5)
    assert_close(np.asarray(hn)[0], h, 1e-5)


def test_multi_head_attention_op_matches_torch():
    """The MultiHeadAttention op (x @ w layout, additive mask) against nn.MultiheadAttention."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    q = rng.standard_normal((3, 4, 8)).astype(np.float32)
    kv = rng.standard_normal((3, 5, 8)).astype(np.float32)
    pad = np.zeros((3, 5), bool)
    pad[1, 3:] = True
    wq, wk, wv = (t.T.detach().numpy() for t in mha.in_proj_weight.chunk(3))
    bq, bk, bv = (t.detach().numpy() for t in mha.in_proj_bias.chunk(3))
    additive = np.where(pad, -np.inf, 0.0).astype(np.float32)[:, None, None, :]
    ours = run_op("MultiHeadAttention", q, kv, kv, wq, bq, wk, bk, wv, bv, mha.out_proj.weight.T.detach().numpy(),
                  mha.out_proj.bias.detach().numpy(), additive, num_heads=2, mask_kind="additive")
    with torch.no_grad():
        ref = mha(_t(q), _t(kv), _t(kv), key_padding_mask=_t(pad), need_weights=False)[0]
    assert_close(np.asarray(ours), ref.numpy(), 1e-5)
