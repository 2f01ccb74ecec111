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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..format.graph import Node
from .ops_core import AXIS
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
