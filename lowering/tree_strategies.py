"""Lowering strategies for ``TreeEnsemble`` / ``TreeLeafIndex`` (semantics: :mod:`.ops_trees`).

Every strategy computes the same leaf for every (row, tree) — they differ only
in how. All of them decide a node with :func:`decide`, the one definition of
the split semantics (NaN / missing interval, categorical bitset, ``x <= t`` on
order-preserving int32 keys), so they are exact by construction; the parity
suites run under each one (``MLEJAX_TREE_STRATEGY``).

- ``traversal``: walk ``max_depth`` levels from every root with gathers
  (node → feature → x → child). Works for every forest; O(depth) per tree.
- ``perfect``: trees padded to perfect trees of depth D in heap order;
  every node of a tree is decided at once, then D selects walk the heap
  (``idx = 2 idx + 1 + go_right``). O(2^D) compares per tree, no gathers of x
  per row. For D ≤ :data:`PERFECT_MAX_DEPTH`.
- ``bitvector`` (QuickScorer-style): leaves numbered left to right; each inner
  node whose test sends a row right clears the bits of its left subtree's
  leaves; the exit leaf is the lowest bit left. An AND-reduction over the
  inner nodes, any tree shape, ≤ :data:`BITVECTOR_MAX_LEAVES` leaves.
- ``oblivious``: trees whose inner nodes at each level share one split
  (CatBoost's symmetric trees, detected on the host): D decisions per tree and
  leaf = Σ go_right_l · 2^(D-1-l). Nothing else qualifies (falls back).
- ``gemm`` (Hummingbird-style): decisions of every inner node, a matmul with
  the ±1 path matrix, ``==`` the count of left edges gives a one-hot leaf, a
  second matmul sums leaf values over trees. O(inner × leaves) per tree; for
  shallow trees (≤ :data:`GEMM_MAX_LEAVES` leaves).

The layouts of all but ``traversal`` are derived on the host from the stored
tensors (the :func:`~.program.lowering_options` ``host`` map, or concrete
arrays) and enter the program as small int32 index maps; per-node parameters
are gathered from the stored tensors inside the program. Malformed trees
(cycles, shared nodes, out-of-range children, deeper than ``max_depth``), or
a program traced without host access, fall back to ``traversal``.

On CPU, for numeric-only forests (no categories, and no missing interval
that holds a value: empty ones are dropped, see ``Layout.missing_used``),
``perfect`` and ``bitvector`` fuse a step's row gathers, compares and position
updates into one loop (:func:`_perfect_fused`, :func:`_bitvector_fused`).

All strategies run the batch in tiles of rows (transposed to feature-major
``[F, tile]`` so that a node's comparison reads one contiguous row) and scan
over chunks of trees, so the program size is flat in the tree count and the
intermediates are bounded by tile × chunk.

The strategy comes from ``load_model(..., tree_strategy=...)`` (Program option
``tree_strategy``), else from ``$MLEJAX_TREE_STRATEGY``, else ``"auto"``
(:func:`choose`). A forced strategy that cannot run a forest falls back as
:func:`choose` documents; the choice is recorded in ``Program.choices``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["STRATEGIES", "Forest", "derived", "Layout", "analyze", "choose", "decide", "gather_nodes", "leaves", "requested_strategy"]

STRATEGIES = ("traversal", "perfect", "bitvector", "oblivious", "gemm")
PERFECT_MAX_DEPTH = 10
BITVECTOR_MAX_LEAVES = 64
GEMM_MAX_LEAVES = 16
SMALL_BATCH = 64
CPU_PERFECT_DEPTH = 8
#: On CPU, ``bitvector`` replaces ``perfect`` when :func:`perfect_waste` is above this. Measured at 100k rows
#: on 2 cores (perfect / bitvector ms): XGBoost(200) on breast_cancer, depth 6 with at most 14 inner nodes
#: (waste 4.5): 265 / 103; LightGBM(200, 20 leaves, depth 6) (waste 3.3): 343 / 248; XGBoost(200, depth 6)
#: on dense data, 62 inner nodes (waste 1.0): 317 / 415.
PERFECT_WASTE = 2.0

#: Target number of (row, tree, node) decisions held per tile × chunk step.
_STEP_WORK = int(os.environ.get("MLEJAX_TREE_STEP_WORK", 1 << 20))
#: Rows per tile on CPU per strategy (the whole batch when smaller; ``$MLEJAX_TREE_TILE`` sets all).
#: Measured on 2 cores against 512 rows: traversal +30% (RandomForest(100, depth 12), ExtraTrees(200)),
#: oblivious +30% (CatBoost(500, depth 6)), perfect / bitvector +5-10% (XGBoost, HistGradientBoosting)
#: at 1024 rows, and -20% at 2048 for LightGBM's 63-leaf bitvectors.
#: ``*_fused`` (numeric-only forests on CPU, see :func:`_perfect_fused`), 100k rows: XGBoost(500, depth 6)
#: 256 rows × 8 trees per step 2.2x faster than the materialized decisions at 1024 × 16 (2.0x at 256 × 4,
#: 1.7x at 1024 × 16, 1.6x at 512 × 8 or 2048 × 2); LightGBM(500, 63 leaves): 256 × 4 as fast as 256 × 8,
#: 512 × 4 -13%. Forests with missing intervals or categories keep the materialized decisions (fused: -10%).
_CPU_TILES = {"traversal": 2048, "oblivious": 2048, "perfect": 1024, "perfect_fused": 256, "bitvector": 1024,
              "bitvector_fused": 256, "gemm": 1024}
#: ``_STEP_WORK`` is divided by this for the ``*_fused`` steps (their steps hold no [c, K, tile] decisions).
_FUSED_STEP_DIV = 8
if os.environ.get("MLEJAX_TREE_TILE"):
    _CPU_TILES = dict.fromkeys(_CPU_TILES, int(os.environ["MLEJAX_TREE_TILE"]))


class Forest(NamedTuple):
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
    t_key: Any = None  #: [N] int32 key(threshold)
    children: Any = None  #: [2N] int32: left, right of node n at 2n, 2n + 1
    row: Any = None  #: [N] int32 2·feature + (not default_left): the row of ``_Tile.keys`` a node reads

    @property
    def has_missing(self) -> bool:
        return self.missing_lo.shape[0] > 0

    @property
    def has_cats(self) -> bool:
        return self.cat_bits.shape[0] > 0


class Nodes(NamedTuple):
    """Decision parameters gathered for an array of node ids (``None``: switched off)."""

    feature: jax.Array
    t_key: jax.Array
    default_left: jax.Array
    miss_lo: jax.Array | None
    miss_hi: jax.Array | None
    cat_start: jax.Array | None
    cat_len: jax.Array | None
    cat_other_left: jax.Array | None


def key(v):
    """Order-preserving int32 image of float32 ``v`` (``-0 == +0``; subnormals kept, whatever the FTZ mode)."""
    bits = jax.lax.bitcast_convert_type(v, jnp.int32)
    return jnp.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def host_key(v: Any) -> np.ndarray:
    """:func:`key` computed with numpy."""
    bits = np.asarray(v, np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def gather_nodes(f: Forest, idx) -> Nodes:
    """The decision parameters of nodes ``idx`` (any shape)."""
    cats = f.has_cats
    return Nodes(
        f.feature[idx], f.t_key[idx], f.default_left[idx],
        # key() after the gather: XLA does not sink it, and would convert every node of the forest per call
        key(f.missing_lo[idx]) if f.has_missing else None, key(f.missing_hi[idx]) if f.has_missing else None,
        f.cat_start[idx] if cats else None, f.cat_len[idx] if cats else None, f.cat_other_left[idx] if cats else None,
    )


def decide(f: Forest, n: Nodes, xv):
    """True ⇒ left, for values ``xv`` at nodes ``n`` (broadcast together). See :mod:`.ops_trees`."""
    xk = key(xv)
    go_left = xk <= n.t_key
    if n.cat_start is not None:
        valid = (xk > int(host_key(f.cat_lo))) & (xk < int(host_key(f.cat_hi)))
        if f.cat_integer:
            valid = valid & (jnp.trunc(xv) == xv)
        code = jnp.where(valid, xv, 0.0).astype(jnp.int32)  # truncates toward zero
        word = code >> 5
        in_range = valid & (word < n.cat_len)
        pos = jnp.clip(n.cat_start + jnp.minimum(word, n.cat_len - 1), 0, f.cat_bits.shape[0] - 1)
        in_set = ((f.cat_bits[pos] >> (code & 31).astype(jnp.uint32)) & 1) == 1
        go_left = jnp.where(n.cat_start >= 0, jnp.where(in_range, in_set, n.cat_other_left), go_left)
    missing = jnp.isnan(xv)
    if n.miss_lo is not None:
        missing = missing | ((n.miss_lo <= xk) & (xk <= n.miss_hi))
    return jnp.where(missing, n.default_left, go_left)


# --- host-side analysis --------------------------------------------------------------------------
@dataclass
class Layout:
    """Structure of a well-formed forest, derived on the host (all ids are global node ids).

    For a forest only the traversal can run (deeper than :data:`PERFECT_MAX_DEPTH`
    with trees over :data:`BITVECTOR_MAX_LEAVES` leaves) only ``n_trees``,
    ``depth`` and ``n_leaves`` are filled in (the rest is ``None``).
    """

    n_trees: int
    depth: int  # longest root-to-leaf path
    heap: list  # heap[l]: [T, 2^l] node at each heap position of level l (leaves repeat), l <= depth if small
    inner: np.ndarray | None  # [T, I] inner nodes per tree (padded with the root)
    inner_valid: np.ndarray | None  # [T, I] bool
    leaf_node: np.ndarray | None  # [T, L] leaves left to right (padded with the last leaf)
    left_lo: np.ndarray | None  # [T, I] first leaf position of the inner node's subtree
    left_mid: np.ndarray | None  # [T, I] first leaf position of its right subtree
    left_hi: np.ndarray | None  # [T, I] end of its subtree
    n_leaves: np.ndarray  # [T]
    oblivious: np.ndarray | None  # [T, depth] representative node per level, or None
    #: False when no node's missing interval holds any value (all empty, or none stored): decisions can skip them
    missing_used: bool = True

    @property
    def max_leaves(self) -> int:
        return int(self.n_leaves.max())

    @property
    def max_inner(self) -> int:
        return int(self.inner.shape[1])


def analyze(host: Mapping[str, np.ndarray], max_depth: int) -> Layout | None:
    """The :class:`Layout` of a forest given as numpy arrays, or ``None`` if it is not a forest of trees."""
    left, right, roots = (np.asarray(host[k]).astype(np.int64) for k in ("left", "right", "roots"))
    n = left.shape[0]
    if n == 0 or roots.shape[0] == 0 or right.shape[0] != n:
        return None
    if roots.min() < 0 or roots.max() >= n or left.min() < 0 or left.max() >= n or right.min() < 0 or right.max() >= n:
        return None
    is_leaf = left == np.arange(n)
    if np.any(is_leaf != (right == np.arange(n))):
        return None
    n_trees = roots.shape[0]
    seen = np.zeros(n, bool)
    levels, trees = [], []
    n_leaves = np.zeros(n_trees, np.int64)
    visits = 0
    frontier, tree_of = roots, np.arange(n_trees)
    while frontier.size:
        visits += frontier.size
        # A node seen on an earlier level is a cycle or a shared subtree; more visits than nodes
        # means a node repeats within a level (checked exactly below, this bounds the frontier).
        if len(levels) > max_depth or visits > n or np.any(seen[frontier]):
            return None
        seen[frontier] = True
        levels.append(frontier)
        trees.append(tree_of)
        inner = ~is_leaf[frontier]
        n_leaves += np.bincount(tree_of[~inner], minlength=n_trees)
        frontier = np.concatenate([left[frontier[inner]], right[frontier[inner]]])
        tree_of = np.concatenate([tree_of[inner], tree_of[inner]])
    if int(np.count_nonzero(seen)) != visits:  # a node reached twice within one level
        return None
    depth = len(levels) - 1
    if depth > PERFECT_MAX_DEPTH and int(n_leaves.max()) > BITVECTOR_MAX_LEAVES:  # only the traversal can run it
        return Layout(n_trees, depth, [], None, None, None, None, None, None, n_leaves, None, _missing_used(host, n))
    # Leaves in left-to-right order: count bottom-up, place top-down.
    count = np.zeros(n, np.int64)
    for lv in reversed(levels):
        count[lv] = np.where(is_leaf[lv], 1, count[left[lv]] + count[right[lv]])
    lo = np.zeros(n, np.int64)
    for lv in levels:
        inner = lv[~is_leaf[lv]]
        lo[left[inner]] = lo[inner]
        lo[right[inner]] = lo[inner] + count[left[inner]]
    nodes = np.concatenate(levels)
    node_tree = np.concatenate(trees)
    leaf_node = np.zeros((n_trees, int(n_leaves.max())), np.int64)
    lv_leaf = is_leaf[nodes]
    leaf_node[:] = -1
    leaf_node[node_tree[lv_leaf], lo[nodes[lv_leaf]]] = nodes[lv_leaf]
    last = leaf_node[np.arange(n_trees), n_leaves - 1]
    leaf_node = np.where(leaf_node < 0, last[:, None], leaf_node)
    inner_nodes, inner_tree = nodes[~lv_leaf], node_tree[~lv_leaf]
    order = np.argsort(inner_tree.astype(np.int32), kind="stable")  # radix sort
    inner_nodes, inner_tree = inner_nodes[order], inner_tree[order]
    n_inner = np.bincount(inner_tree, minlength=n_trees)
    width = max(1, int(n_inner.max()))
    rank = np.arange(inner_nodes.shape[0]) - np.repeat(np.cumsum(n_inner) - n_inner, n_inner)
    inner = np.repeat(roots[:, None], width, axis=1)
    valid = np.zeros((n_trees, width), bool)
    inner[inner_tree, rank] = inner_nodes
    valid[inner_tree, rank] = True
    lo_i = lo[inner]
    mid = lo_i + count[left[inner]]
    hi = lo_i + count[inner]
    heap = _heap(left, right, roots, depth) if depth <= PERFECT_MAX_DEPTH else []
    return Layout(n_trees, depth, heap, inner, valid, leaf_node, np.where(valid, lo_i, 0), np.where(valid, mid, 0),
                  np.where(valid, hi, 0), n_leaves, _oblivious(host, heap, is_leaf) if heap else None,
                  _missing_used(host, n))


def _missing_used(host: Mapping[str, np.ndarray], n: int) -> bool:
    """Whether some node's missing interval ``[lo, hi]`` holds a value (:func:`decide` compares keys)."""
    lo, hi = host.get("missing_lo"), host.get("missing_hi")
    if lo is None or hi is None:
        return False
    lo, hi = np.asarray(lo), np.asarray(hi)
    if lo.shape[0] == 0 and hi.shape[0] == 0:
        return False
    if lo.shape != (n,) or hi.shape != (n,):
        return True
    return bool(np.any(host_key(lo) <= host_key(hi)))


