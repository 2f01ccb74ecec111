"""Keras-only ops: what Keras layers need beyond the shared network ops of ``ops_nn``.

Every other Keras activation and layer is lowered onto ``ops_core`` and
``ops_nn`` ops (see ``exporters/nn_keras.py``); only the ops below have no
exact composition there.

Op table (version 1)
--------------------
  Sparsemax(x) attr axis (default -1): Keras ``activations.sparsemax`` exactly
      as every Keras backend computes it: s = x sorted descending along axis,
      c = cumsum(s), r = 1..n, support = s - (c - 1) / r > 0,
      k = |support|, tau = (sum of c over the support - 1) / k,
      y = max(x - tau, 0). (Keras sums the cumulative sums over the support,
      which is not the textbook sparsemax threshold; we follow Keras.)
  Resize(x) attrs size (one int per spatial axis), method ``linear`` |
      ``nearest``, antialias, layout: Keras ``Resizing`` / ``UpSampling2D`` as
      TensorFlow's ``tf.image.resize`` computes it. Half-pixel centres: the
      source of output cell o is s = (o + 0.5) * n_in / n_out - 0.5 (float32).
      ``linear`` blends the clamped neighbours floor(s), ceil(s) as
      a + (b - a) * (s - floor(s)), width first, then height; ``nearest``
      takes min(floor((o + 0.5) * n_in / n_out), n_in - 1). With antialias
      and a shrinking axis, ``linear`` is TF's scale-and-translate with a
      triangle kernel widened by the scale (``jax.image.scale_and_translate``).
  MaskedRecurrent(x, mask, *weights, [*initial states]) attrs cell (LSTM |
      GRU | SimpleRNN), hidden_size, activation, recurrent_activation,
      linear_before_reset, reverse, zero_output_for_mask: one Keras recurrent
      layer, batch first, with the weights of the ``LSTM`` / ``GRU`` /
      ``SimpleRNN`` ops of ``ops_nn``, run as Keras' TensorFlow backend runs a
      masked RNN: at a step whose mask is False the states keep their old
      values and the output repeats the previous output (zeros before the
      first kept step), or is zero with ``zero_output_for_mask``. ``reverse``
      runs from the last step (``go_backwards``) and returns the sequence in
      processing order. Outputs (y [B, T, H], *final states [B, H]).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..format.graph import Node
from .ops_core import AXIS
from .ops_nn import _ACTIVATIONS, _gru_cell, _lstm_cell, _rnn_cell
from .registry import Attr, register_rule


@register_rule("Sparsemax", attrs={"axis": AXIS})
def _sparsemax(node: Node, x):
    """Keras ``sparsemax`` along ``axis``; see the op table for the exact formula."""
    axis = node.attrs["axis"] % x.ndim
    ordered = -jnp.sort(-x, axis=axis)
    cumsum = jnp.cumsum(ordered, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    rank = jnp.arange(1, x.shape[axis] + 1, dtype=x.dtype).reshape(shape)
    support = ordered - (cumsum - 1) / rank > 0
    k = jnp.sum(support.astype(x.dtype), axis=axis, keepdims=True)
    tau = (jnp.sum(jnp.where(support, cumsum, 0.0), axis=axis, keepdims=True) - 1) / k
    return jnp.maximum(x - tau, 0.0)


# --- image resizing ------------------------------------------------------------------


def _half_pixel_sources(n_in: int, n_out: int) -> np.ndarray:
    """TensorFlow's half-pixel source coordinates ``(o + 0.5) * (n_in / n_out) - 0.5``, in float32 as TF computes them."""
    scale = np.float32(n_in) / np.float32(n_out)
    return (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)


