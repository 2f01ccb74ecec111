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
"""

from __future__ import annotations

import jax.numpy as jnp

from ..format.graph import Node
from .ops_core import AXIS
from .registry import register_rule


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