def _heap(left: np.ndarray, right: np.ndarray, roots: np.ndarray, depth: int) -> list:
    levels = [roots[:, None]]
    for _ in range(depth):
        cur = levels[-1]
        levels.append(np.stack([left[cur], right[cur]], axis=-1).reshape(cur.shape[0], -1))
    return levels


def _oblivious(host: Mapping[str, np.ndarray], heap: list, is_leaf: np.ndarray) -> np.ndarray | None:
    """[T, depth] one inner node per level whose split every inner node of that level shares, or None."""
    sig = [np.asarray(host["feature"]).astype(np.int64), host_key(host["threshold"]), np.asarray(host["default_left"]).astype(np.int64)]
    if np.asarray(host["missing_lo"]).shape[0]:
        sig += [host_key(host["missing_lo"]), host_key(host["missing_hi"])]
    cat_start = np.asarray(host["cat_start"])
    if cat_start.shape[0]:
        words = np.asarray(host["cat_bits"])
        start, length = cat_start.astype(np.int64), np.asarray(host["cat_len"]).astype(np.int64)
        cat_nodes = np.nonzero(start >= 0)[0]
        content = {}
        for node in cat_nodes:  # identical bitsets get one id
            content.setdefault(words[start[node] : start[node] + length[node]].tobytes(), len(content))
        cat_id = np.full(start.shape[0], -1, np.int64)
        for node in cat_nodes:
            cat_id[node] = content[words[start[node] : start[node] + length[node]].tobytes()]
        sig += [cat_id, np.asarray(host["cat_other_left"]).astype(np.int64)]
    reps = []
    for level in heap[:-1]:
        inner = ~is_leaf[level]
        first = np.argmax(inner, axis=1)
        rep = level[np.arange(level.shape[0]), first]  # a leaf when the level has no inner node: any decision works
        for s in sig:
            if np.any(inner & (s[level] != s[rep][:, None])):
                return None
        reps.append(rep)
    return np.stack(reps, axis=1) if reps else None