def _nearest_axis(x, axis: int, n_out: int):
    """TF's half-pixel nearest neighbour: source ``min(floor((o + 0.5) * scale), n_in - 1)``."""
    n_in = x.shape[axis]
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.floor((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale).astype(np.int64)
    return jnp.take(x, np.clip(src, 0, n_in - 1), axis=axis)


def _linear_axis(x, axis: int, n_out: int):
    """TF's half-pixel bilinear along one axis: ``a + (b - a) * lerp`` with clamped neighbours."""
    n_in = x.shape[axis]
    src = _half_pixel_sources(n_in, n_out)
    lower = np.floor(src)
    lerp = (src - lower).astype(np.float32)
    lo = np.clip(lower.astype(np.int64), 0, n_in - 1)
    hi = np.clip(np.ceil(src).astype(np.int64), 0, n_in - 1)
    a, b = jnp.take(x, lo, axis=axis), jnp.take(x, hi, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = n_out
    return a + (b - a) * jnp.asarray(lerp.reshape(shape), x.dtype)


@register_rule("Resize", attrs={
    "size": Attr("ints", lo=1, hi=1 << 16),
    "method": Attr("str", "linear", choices=("linear", "nearest")),
    "antialias": Attr("bool", False),
    "layout": Attr("str", "channels_last", choices=("channels_last", "channels_first")),
})
def _resize(node: Node, x):
    """Keras ``Resizing`` / ``ops.image.resize`` as TensorFlow computes it; see the op table."""
    a = node.attrs
    size = a["size"]
    axes = list(range(2, 2 + len(size))) if a["layout"] == "channels_first" else list(range(1, 1 + len(size)))
    if a["method"] == "nearest":
        for axis, n in zip(axes, size):
            x = _nearest_axis(x, axis, n)
        return x
    shrinks = any(n < x.shape[axis] for axis, n in zip(axes, size))
    if a["antialias"] and shrinks:
        shape = list(x.shape)
        for axis, n in zip(axes, size):
            shape[axis] = n
        scale = jnp.asarray([n / x.shape[axis] for axis, n in zip(axes, size)], jnp.float32)
        return jax.image.scale_and_translate(
            x, shape, axes, scale, jnp.zeros(len(axes), jnp.float32), method="linear", antialias=True,
        )
    for axis, n in reversed(list(zip(axes, size))):  # TF interpolates along the width first, then the height
        x = _linear_axis(x, axis, n)
    return x


# --- recurrences with a time-step mask --------------------------------------------------


def _masked_recurrent_check(node: Node, shapes: Sequence[tuple | None], budget: int) -> None:
    n_weights = 3 if node.attrs["cell"] == "LSTM" else 4
    n_states = 2 if node.attrs["cell"] == "LSTM" else 1
    if len(node.inputs) not in (2 + n_weights, 2 + n_weights + n_states):
        raise ValueError(f"expected {2 + n_weights} or {2 + n_weights + n_states} inputs, found {len(node.inputs)}")


@register_rule(
    "MaskedRecurrent",
    attrs={
        "cell": Attr("str", choices=("LSTM", "GRU", "SimpleRNN")),
        "hidden_size": Attr("int", lo=1, hi=1 << 20),
        "activation": Attr("str", "Tanh", choices=tuple(_ACTIVATIONS)),
        "recurrent_activation": Attr("str", "Sigmoid", choices=tuple(_ACTIVATIONS)),
        "linear_before_reset": Attr("bool", True),
        "reverse": Attr("bool", False),
        "zero_output_for_mask": Attr("bool", False),
    },
    inputs=(5, 7),
    outputs=lambda a: 3 if a["cell"] == "LSTM" else 2,
    check=_masked_recurrent_check,
)
def _masked_recurrent(node: Node, x, mask, *rest):
    """One Keras recurrent layer over [B, T, I] with a [B, T] step mask; see the op table."""
    a = node.attrs
    n_weights, project, step = {"LSTM": _lstm_cell, "GRU": _gru_cell, "SimpleRNN": _rnn_cell}[a["cell"]](a)
    weights, init = rest[:n_weights], rest[n_weights:]
    n_states = 2 if a["cell"] == "LSTM" else 1
    seq = project(jnp.swapaxes(x, 0, 1), weights)  # [T, B, gates]
    keep = jnp.swapaxes(mask.astype(bool), 0, 1)[..., None]  # [T, B, 1]
    batch, hidden = x.shape[0], int(a["hidden_size"])
    state = tuple(init) if init else tuple(jnp.zeros((batch, hidden), x.dtype) for _ in range(n_states))
    zero = jnp.zeros((batch, hidden), x.dtype)

    def body(carry, inputs):
        old, previous = carry
        xt, kt = inputs
        new, out = step(old, xt, weights)
        out = jnp.where(kt, out, zero if a["zero_output_for_mask"] else previous)
        new = tuple(jnp.where(kt, n, o) for n, o in zip(new, old))
        return (new, out), out

    (final, _), ys = lax.scan(body, (state, zero), (seq, keep), reverse=a["reverse"])
    if a["reverse"]:  # Keras returns the sequence in processing order
        ys = jnp.flip(ys, axis=0)
    return (jnp.swapaxes(ys, 0, 1), *final)
