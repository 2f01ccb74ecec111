"""``LinearTreeSum``: trees with a linear model in each leaf (LightGBM ``linear_tree``).

Inputs: ``x`` [B, F] float32, ``leaf`` [B, T] int32 (each row's leaf in each
tree, from ``TreeLeafIndex``), then stored per (tree, leaf) tensors ``const``
[T, L], ``value`` [T, L] (the plain leaf value), ``coeff`` [T, L, K] float32,
``feature`` [T, L, K] int32, ``count`` [T, L] int32 (coefficients used), and
``tree_target`` [T] int32. Attr ``n_targets``. Output [B, n_targets]:

    out[b, tree_target[t]] += value[t, l]            if any x[b, feature[t, l, k]] (k < count) is NaN
                              const[t, l] + Σ_k coeff[t, l, k] * x[b, feature[t, l, k]]   otherwise

with ``l = leaf[b, t]`` (LightGBM's ``Tree::Predict`` for linear trees).
Rows are processed in tiles so intermediates stay near a few MB.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..format.graph import Node
from .registry import Attr, register_rule


def _check_targets(node: Node, shapes, budget: int) -> None:
    if node.attrs["n_targets"] > budget:
        raise ValueError(f"n_targets {node.attrs['n_targets']} is over this model's bound of {budget} outputs per row")

#: Elements of the [rows, T, K] gathers held at once.
_TILE_ELEMENTS = 1 << 20


@register_rule("LinearTreeSum", attrs={"n_targets": Attr("int", lo=1)}, check=_check_targets)
def _linear_tree_sum(node: Node, x, leaf, const, value, coeff, feature, count, tree_target):
    n_targets = int(node.attrs["n_targets"])
    b, n_trees = leaf.shape
    k = coeff.shape[2]
    trees = jnp.arange(n_trees)[None, :]
    targets = jax.nn.one_hot(tree_target, n_targets, dtype=x.dtype)  # [T, n_targets]

    def run(rows):
        xt, lt = rows
        m = xt.shape[0]
        w, f = coeff[trees, lt], feature[trees, lt]  # [m, T, K]
        xs = jnp.take_along_axis(xt, f.reshape(m, -1), axis=1).reshape(m, n_trees, k)
        used = jnp.arange(k) < count[trees, lt][..., None]
        nan = jnp.any(jnp.isnan(xs) & used, axis=2)
        linear = const[trees, lt] + jnp.sum(jnp.where(used, w * jnp.where(used, xs, 0.0), 0.0), axis=2)
        return jnp.matmul(jnp.where(nan, value[trees, lt], linear), targets, precision=jax.lax.Precision.HIGHEST)

    tile = max(1, min(b, _TILE_ELEMENTS // max(1, n_trees * k)))
    if tile >= b:
        return run((x, leaf))
    n_tiles = -(-b // tile)
    pad = n_tiles * tile - b
    xp = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]) if pad else x
    lp = jnp.concatenate([leaf, jnp.zeros((pad, n_trees), leaf.dtype)]) if pad else leaf
    out = jax.lax.map(run, (xp.reshape(n_tiles, tile, -1), lp.reshape(n_tiles, tile, -1)))
    return out.reshape(-1, n_targets)[:b]
