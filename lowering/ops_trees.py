"""``TreeEnsemble`` / ``TreeLeafIndex``: decision-tree forests as one XLA program.

Node layout (both versions), shared by every exporter:

- Trees are stored as flat node arrays over all trees, ``[n_nodes_total]``:
  ``feature`` (int32), ``threshold`` (float32), ``left``/``right`` (int32,
  *global* node indices; a leaf points to itself), ``default_left`` (bool),
  ``values`` ([n_nodes_total, V] float32; read at leaves), and ``roots``
  ([n_trees] int32, the global index of each tree's root).
- Each row visits ``max_depth`` levels from every root; leaves self-loop.

Version 1 (inputs ``x, feature, threshold, left, right, default_left, values,
roots``):

- The test at an inner node is ``x[feature] <= threshold`` in float32, exact
  IEEE order (``-0 == +0``, subnormals compared as themselves even where the
  device flushes them to zero: comparisons run on an order-preserving int32
  image of the floats). An
  exporter rewrites its library's comparison (``<`` on float32, ``<=`` on
  float64, ``>``) into this form so decisions are identical on float32 input.
- A NaN feature value takes ``left`` if ``default_left`` else ``right``.
- The leaf values of all trees are summed (``aggregate="sum"``) or averaged
  (``"mean"``) and ``base`` (attr, list of V floats) is added.

Version 2 adds, after ``roots``, the inputs ``tree_target, missing_lo,
missing_hi, cat_start, cat_len, cat_bits, cat_other_left``. Each of them may
be empty (shape ``[0]``), which switches its feature off at trace time, so a
purely numeric model pays nothing for categorical support. At a node the
decision is, in this order:

1. **Missing.** The value is missing if it is NaN or, when ``missing_lo`` /
   ``missing_hi`` (float32 per node) are given, if
   ``missing_lo <= x <= missing_hi`` (an empty interval is ``lo > hi``). A
   missing value goes ``left`` iff ``default_left``. (XGBoost's user
   ``missing`` value is ``[m, m]``; LightGBM's zero-as-missing is
   ``[-1e-35, 1e-35]`` rounded inwards to float32.)
2. **Categorical** nodes have ``cat_start >= 0``: their left set is the
   bitset ``cat_bits[cat_start : cat_start + cat_len]`` (uint32 words, bit
   ``c & 31`` of word ``c >> 5`` set ⇔ category ``c`` goes left). The value is
   a valid category iff ``cat_lo < x < cat_hi`` (attrs, float32; default
   ``-1`` and ``2**31``) and, when attr ``cat_integer`` is true, ``x`` is an
   integer; then ``c = trunc(x)``. An invalid value or a
   category beyond the node's ``cat_len`` words goes left iff
   ``cat_other_left``.
3. **Numeric** nodes: ``x <= threshold``, as in version 1.

Aggregation (version 2): ``values`` is ``[n_nodes, V]`` and the output has
``n_targets`` columns (attr; default ``V``). If ``tree_target`` is empty,
every tree adds its V-vector (V must equal ``n_targets``); otherwise V is 1
and tree ``t`` adds its scalar to column ``tree_target[t]`` (one-tree-per-
class boosting). ``aggregate="mean"`` divides each column by the number of
trees that feed it. ``base`` (n_targets floats) is added last. Sums run in
float32 in chunks of trees; the order of additions is unspecified.

``TreeLeafIndex`` version 2 takes the same decision inputs (no ``values`` /
``tree_target``) plus ``leaf_ids`` (int32 per node, may be empty): it returns
``leaf_ids[leaf]`` when given, else the leaf's index relative to its root.

Trees are evaluated in chunks scanned with ``lax.scan`` so the program size
does not grow with the tree count and memory stays bounded in the batch.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..format.graph import Node
from .registry import register_rule

#: Upper bound on rows × trees held at once inside the scan.
_MAX_WORK = 1 << 22


class _Forest(NamedTuple):
    """Per-node arrays that decide the path (empty optional arrays switch features off)."""

    feature: jax.Array
    threshold: jax.Array
    left: jax.Array
    right: jax.Array
    default_left: jax.Array
    missing_lo: jax.Array
    missing_hi: jax.Array
    cat_start: jax.Array
    cat_len: jax.Array
    cat_bits: jax.Array
    cat_other_left: jax.Array
    cat_lo: float = -1.0
    cat_hi: float = float(2**31)
    cat_integer: bool = False


def _v1_forest(feature, threshold, left, right, default_left) -> _Forest:
    empty_f = jnp.zeros((0,), jnp.float32)
    empty_i = jnp.zeros((0,), jnp.int32)
    return _Forest(feature, threshold, left, right, default_left, empty_f, empty_f, empty_i, empty_i,
                   jnp.zeros((0,), jnp.uint32), jnp.zeros((0,), bool))


def _v2_forest(node: Node, feature, threshold, left, right, default_left, missing_lo, missing_hi,
               cat_start, cat_len, cat_bits, cat_other_left) -> _Forest:
    attrs = node.attrs
    return _Forest(feature, threshold, left, right, default_left, missing_lo, missing_hi, cat_start, cat_len,
                   cat_bits, cat_other_left, float(attrs.get("cat_lo", -1.0)), float(attrs.get("cat_hi", 2.0**31)),
                   bool(attrs.get("cat_integer", False)))


@register_rule("TreeEnsemble")
def _tree_ensemble(node: Node, x, feature, threshold, left, right, default_left, values, roots):
    """Version 1: sum/mean of leaf ``values`` over trees, ``x <= threshold`` splits, NaN → default."""
    forest = _v1_forest(feature, threshold, left, right, default_left)
    return _ensemble(node, x, forest, values, roots, jnp.zeros((0,), jnp.int32))


@register_rule("TreeEnsemble", version=2)
def _tree_ensemble_v2(node: Node, x, feature, threshold, left, right, default_left, values, roots, tree_target,
                      missing_lo, missing_hi, cat_start, cat_len, cat_bits, cat_other_left):
    """Version 2: adds missing intervals, categorical bitsets and per-tree target columns (module docstring)."""
    forest = _v2_forest(node, feature, threshold, left, right, default_left, missing_lo, missing_hi,
                        cat_start, cat_len, cat_bits, cat_other_left)
    return _ensemble(node, x, forest, values, roots, tree_target)


def _ensemble(node: Node, x, forest: _Forest, values, roots, tree_target):
    attrs = node.attrs
    depth = int(attrs["max_depth"])
    n_out = int(attrs.get("n_targets", values.shape[1]))
    per_tree = tree_target.shape[0] > 0
    n_trees = roots.shape[0]
    batch = x.shape[0]
    chunk = int(max(1, min(n_trees, _MAX_WORK // max(batch, 1))))
    n_chunks = -(-n_trees // chunk)
    pad = n_chunks * chunk - n_trees
    # Padding trees start at node 0 but contribute nothing (weight 0).
    weights = jnp.concatenate([jnp.ones((n_trees,), values.dtype), jnp.zeros((pad,), values.dtype)])
    roots_p = jnp.concatenate([roots, jnp.zeros((pad,), roots.dtype)])
    target_p = jnp.concatenate([tree_target, jnp.zeros((pad,), jnp.int32)]) if per_tree else jnp.zeros((n_chunks * chunk,), jnp.int32)

    def body(acc, chunk_args):
        chunk_roots, chunk_w, chunk_t = chunk_args
        leaf = _traverse(x, forest, chunk_roots, depth)  # [B, chunk]
        if per_tree:
            onehot = jax.nn.one_hot(chunk_t, n_out, dtype=values.dtype) * chunk_w[:, None]  # [chunk, n_out]
            contrib = jnp.matmul(values[leaf, 0], onehot, precision=jax.lax.Precision.HIGHEST)
        else:
            contrib = jnp.einsum("bcn,c->bn", values[leaf], chunk_w, precision=jax.lax.Precision.HIGHEST)
        return acc + contrib, None

    acc0 = jnp.zeros((batch, n_out), values.dtype)
    xs = (roots_p.reshape(n_chunks, chunk), weights.reshape(n_chunks, chunk), target_p.reshape(n_chunks, chunk))
    acc, _ = jax.lax.scan(body, acc0, xs)
    if attrs.get("aggregate", "sum") == "mean":
        counts = jnp.maximum(jnp.zeros((n_out,), values.dtype).at[tree_target].add(1.0), 1.0) if per_tree else jnp.float32(n_trees)
        acc = acc / counts
    base = attrs.get("base")
    if base is not None:
        acc = acc + jnp.asarray(np.asarray(base, dtype=np.float32))
    return acc


@register_rule("TreeLeafIndex")
def _tree_leaf_index(node: Node, x, feature, threshold, left, right, default_left, roots):
    """Version 1: leaf index per (row, tree) relative to the tree's root, ``[B, n_trees]`` int32."""
    forest = _v1_forest(feature, threshold, left, right, default_left)
    leaf = _traverse(x, forest, roots, int(node.attrs["max_depth"]))
    return leaf - roots[None, :]


