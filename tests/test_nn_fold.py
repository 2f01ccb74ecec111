"""Batch-norm folding at export (exporters/_nn_fold.py): the folded file matches the framework.

Every model has randomised batch-norm statistics and affine terms, so a
wrong axis or a wrong formula shows; the truth is the framework's own output.
"""

from __future__ import annotations

import numpy as np
import pytest

import mlejax as mle
from mlejax.exporters._nn_fold import fold_batch_norm
from mlejax.format.graph import GraphBuilder

from helpers import assert_close

torch = pytest.importorskip("torch")
nn = torch.nn


def _randomise(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 2 + 0.05)
                if m.affine:
                    m.weight.copy_(torch.randn(m.num_features, generator=gen))
                    m.bias.copy_(torch.randn(m.num_features, generator=gen))
    return model.eval()


class _Block(nn.Module):
    """Conv+BN pairs of every kind: with and without conv bias, depthwise, a BN without affine terms,
    a conv whose output is also read elsewhere (must not fold), and Linear+BN1d."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8, affine=False))
        self.c = nn.Conv2d(8, 16, 1, bias=False)
        self.c_bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 6)
        self.fc_bn = nn.BatchNorm1d(6)

    def forward(self, x):
        y = self.b(self.a(x))
        z = self.c(y)
        z = self.c_bn(z) + z.mean(dim=(2, 3), keepdim=True)  # c's output has two readers
        return self.fc_bn(self.fc(z.mean(dim=(2, 3))))


def test_torch_conv_bn_folds_within_bound(tmp_path):
    torch.manual_seed(0)
    model = _randomise(_Block())
    x = np.random.default_rng(0).standard_normal((5, 3, 9, 9)).astype(np.float32)
    path = tmp_path / "m.mle"
    mle.export_model(model, path, sample_input=x[:3])
    loaded = mle.load_model(path)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert_close(loaded.predict(x), ref, tol=1e-5)
    assert np.abs(loaded.predict(x) - ref).max() <= 1e-5 * np.abs(ref).max()
    ops = [n.op for n in loaded.graph.nodes]
    assert ops.count("BatchNorm") == 2, ops  # c_bn (conv read twice) and fc_bn (axis 1 of a linear) stay


def test_fold_pass_on_a_builder_matches_numpy():
    """The pass itself on a hand-built Conv -> BatchNorm graph (channels_last) against a numpy BN."""
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    x = b.add_input("x", "float32", (None, 5, 5, 4))
    w = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    stats = [rng.standard_normal(6), rng.random(6) + 0.1, rng.standard_normal(6), rng.standard_normal(6)]
    y = b.op("Conv", x, b.tensor("w", w), strides=[1, 1], padding=[[1, 1], [1, 1]], dilation=[1, 1], groups=1, layout="channels_last")
    z = b.op("BatchNorm", y, *(b.tensor("s", s.astype(np.float32)) for s in stats), eps=1e-3, axis=-1)
    assert fold_batch_norm(b, [z]) == 1
    b.set_output("output", z)
    graph = b.build()
    (node,) = graph.nodes
    assert node.op == "Conv" and node.outputs == (z,) and len(node.inputs) == 3
    mean, var, gamma, beta = stats
    f = gamma / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(b.tensors[node.inputs[1]], w * f, rtol=1e-6)
    np.testing.assert_allclose(b.tensors[node.inputs[2]], beta - mean * f, rtol=1e-5, atol=1e-6)
    assert set(b.tensors) == {node.inputs[1], node.inputs[2]}  # the unfolded tensors are gone


def test_kept_output_is_not_folded():
    b = GraphBuilder()
    x = b.add_input("x", "float32", (None, 2, 4, 4))
    y = b.op("Conv", x, b.tensor("w", np.ones((2, 2, 1, 1), np.float32)), layout="channels_first")
    z = b.op("BatchNorm", y, b.tensor("m", np.zeros(2, np.float32)), b.tensor("v", np.ones(2, np.float32)), eps=1e-5, axis=1)
    assert fold_batch_norm(b, [y, z]) == 0
    b.set_output("output", z)
    assert [n.op for n in b.build().nodes] == ["Conv", "BatchNorm"]
