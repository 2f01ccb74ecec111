"""Flax control flow (``lax.scan``, ``while_loop``, ``cond``/``switch``) against Flax itself.

Loops are unrolled at export (``scan`` once per step, ``while_loop`` when its
trip count is known at export); ``cond`` picks its branch at export when the
predicate is a constant, otherwise every branch is computed and the index
selects. Every output is compared with the module's own call at batch sizes 1
and 3. Bound: |ours - flax| <= 1e-5 * (1 + |flax|).
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
flax = pytest.importorskip("flax")
from flax import linen as nn  # noqa: E402
from flax import nnx  # noqa: E402

import jax.numpy as jnp  # noqa: E402

import mlejax as mle  # noqa: E402
from mlejax.format.errors import UnsupportedModelError  # noqa: E402

rng = np.random.default_rng(5)


def check(model, x, tmp_path):
    """Export ``model`` and compare its first output with the module's call; return the worst abs error."""
    path = tmp_path / "m.mle"
    mle.export_model(model, path, sample_input=x)
    m = mle.load_model(path)
    worst = 0.0
    for n in (1, 3):
        ref = np.asarray(jax.tree_util.tree_leaves(model(jnp.asarray(x[:n])))[0])
        ours = m.run([x[:n]])[0]
        assert ours.shape == ref.shape
        err = np.abs(ours.astype(np.float64) - ref)
        assert np.all(err <= 1e-5 * (1 + np.abs(ref))), err.max()
        worst = max(worst, float(err.max()))
    return worst


def _seq():
    return rng.standard_normal((3, 6, 3)).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell", "SimpleCell", "OptimizedLSTMCell"])
def test_nnx_rnn(cell, tmp_path):
    check(nnx.RNN(getattr(nnx, cell)(3, 4, rngs=nnx.Rngs(0))), _seq(), tmp_path)


def test_nnx_rnn_reverse_and_bidirectional(tmp_path):
    forward = nnx.RNN(nnx.GRUCell(3, 4, rngs=nnx.Rngs(1)))
    backward = nnx.RNN(nnx.LSTMCell(3, 4, rngs=nnx.Rngs(2)), reverse=True, keep_order=True)
    check(nnx.Bidirectional(forward, backward), _seq(), tmp_path)


class _LinenRNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.RNN(nn.LSTMCell(5))(x)


class _LinenScan(nn.Module):
    """``nn.scan`` with a carry and a shared Dense over the time axis (axis 1)."""

    @nn.compact
    def __call__(self, x):
        def body(module, carry, xt):
            carry = carry + xt.sum(-1, keepdims=True)
            return carry, nn.Dense(4)(xt) * jnp.tanh(carry)

        scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False}, in_axes=1, out_axes=1)
        carry, ys = scan(self, jnp.zeros((x.shape[0], 1)), x)
        return ys + carry[:, None]


@pytest.mark.parametrize("module", [pytest.param(_LinenRNN, marks=pytest.mark.slow), _LinenScan])
def test_linen_scan(module, tmp_path):
    x = _seq()
    model = module()
    check(model.bind(model.init(jax.random.key(0), x)), x, tmp_path)


class _Loops(nnx.Module):
    def __init__(self):
        self.lin = nnx.Linear(3, 3, rngs=nnx.Rngs(0))

    def __call__(self, x):
        y = jax.lax.fori_loop(0, 4, lambda i, h: jnp.tanh(self.lin(h)) + i, x)
        y = jax.lax.cond(y.sum() > 0, lambda a: a * 2, lambda a: a - 1, y)  # data-dependent: both branches, selected
        y = jax.lax.switch(jnp.int32(1), [lambda a: a, lambda a: a + 3, lambda a: -a], y)  # constant index
        y, _ = jax.lax.scan(lambda c, _: (self.lin(c), None), y, None, length=3)  # no xs, no ys
        return jax.lax.switch(jnp.argmax(y.sum(0)), [jnp.sin, jnp.cos, lambda a: a * a], y)


def test_fori_loop_cond_switch_and_scan_without_xs(tmp_path):
    check(_Loops(), rng.standard_normal((3, 3)).astype(np.float32), tmp_path)


class _DataWhile(nnx.Module):
    def __call__(self, x):
        return jax.lax.while_loop(lambda h: h.sum() < 100, lambda h: h * 2 + 1, x)


def test_data_dependent_while_is_refused(tmp_path):
    x = np.abs(rng.standard_normal((2, 3))).astype(np.float32)
    with pytest.raises(UnsupportedModelError, match="while loop whose condition depends on the inputs"):
        mle.export_model(_DataWhile(), tmp_path / "m.mle", sample_input=x)


def test_long_loops_are_refused(tmp_path):
    model = nnx.RNN(nnx.SimpleCell(3, 2, rngs=nnx.Rngs(0)))
    x = np.zeros((1, 5000, 3), np.float32)
    with pytest.raises(UnsupportedModelError, match="more than 4096 steps"):
        mle.export_model(model, tmp_path / "m.mle", sample_input=x)


class _BatchIndexed(nnx.Module):
    def __call__(self, x):
        return x - x[0]


def test_batch_size_as_a_value_is_refused(tmp_path):
    with pytest.raises(UnsupportedModelError, match="batch size used as a value"):
        mle.export_model(_BatchIndexed(), tmp_path / "m.mle", sample_input=np.ones((2, 3), np.float32))