@register_rule("TreeLeafIndex", version=2)
def _tree_leaf_index_v2(node: Node, x, feature, threshold, left, right, default_left, roots, missing_lo, missing_hi,
                        cat_start, cat_len, cat_bits, cat_other_left, leaf_ids):
    """Version 2: ``leaf_ids[leaf]`` per (row, tree) (or the index relative to the root if empty)."""
    forest = _v2_forest(node, feature, threshold, left, right, default_left, missing_lo, missing_hi,
                        cat_start, cat_len, cat_bits, cat_other_left)
    leaf = _traverse(x, forest, roots, int(node.attrs["max_depth"]))
    return leaf_ids[leaf] if leaf_ids.shape[0] > 0 else leaf - roots[None, :]


def _key(v):
    """Order-preserving int32 image of float32 ``v`` (``-0 == +0``; subnormals kept, whatever the FTZ mode)."""
    bits = jax.lax.bitcast_convert_type(v, jnp.int32)
    return jnp.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _host_key(v: float) -> int:
    """:func:`_key` of a constant, computed on the host."""
    bits = int(np.float32(v).view(np.int32))
    return -(bits & 0x7FFFFFFF) if bits < 0 else bits


def _go_left(f: _Forest, idx, xv, t_key):
    """The decision at nodes ``idx`` for values ``xv`` (same shape): True ⇒ left child."""
    xk = _key(xv)
    go_left = xk <= t_key[idx]
    if f.cat_bits.shape[0] > 0:
        start = f.cat_start[idx]
        valid = (xk > _host_key(f.cat_lo)) & (xk < _host_key(f.cat_hi))
        if f.cat_integer:
            valid = valid & (jnp.trunc(xv) == xv)
        code = jnp.where(valid, xv, 0.0).astype(jnp.int32)  # truncates toward zero
        word = code >> 5
        n_words = f.cat_len[idx]
        in_range = valid & (word < n_words)
        bits = f.cat_bits[jnp.clip(start + jnp.minimum(word, n_words - 1), 0, f.cat_bits.shape[0] - 1)]
        in_set = ((bits >> (code & 31).astype(jnp.uint32)) & 1) == 1
        cat_left = jnp.where(in_range, in_set, f.cat_other_left[idx])
        go_left = jnp.where(start >= 0, cat_left, go_left)
    missing = jnp.isnan(xv)
    if f.missing_lo.shape[0] > 0:
        missing = missing | ((_key(f.missing_lo[idx]) <= xk) & (xk <= _key(f.missing_hi[idx])))
    return jnp.where(missing, f.default_left[idx], go_left)


def _traverse(x, f: _Forest, roots, depth: int):
    """Walk every row down every tree in ``roots``; return global leaf indices [B, n_roots]."""
    idx = jnp.broadcast_to(roots[None, :], (x.shape[0], roots.shape[0]))
    t_key = _key(f.threshold)

    def level(_, idx):
        xv = jnp.take_along_axis(x, f.feature[idx], axis=1)
        return jnp.where(_go_left(f, idx, xv, t_key), f.left[idx], f.right[idx])

    return jax.lax.fori_loop(0, depth, level, idx, unroll=depth <= 16)
