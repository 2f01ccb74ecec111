"""``TreeEnsemble``: decision-tree forests as one XLA program.

Semantics (version 1), shared by every exporter:

- Trees are stored as flat node arrays over all trees, ``[n_nodes_total]``:
  ``feature`` (int32), ``threshold`` (float32), ``left``/``right`` (int32,
  *global* node indices; a leaf points to itself), ``default_left`` (bool),
  ``values`` ([n_nodes_total, n_targets] float32; read at leaves), and
  ``roots`` ([n_trees] int32, the global index of each tree's root).
- The test at an inner node is ``x[feature] <= threshold`` in float32. An
  exporter rewrites its library's comparison (``<`` on float32, ``<=`` on
  float64, ``>``) into this form so decisions are identical on float32 input.
- A NaN feature value takes ``left`` if ``default_left`` else ``right``.
- Each row visits ``max_depth`` levels from every root; leaves self-loop.
- The leaf values of all trees are summed (``aggregate="sum"``) or averaged
  (``"mean"``) and ``base`` (attr, list of n_targets floats) is added.

Trees are evaluated in chunks scanned with ``lax.scan`` so the program size
does not grow with the tree count and memory stays bounded in the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..format.graph import Node
from .registry import register_rule

#: Upper bound on rows × trees held at once inside the scan.
_MAX_WORK = 1 << 22


@register_rule("TreeEnsemble")
def _tree_ensemble(node: Node, x, feature, threshold, left, right, default_left, values, roots):
    attrs = node.attrs
    depth = int(attrs["max_depth"])
    n_trees = roots.shape[0]
    batch = x.shape[0]
    chunk = int(max(1, min(n_trees, _MAX_WORK // max(batch, 1))))
    n_chunks = -(-n_trees // chunk)
    pad = n_chunks * chunk - n_trees
    # Padding trees start at node 0 but contribute nothing (weight 0).
    weights = jnp.concatenate([jnp.ones((n_trees,), values.dtype), jnp.zeros((pad,), values.dtype)])
    roots = jnp.concatenate([roots, jnp.zeros((pad,), roots.dtype)])

    def body(acc, chunk_args):
        chunk_roots, chunk_w = chunk_args
        leaf = _traverse(x, feature, threshold, left, right, default_left, chunk_roots, depth)  # [B, chunk]
        contrib = jnp.einsum("bcn,c->bn", values[leaf], chunk_w, precision=jax.lax.Precision.HIGHEST)
        return acc + contrib, None

    acc0 = jnp.zeros((batch, values.shape[1]), values.dtype)
    acc, _ = jax.lax.scan(body, acc0, (roots.reshape(n_chunks, chunk), weights.reshape(n_chunks, chunk)))
    if attrs.get("aggregate", "sum") == "mean":
        acc = acc / n_trees
    base = attrs.get("base")
    if base is not None:
        acc = acc + jnp.asarray(np.asarray(base, dtype=np.float32))
    return acc


@register_rule("TreeLeafIndex")
def _tree_leaf_index(node: Node, x, feature, threshold, left, right, default_left, roots):
    """Global leaf index per (row, tree): ``[B, n_trees]`` int32 (same traversal as above)."""
    leaf = _traverse(x, feature, threshold, left, right, default_left, roots, int(node.attrs["max_depth"]))
    return leaf - roots[None, :]


def _traverse(x, feature, threshold, left, right, default_left, roots, depth: int):
    """Walk every row down every tree in ``roots``; return global leaf indices [B, n_roots]."""
    idx = jnp.broadcast_to(roots[None, :], (x.shape[0], roots.shape[0]))

    def level(_, idx):
        xv = jnp.take_along_axis(x, feature[idx], axis=1)
        go_left = jnp.where(jnp.isnan(xv), default_left[idx], xv <= threshold[idx])
        return jnp.where(go_left, left[idx], right[idx])

    return jax.lax.fori_loop(0, depth, level, idx, unroll=depth <= 16)