# --- strategy choice -----------------------------------------------------------------------------
def requested_strategy(options: Mapping[str, Any]) -> str:
    """The strategy asked for: Program option, else ``$MLEJAX_TREE_STRATEGY``, else ``"auto"``."""
    name = options.get("tree_strategy") or "auto"
    if name == "auto":
        name = os.environ.get("MLEJAX_TREE_STRATEGY") or "auto"
    if name != "auto" and name not in STRATEGIES:
        raise ValueError(f"unknown tree strategy {name!r}; choose from auto, {', '.join(STRATEGIES)}")
    return name


def feasible(layout: Layout | None) -> list[str]:
    """The strategies that can run a forest with this layout (``traversal`` always)."""
    if layout is None:
        return ["traversal"]
    out = ["traversal"]
    if layout.oblivious is not None:
        out.append("oblivious")
    if layout.heap:
        out.append("perfect")
    if layout.max_leaves <= BITVECTOR_MAX_LEAVES:
        out.append("bitvector")
    if layout.max_leaves <= GEMM_MAX_LEAVES:
        out.append("gemm")
    return out


def perfect_waste(layout: Layout) -> float:
    """Node decisions per tree of ``perfect`` (2^D - 1) over those of ``bitvector`` (inner nodes × 32-leaf words)."""
    return ((1 << layout.depth) - 1) / max(1, layout.max_inner * -(-layout.max_leaves // 32))


def choose(requested: str, layout: Layout | None, batch: Any, platform: str) -> str:
    """The strategy to run: ``requested`` when :func:`feasible`, else (and for ``auto``) the heuristic.

    ``batch`` is the row count, or a symbolic dimension (``jax.export``) or
    ``None`` when it is not known at trace time: the choice is then the one
    for a large batch, and the program runs for every batch size.

    Heuristic (measured on a 2-core CPU, see ``benchmarks/tree_strategies.py``):

    - batches under :data:`SMALL_BATCH` rows: ``traversal`` (its per-call
      cost is O(trees × depth); the others touch every node of every tree);
    - ``oblivious`` whenever the trees are oblivious (D compares per tree);
    - CPU: ``perfect`` up to depth :data:`CPU_PERFECT_DEPTH`, then
      ``bitvector`` up to 64 leaves, then ``traversal``; but ``bitvector``
      before ``perfect`` for sparse trees, where the perfect tree decides
      more than :data:`PERFECT_WASTE` times the nodes the bit vectors do
      (:func:`perfect_waste`);
    - GPU/TPU: ``gemm`` (matmuls) up to :data:`GEMM_MAX_LEAVES` leaves, then
      ``perfect``, ``bitvector``, ``traversal`` (not tuned on a GPU yet).
    """
    ok = feasible(layout)
    if requested != "auto" and requested in ok:
        return requested
    if layout is None or (_static(batch) and batch < SMALL_BATCH):
        return "traversal"
    if "oblivious" in ok:
        return "oblivious"
    if platform != "cpu" and "gemm" in ok:
        return "gemm"
    if "perfect" in ok and (platform != "cpu" or layout.depth <= CPU_PERFECT_DEPTH):
        if platform == "cpu" and "bitvector" in ok and perfect_waste(layout) > PERFECT_WASTE:
            return "bitvector"
        return "perfect"
    if "bitvector" in ok:
        return "bitvector"
    return "traversal"


# --- evaluation ----------------------------------------------------------------------------------
#: Rows a tile is sized for (trees per chunk) when the batch is symbolic; the whole batch is then one tile.
SYMBOLIC_TILE = 1024


def _static(batch: Any) -> bool:
    """Whether ``batch`` is a concrete row count (not ``None`` or a ``jax.export`` symbolic dimension)."""
    return isinstance(batch, (int, np.integer))


def _over_tiles(run_tile: Callable, x, tile: int | None):
    """``run_tile`` over the feature-major tiles of ``x`` [B, F], results stacked to [B, ...].

    ``tile=None`` (a symbolic batch): the whole batch is one tile, so the
    program has no padding and no reshape of the batch into tiles; every
    shape but the batch stays static.
    """
    if tile is None:
        return run_tile(x.T)
    tiles, b = _tiles(x, tile)
    out = jax.lax.map(run_tile, tiles)
    return out.reshape(-1, *out.shape[2:])[:b]


def _tiles(x, tile: int):
    """``x`` [B, F] → ([n_tiles, F, tile] feature-major tiles, B)."""
    b = x.shape[0]
    n_tiles = -(-b // tile)
    pad = n_tiles * tile - b
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)])
    return x.reshape(n_tiles, tile, x.shape[1]).transpose(0, 2, 1), b


