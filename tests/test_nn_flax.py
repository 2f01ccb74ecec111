"""Parity of Flax modules (nnx and bound linen), exported through their jaxpr, against Flax itself.

Each model is exported once (symbolic batch) and compared at batch sizes 1, 7
and 64 with bound |ours - flax| <= tol * (1 + |flax|): 1e-5 for these small
models (outputs are O(1); the graph runs the same primitives as Flax, in
float32, so only XLA's fusion order differs).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flax")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import linen, nnx  # noqa: E402

import mlejax as mle  # noqa: E402
from helpers import assert_close  # noqa: E402
from mlejax.format.errors import UnsupportedModelError  # noqa: E402

BATCHES = (1, 7, 64)
rng = np.random.default_rng(0)


def check(model, make_inputs, tmp_path, tol=1e-5):
    """Export ``model`` (sampled on 7 rows), then compare every output at each batch size; return the worst error."""
    report = mle.export_model(model, tmp_path / "net.mle", sample_input=make_inputs(7))
    assert report["verification"]["predict"]["max_rel_error"] <= tol
    m = mle.load_model(tmp_path / "net.mle")
    worst = 0.0
    for n in BATCHES:
        inputs = make_inputs(n)
        native = [np.asarray(t) for t in jax.tree_util.tree_leaves(model(*(jnp.asarray(a) for a in inputs)))]
        ours = m.run(inputs)
        assert len(ours) == len(native)
        for o, t in zip(ours, native):
            worst = max(worst, assert_close(o, t, tol, what=f"batch {n}"))
    return worst


def floats(*shape):
    return lambda n: [rng.standard_normal((n, *shape)).astype(np.float32)]


class MLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(12, 32, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.l2 = nnx.Linear(32, 16, rngs=rngs)
        self.l3 = nnx.Linear(16, 4, rngs=rngs)

    def __call__(self, x):
        h = self.drop(nnx.relu(self.l1(x)))
        h = nnx.silu(self.l2(h))
        return nnx.log_softmax(self.l3(h))


class CNN(nnx.Module):
    def __init__(self, rngs):
        self.c1 = nnx.Conv(1, 6, (5, 5), padding="SAME", rngs=rngs)
        self.bn = nnx.BatchNorm(6, rngs=rngs)
        self.c2 = nnx.Conv(6, 8, (3, 3), strides=(2, 2), padding="VALID", feature_group_count=2, rngs=rngs)
        self.ln = nnx.LayerNorm(16, rngs=rngs)
        self.fc = nnx.Linear(8 * 3 * 3, 16, rngs=rngs)
        self.out = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        y = nnx.max_pool(nnx.relu(self.bn(self.c1(x))), (2, 2), (2, 2))
        y = nnx.avg_pool(nnx.gelu(self.c2(y)), (2, 2), (1, 1), padding="SAME")
        y = self.ln(nnx.tanh(self.fc(y.reshape(y.shape[0], -1))))
        return self.out(y)


class AttentionBlock(nnx.Module):
    """Embedding + self-attention with a key padding mask + MLP, pre-norm residuals; two outputs."""

    def __init__(self, rngs, vocab=30, d=16):
        self.embed = nnx.Embed(vocab, d, rngs=rngs)
        self.ln1 = nnx.LayerNorm(d, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=2, in_features=d, decode=False, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, rngs=rngs)
        self.mlp = nnx.Linear(d, d, rngs=rngs)
        self.head = nnx.Linear(d, 3, rngs=rngs)

    def __call__(self, ids, keep):
        h = self.embed(ids)
        mask = nnx.make_attention_mask(jnp.ones_like(keep), keep)
        h = h + self.attn(self.ln1(h), mask=mask)
        h = h + nnx.gelu(self.mlp(self.ln2(h)), approximate=False)
        pooled = (h * keep[..., None]).sum(1) / keep.sum(1, keepdims=True)
        return {"logits": self.head(pooled), "tokens": h}


def tokens(n, seq=8, vocab=30):
    ids = rng.integers(0, vocab, (n, seq)).astype(np.int32)
    keep = (np.arange(seq)[None, :] < rng.integers(2, seq + 1, n)[:, None]).astype(np.float32)
    return [ids, keep]


def _randomize_batch_stats(model):
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.BatchStat):
            var[...] = jnp.asarray(rng.uniform(0.5, 1.5, var.shape), jnp.float32)
    return model


REFERENCE = {
    "mlp": (lambda: MLP(nnx.Rngs(0)), floats(12)),
    "cnn": (lambda: _randomize_batch_stats(CNN(nnx.Rngs(0))), floats(14, 14, 1)),
    "attention": (lambda: AttentionBlock(nnx.Rngs(0)), tokens),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_models(name, tmp_path):
    make, inputs = REFERENCE[name]
    worst = check(make(), inputs, tmp_path)
    print(f"flax {name}: worst abs error {worst:.2e}")


def test_output_names_kept(tmp_path):
    mle.export_model(AttentionBlock(nnx.Rngs(0)), tmp_path / "a.mle", sample_input=tokens(3))
    m = mle.load_model(tmp_path / "a.mle")
    assert m.outputs == ["output", "output:tokens"]
    assert [i.name for i in m.graph.inputs] == ["ids", "keep"]
    assert m.graph.inputs[0].dtype == "int32"


class LinenMLP(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = linen.Dense(16)(x)
        x = linen.LayerNorm()(linen.elu(x))
        return linen.Dense(2)(linen.softplus(x))


def test_linen_bound_module(tmp_path):
    module = LinenMLP()
    variables = module.init(jax.random.key(0), jnp.zeros((1, 5)))
    check(module.bind(variables), floats(5), tmp_path)


def test_linen_unbound_module_is_refused(tmp_path):
    with pytest.raises(UnsupportedModelError, match="bind"):
        mle.export_model(LinenMLP(), tmp_path / "x.mle", input_shape=(1, 5))


def test_mlp_gradient_matches_jax(tmp_path):
    model = MLP(nnx.Rngs(0))
    mle.export_model(model, tmp_path / "m.mle", input_shape=(1, 12))
    f = mle.load_model(tmp_path / "m.mle").jax_function()
    X = rng.standard_normal((7, 12)).astype(np.float32)
    model.eval()
    expected = jax.grad(lambda x: model(x)[:, 0].sum())(X)
    got = jax.grad(lambda x: f(x)[:, 0].sum())(X)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-5, rtol=0)


class Sorter(nnx.Module):
    def __init__(self, rngs):
        self.l = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x):
        return jnp.sort(self.l(x), axis=-1)


def test_unsupported_primitive_is_named(tmp_path):
    with pytest.raises(UnsupportedModelError, match=r"'sort'.*test_nn_flax"):
        mle.export_model(Sorter(nnx.Rngs(0)), tmp_path / "s.mle", input_shape=(1, 4))