def _sizes(n_trees: int, batch: Any, per_tree_nodes: int, platform: str, strategy: str) -> tuple[int | None, int]:
    """(rows per tile, trees per chunk); the tile is ``None`` (the whole batch) for a symbolic ``batch``."""
    if _static(batch):
        tile = batch if platform != "cpu" else min(batch, _CPU_TILES[strategy])
        rows = tile
    else:
        tile, rows = None, _CPU_TILES[strategy] if platform == "cpu" else SYMBOLIC_TILE
    work = _STEP_WORK // _FUSED_STEP_DIV if strategy.endswith("_fused") else _STEP_WORK
    chunk = max(1, min(n_trees, work // max(1, rows * per_tree_nodes)))
    return tile, chunk


def _chunked(a: np.ndarray, chunk: int, fill: Any) -> np.ndarray:
    """[T, ...] → [n_chunks, chunk, ...], padding trees with ``fill``."""
    t = a.shape[0]
    n = -(-t // chunk)
    pad = np.full((n * chunk - t, *a.shape[1:]), fill, a.dtype)
    return np.concatenate([a, pad]).reshape(n, chunk, *a.shape[1:])


def leaves(strategy: str, f: Forest, layout: Layout | None, roots, x, max_depth: int, platform: str,
           per_node: tuple, finish: Callable):
    """Run ``strategy`` over all trees and batch tiles; returns ``finish``'s results stacked to [B, ...].

    Per tile, a scan over chunks of trees finds each row's leaf in each tree,
    as an index ``leaf`` [T', tile] (T' = trees padded to whole chunks) into
    the arrays ``tables``: ``per_node`` (arrays over global node ids, e.g.
    leaf values) re-indexed by leaf, so that ``tables[k][leaf]`` is the value
    at the row's leaf. ``finish(leaf, trees, *tables)`` gives the tile's
    result [tile, ...]; ``trees`` [T'] is the tree index (``-1``: padding).
    The leaves are found in their own loop so that XLA:CPU vectorizes it
    rather than fusing it, element by element, into the gathers of ``finish``.
    """
    n_trees = roots.shape[0]
    batch = x.shape[0]
    tree_ids = np.arange(n_trees, dtype=np.int32)
    if layout is not None and not layout.missing_used and f.has_missing:
        # Empty intervals never hold a value: drop them, which enables the one-compare decisions of _Tile.
        f = f._replace(missing_lo=f.missing_lo[:0], missing_hi=f.missing_hi[:0])
    if strategy == "traversal":
        return _traversal(f, roots, x, max_depth, platform, per_node, finish)
    if strategy == "oblivious":
        reps = layout.oblivious
        # Only the [c, tile] positions reach memory. At least two chunks: with one, XLA drops the
        # loop and fuses the decisions into the leaf-value gathers (element by element, 20x slower).
        tile, chunk = _sizes(n_trees, batch, 1, platform, strategy)
        chunk = min(chunk, max(1, -(-n_trees // 2)))
        per = (tree_ids, layout.heap[-1], reps)
        step = None  # see run_tile
    elif strategy == "perfect":
        heap = np.concatenate(layout.heap[:-1], axis=1) if layout.depth else np.zeros((n_trees, 0), np.int64)
        fused = platform == "cpu" and _Tile.fast(f)
        tile, chunk = _sizes(n_trees, batch, max(1, heap.shape[1]), platform, "perfect_fused" if fused else strategy)
        per = (tree_ids, layout.heap[-1], heap)
        step = lambda go_left, c: _perfect_step(go_left, layout.depth)  # noqa: E731
    elif strategy == "bitvector":
        masks = _bit_masks(layout)
        fused = platform == "cpu" and _Tile.fast(f)
        tile, chunk = _sizes(n_trees, batch, layout.max_inner * masks.shape[-1], platform,
                             "bitvector_fused" if fused else strategy)
        per = (tree_ids, layout.leaf_node, layout.inner, masks)
        step = lambda go_left, c: _bitvector_step(go_left, c[3])  # noqa: E731
    elif strategy == "gemm":
        paths, n_left = _path_matrix(layout)
        tile, chunk = _sizes(n_trees, batch, layout.max_inner * layout.max_leaves, platform, strategy)
        per = (tree_ids, layout.leaf_node, layout.inner, paths, n_left)
        step = lambda go_left, c: _gemm_step(go_left, c[3], c[4])  # noqa: E731
    else:
        raise ValueError(f"unknown tree strategy {strategy!r}")
    fills = {np.dtype(np.uint32): np.uint32(0xFFFFFFFF), np.dtype(np.float32): 0}
    per = tuple(jnp.asarray(_chunked(a if a.dtype in fills else a.astype(np.int32), chunk,
                                     -1 if i == 0 else fills.get(a.dtype, 0)))
                for i, a in enumerate(per))
    if strategy == "gemm":  # padding trees: no leaf matches a left-edge count of -1
        per = per[:4] + (jnp.where(per[0][..., None] >= 0, per[4], -1.0),)
    trees = per[0].reshape(-1)
    # Positions index each tree's leaves: gather the tables once per call, flattened.
    leaf_nodes = per[1].reshape(trees.shape[0], -1)
    tables = tuple(a[leaf_nodes].reshape(-1, *a.shape[1:]) for a in per_node)
    offset = (jnp.arange(trees.shape[0], dtype=jnp.int32) * leaf_nodes.shape[1])[:, None]

    # Per-node parameters of every chunk, gathered once per call and fed to the scan as slices:
    # gathered inside the loop, XLA:CPU fuses the gathers into the comparisons element by element.
    nodes = gather_nodes(f, per[2][..., None])  # fields [n_chunks, c, K, 1]
    read = f.row[per[2]] if _Tile.fast(f) else nodes.feature[..., 0]  # the tile row each node reads
    per = per + (read, nodes)

    def run_tile(xt):
        t = _Tile.of(f, xt)
        if strategy in ("perfect", "bitvector") and fused:  # rows, decisions, positions: one loop per step
            def body(carry, c):
                left, shape = _node_left(f, t, c[-2], c[-1]), (c[-2].shape[0], xt.shape[1])
                if strategy == "perfect":
                    return carry, _perfect_fused(left, layout.depth, shape)
                return carry, _bitvector_fused(left, c[3], shape)

            _, pos = jax.lax.scan(body, None, per)
        elif strategy != "oblivious":  # decisions used many times: XLA materializes them
            _, pos = jax.lax.scan(lambda carry, c: (carry, step(_decide_rows(f, t, c[-1], _rows(t, c[-2])), c)), None, per)
        else:
            # One reduce over the levels with the row gathers and decisions fused into it; the scan's
            # stacked output puts only the [c, tile] positions in memory (3-4x faster than gathering
            # the [c, D, tile] rows first, measured on CatBoost(500, depth 6) at 100k rows).
            def body(carry, c):
                go_left = _decide_rows(f, t, c[-1], _rows(t, c[-2]))  # [c, D, tile]
                return carry, _oblivious_sum(go_left)

            _, pos = jax.lax.scan(body, None, per)
        pos = pos.reshape(trees.shape[0], -1)
        return finish(pos + offset, trees, *tables)

    return _over_tiles(run_tile, x, tile)


def _traversal(f: Forest, roots, x, max_depth: int, platform: str, per_node: tuple, finish: Callable):
    """:func:`leaves` for the traversal: chunks of trees walked ``max_depth`` levels, positions are node ids."""
    n_trees = roots.shape[0]
    batch = x.shape[0]
    tile, chunk = _sizes(n_trees, batch, max(1, max_depth) * 4, platform, "traversal")
    ids = jnp.asarray(_chunked(np.arange(n_trees, dtype=np.int32), chunk, -1))
    trees = ids.reshape(-1)  # in order, padding (-1) last

    def run_tile(xt):
        t = _Tile.of(f, xt)
        _, pos = jax.lax.scan(lambda carry, c: (carry, _traverse(f, t, roots[jnp.maximum(c, 0)], max_depth)), None, ids)
        return finish(pos.reshape(trees.shape[0], -1), trees, *per_node)  # positions are global node ids

    return _over_tiles(run_tile, x, tile)


class _Tile(NamedTuple):
    """A feature-major batch tile: ``xt`` [F, tile] and, for purely numeric forests, NaN-folded keys.

    ``keys`` is [2F, tile]: row ``2f`` holds ``key(x_f)`` with NaN → int32 min
    (a NaN then passes every ``<= t`` test: default left), row ``2f + 1`` the
    same with NaN → int32 max (default right). A node reads row
    ``2·feature + (not default_left)`` and the whole decision is one compare.
    """

    xt: jax.Array
    keys: jax.Array | None

    @staticmethod
    def fast(f: Forest) -> bool:
        """Whether decisions are one compare of NaN-folded keys (no missing intervals, no categories)."""
        return not (f.has_missing or f.has_cats)

    @staticmethod
    def of(f: Forest, xt) -> "_Tile":
        if not _Tile.fast(f):
            return _Tile(xt, None)
        k = key(xt)
        nan = jnp.isnan(xt)
        lo = jnp.where(nan, jnp.int32(np.iinfo(np.int32).min), k)
        hi = jnp.where(nan, jnp.int32(np.iinfo(np.int32).max), k)
        return _Tile(xt, jnp.stack([lo, hi], axis=1).reshape(-1, xt.shape[1]))


def derived(feature: Any, threshold: Any, left: Any, right: Any, default_left: Any, xp: Any = jnp) -> dict:
    """``t_key``, ``children``, ``row`` of :class:`Forest`, with ``xp`` = jnp (in the program) or numpy (host)."""
    k = key(threshold) if xp is jnp else host_key(threshold).astype(np.int32)
    return {"t_key": k, "children": xp.stack([left, right], axis=1).reshape(-1).astype(xp.int32),
            "row": (2 * feature.astype(xp.int32) + (1 - default_left.astype(xp.int32))).astype(xp.int32)}


def _traverse(f: Forest, t: _Tile, roots, depth: int):
    """Global leaf ids [c, tile] by walking ``depth`` levels."""
    idx = jnp.broadcast_to(roots[:, None], (roots.shape[0], t.xt.shape[1]))
    cols = jnp.arange(t.xt.shape[1])[None, :]

    def level(_, idx):  # separate gathers measured faster than one gather of a [N, 4] record
        if t.keys is not None:
            go_right = t.keys[f.row[idx], cols] > f.t_key[idx]
        else:
            n = gather_nodes(f, idx)
            go_right = ~decide(f, n, t.xt[n.feature, cols])
        return f.children[2 * idx + go_right.astype(idx.dtype)]

    return jax.lax.fori_loop(0, depth, level, idx, unroll=depth <= 16)


def _rows(t: _Tile, read):
    """The tile rows [c, K, tile] that nodes read (``read`` [c, K]: rows of the keys, or features)."""
    return jnp.take(t.xt if t.keys is None else t.keys, read, axis=0, mode="clip")


def _decide_rows(f: Forest, t: _Tile, nodes: Nodes, rows):
    """go_left [c, K, tile] of nodes with parameters ``nodes`` ([c, K, 1] fields) given their :func:`_rows`."""
    if t.keys is not None:
        return rows <= nodes.t_key
    return decide(f, nodes, rows)


# The reductions below are written as chains of elementwise ops over static
# slices: XLA:CPU fuses a chain into one vectorized loop, while its reduce
# ops over a short axis run element by element (25x slower, measured).
def _oblivious_sum(go_left):
    """Leaf positions [c, tile] from the decisions [c, D, tile], as one reduce over the levels."""
    depth = go_left.shape[1]
    weights = jnp.asarray((1 << np.arange(depth - 1, -1, -1)).astype(np.int32))[None, :, None]
    return jnp.sum(jnp.where(go_left, 0, weights), axis=1, dtype=jnp.int32)


def _perfect_step(go_left, depth: int):
    """Leaf positions [c, tile] from the decisions [c, 2^D - 1, tile] of perfect trees in heap order."""
    pos = jnp.zeros(go_left.shape[::2], jnp.int32)
    for level in range(depth):
        start = (1 << level) - 1
        right = ~go_left[:, start]
        for j in range(1, 1 << level):
            right = jnp.where(pos == j, ~go_left[:, start + j], right)
        pos = 2 * pos + right.astype(jnp.int32)
    return pos


def _node_left(f: Forest, t: _Tile, read, nodes: Nodes) -> Callable:
    """``left(k)``: go_left [c, tile] of node k of each tree (``read`` [c, K]: :func:`_rows`; ``nodes``: [c, K, 1])."""

    def left(k):
        rows = _rows(t, read[:, k])
        return _decide_rows(f, t, Nodes(*(None if a is None else a[:, k] for a in nodes)), rows)
    return left


def _perfect_fused(left: Callable, depth: int, shape: tuple):
    """:func:`_perfect_step` fused: leaf positions ``shape`` = [c, tile], with ``left`` from :func:`_node_left`.

    Each level's go-right bits are packed into uint32 words (bit j: heap
    position j of the level) and the row's bit is read at its position. With
    the NaN-folded keys of :class:`_Tile` the whole step is one chain of
    elementwise ops that XLA:CPU fuses, row gathers included, into one
    vectorized loop: no [c, 2^D - 1, tile] rows or decisions reach memory.
    """
    pos = None
    one = jnp.uint32(1)
    for level in range(depth):
        start = (1 << level) - 1
        words = []
        for w in range(0, 1 << level, 32):
            word = None
            for j in range(w, min(1 << level, w + 32)):
                bit = jnp.where(left(start + j), jnp.uint32(0), jnp.uint32(1 << (j - w)))
                word = bit if word is None else word | bit
            words.append(word)
        word = words[0]
        for w in range(1, len(words)):
            word = jnp.where((pos >> 5) == w, words[w], word)
        if pos is None:
            pos = word & one
        else:
            pos = 2 * pos + ((word >> (pos & 31)) & one)
    return jnp.zeros(shape, jnp.int32) if pos is None else pos.astype(jnp.int32)


def _bit_masks(layout: Layout) -> np.ndarray:
    """[T, I, W] uint32: all ones except the bits of the node's left-subtree leaves."""
    n_words = -(-layout.max_leaves // 32)
    out = np.empty((*layout.inner.shape, n_words), np.uint32)
    ones = lambda k: (np.uint64(1) << k) - np.uint64(1)  # noqa: E731
    for w in range(n_words):
        lo = np.clip(layout.left_lo - 32 * w, 0, 32).astype(np.uint64)
        hi = np.clip(layout.left_mid - 32 * w, 0, 32).astype(np.uint64)
        cleared = np.where(layout.inner_valid, ones(hi) - ones(lo), np.uint64(0))
        out[..., w] = (~cleared & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return out


def _bitvector_step(go_left, masks):
    """Leaf positions [c, tile] from the decisions [c, I, tile] of each tree's inner nodes."""
    pos = None
    for w in reversed(range(masks.shape[-1])):
        v = jnp.full(go_left.shape[::2], 0xFFFFFFFF, jnp.uint32)
        for i in range(go_left.shape[1]):
            v = v & jnp.where(go_left[:, i], jnp.uint32(0xFFFFFFFF), masks[:, i, w][:, None])
        ctz = jax.lax.population_count((v & (~v + jnp.uint32(1))) - jnp.uint32(1)).astype(jnp.int32)
        pos = 32 * w + ctz if pos is None else jnp.where(v != 0, 32 * w + ctz, pos)
    return pos


def _bitvector_fused(left: Callable, masks, shape: tuple):
    """:func:`_bitvector_step` fused like :func:`_perfect_fused` (``left`` over the inner nodes [c, I])."""
    n_words = masks.shape[-1]
    ones = jnp.uint32(0xFFFFFFFF)
    v = [None] * n_words
    for i in range(masks.shape[1]):
        go_left = left(i)
        for w in range(n_words):
            m = jnp.where(go_left, ones, masks[:, i, w][:, None])
            v[w] = m if v[w] is None else v[w] & m
    pos = None
    for w in reversed(range(n_words)):
        vw = jnp.full(shape, ones) if v[w] is None else v[w]
        ctz = jax.lax.population_count((vw & (~vw + jnp.uint32(1))) - jnp.uint32(1)).astype(jnp.int32)
        pos = 32 * w + ctz if pos is None else jnp.where(vw != 0, 32 * w + ctz, pos)
    return pos


def _path_matrix(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """([T, I, L] +1 leaf under the left child / -1 under the right / 0, [T, L] left edges per leaf path)."""
    k = np.arange(layout.max_leaves)[None, None, :]
    lo, mid, hi = (a[:, :, None] for a in (layout.left_lo, layout.left_mid, layout.left_hi))
    valid = layout.inner_valid[:, :, None]
    under_left = valid & (lo <= k) & (k < mid)
    under_right = valid & (mid <= k) & (k < hi)
    paths = under_left.astype(np.float32) - under_right.astype(np.float32)
    n_left = under_left.sum(axis=1).astype(np.float32)
    n_left = np.where(np.arange(layout.max_leaves)[None, :] < layout.n_leaves[:, None], n_left, -1.0)
    return paths, n_left.astype(np.float32)


def _gemm_step(go_left, paths, n_left):
    """Leaf positions [c, tile] from the decisions [c, I, tile] of each tree's inner nodes."""
    go_left = go_left.astype(jnp.float32)
    hi = jax.lax.Precision.HIGHEST
    score = jnp.einsum("cil,cit->clt", paths, go_left, precision=hi)  # small integers: exact
    onehot = (score == n_left[:, :, None]).astype(jnp.float32)  # exactly one leaf per tree and row
    return jnp.einsum("clt,l->ct", onehot, jnp.arange(paths.shape[2], dtype=jnp.float32), precision=hi).astype(jnp.int32)
