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
With attr ``squeeze_single`` (both versions, default false) a range of exactly
one tree gives ``[B]`` instead of ``[B, 1]`` (XGBoost's ``pred_leaf`` shape).

Both ops (both versions) take an optional attr ``tree_range``: ``[begin,
end]`` with ``0 <= begin <= end <= n_trees``. Only trees ``begin .. end - 1``
(of ``roots``, and of ``tree_target``) are used: the sum runs over them
(``base`` is still added) and ``TreeLeafIndex`` returns their ``end - begin``
columns. It is how iteration ranges are applied per call without touching the
stored tensors (:mod:`mlejax.predict_options`); a malformed value raises
:class:`~mlejax.format.errors.MLEFormatError`.

Trees are evaluated in chunks scanned with ``lax.scan`` and the batch in
tiles, so the program size does not grow with the tree count and memory stays
bounded in the batch. *How* the leaves are found is a lowering strategy
(:mod:`.tree_strategies`: traversal, perfect, bitvector, oblivious, gemm),
picked per forest and batch size or forced with ``load_model(...,
tree_strategy=...)`` / ``$MLEJAX_TREE_STRATEGY``; all give the same leaves.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..format.errors import MLEFormatError
from ..format.graph import Node
from .program import lowering_options
from .registry import ABSENT, Attr, register_rule
from .tree_strategies import Forest, Layout, analyze, choose, derived, leaves, requested_strategy

_EMPTY_I = np.zeros((0,), np.int32)
#: Optional decision inputs, empty (switched off) when a version lacks them.
_EMPTY = {"missing_lo": np.zeros((0,), np.float32), "missing_hi": np.zeros((0,), np.float32), "cat_start": _EMPTY_I,
          "cat_len": _EMPTY_I, "cat_bits": np.zeros((0,), np.uint32), "cat_other_left": np.zeros((0,), bool)}
#: Names of the decision inputs, in version-2 order, and of version 1's.
_DECISION = ("feature", "threshold", "left", "right", "default_left", "missing_lo", "missing_hi",
             "cat_start", "cat_len", "cat_bits", "cat_other_left")


def _forest(node: Node, arrays: dict) -> Forest:
    attrs = node.attrs
    fields = [jnp.asarray(arrays[k] if k in arrays else _EMPTY[k]) for k in _DECISION]
    params = lowering_options().get("params") or {}
    if all(f"{node.name}/{k}" in params for k in _DERIVED):  # prepared once per Program
        extra = {k: params[f"{node.name}/{k}"] for k in _DERIVED}
    else:
        extra = derived(*fields[:5])
    return Forest(*fields, float(attrs["cat_lo"]), float(attrs["cat_hi"]),
                  bool(attrs["cat_integer"]), **extra)


_DERIVED = ("t_key", "children", "row")


def _prepare(node: Node, host: dict) -> dict:
    """The :func:`.tree_strategies.derived` arrays, computed once on the host ({} if malformed)."""
    try:
        arrays = [np.asarray(host[name]) for name in node.inputs[1:6]]
        n = arrays[0].shape[0]
        if arrays[0].ndim != 1 or any(a.shape != (n,) for a in arrays):
            return {}
        return derived(*arrays, xp=np)
    except (KeyError, ValueError, TypeError):
        return {}


def _host_arrays(node: Node, names: Sequence[str], inputs: Sequence[Any]) -> dict | None:
    """The decision inputs as numpy arrays (from the Program's host tensors, or concrete inputs), else None."""
    host = lowering_options().get("host") or {}
    out = {}
    for name, value_name, value in zip(names, node.inputs[1:], inputs):
        if name not in _DECISION and name != "roots":
            continue
        if value_name in host:
            out[name] = np.asarray(host[value_name])
        elif not isinstance(value, jax.core.Tracer):
            out[name] = np.asarray(value)
        else:
            return None
    return {**_EMPTY, **out}


def _tree_range(node: Node, n_trees: int) -> tuple[int, int]:
    """The ``tree_range`` attr as ``(begin, end)`` (all trees when absent); MLEFormatError if malformed."""
    value = node.attrs.get("tree_range")
    if value is None:
        return 0, n_trees
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok or not 0 <= value[0] <= value[1] <= n_trees:
        raise MLEFormatError(
            f"node {node.name!r}: attr tree_range: expected [begin, end] with 0 <= begin <= end <= {n_trees}, found {value!r}"
        )
    return int(value[0]), int(value[1])


def _plan(node: Node, names: Sequence[str], inputs: Sequence[Any], batch: int, span: tuple[int, int]) -> tuple[str, Layout | None]:
    """(strategy, layout) for this node, batch and tree range ``span``; the layout is memoized per Program."""
    options = lowering_options()
    requested = requested_strategy(options)
    cache = options.get("cache")
    cache_key = ("tree_layout", node.name, span)
    if cache is not None and cache_key in cache:
        layout = cache[cache_key]
    else:
        layout = None
        if requested != "traversal":
            host = _host_arrays(node, names, inputs)
            if host is not None:
                host["roots"] = host["roots"][span[0] : span[1]]
            try:
                layout = analyze(host, int(node.attrs["max_depth"])) if host is not None else None
            except (ValueError, IndexError, TypeError):  # malformed arrays: the traversal defines the result
                layout = None
            if cache is not None:
                cache[cache_key] = layout
    strategy = choose(requested, layout, batch, str(options.get("platform", jax.default_backend())))
    choices = options.get("choices")
    if choices is not None:
        choices[f"{node.name}@{batch}"] = strategy
    return strategy, layout


def _check_forest(node: Node, shapes: Sequence[tuple | None], budget: int) -> None:
    """``max_depth`` at most the node count (deeper levels only revisit leaves), outputs within the bound."""
    nodes = shapes[1] if len(shapes) > 1 else None
    if nodes is not None and len(nodes) == 1 and node.attrs["max_depth"] > nodes[0]:
        raise ValueError(f"attribute 'max_depth': {node.attrs['max_depth']} is more than the {nodes[0]} stored tree nodes")
    if "n_targets" in node.attrs and node.attrs["n_targets"] > budget:  # TreeLeafIndex has none
        raise ValueError(f"attribute 'n_targets': {node.attrs['n_targets']} is over this model's bound of {budget}")


_TREE = {"max_depth": Attr("int", lo=0), "tree_range": Attr("ints", ABSENT, length=2, lo=0), "cat_lo": Attr("number", -1.0),
         "cat_hi": Attr("number", 2.0**31), "cat_integer": Attr("bool", False)}
_ENSEMBLE = {**_TREE, "n_targets": Attr("int", ABSENT, lo=1), "base": Attr("numbers", None, nullable=True),
             "aggregate": Attr("str", "sum", choices=("sum", "mean"))}

_LEAF = {**_TREE, "squeeze_single": Attr("bool", False)}

_V1 = ("feature", "threshold", "left", "right", "default_left", "values", "roots")
_V2 = _V1 + ("tree_target",) + _DECISION[5:]


@register_rule("TreeEnsemble", attrs=_ENSEMBLE, inputs=(1 + len(_V1), 1 + len(_V1)), check=_check_forest)
def _tree_ensemble(node: Node, x, *inputs):
    """Version 1: sum/mean of leaf ``values`` over trees, ``x <= threshold`` splits, NaN → default."""
    return _ensemble(node, x, _V1, inputs)


@register_rule("TreeEnsemble", version=2, attrs=_ENSEMBLE, inputs=(1 + len(_V1), 1 + len(_V2)), check=_check_forest)
def _tree_ensemble_v2(node: Node, x, *inputs):
    """Version 2: adds missing intervals, categorical bitsets and per-tree target columns (module docstring)."""
    return _ensemble(node, x, _V2, inputs)


def _ensemble(node: Node, x, names: Sequence[str], inputs: Sequence[Any]):
    arrays = dict(zip(names, inputs))
    attrs = node.attrs
    values, roots = arrays["values"], arrays["roots"]
    tree_target = arrays.get("tree_target", _EMPTY_I)
    n_out = int(attrs.get("n_targets", values.shape[1]))
    per_tree = tree_target.shape[0] > 0
    span = _tree_range(node, roots.shape[0])
    roots = roots[span[0] : span[1]]
    tree_target = tree_target[span[0] : span[1]] if per_tree else tree_target
    base = attrs.get("base")
    base = jnp.asarray(np.asarray(base if base is not None else 0.0, dtype=np.float32))
    if roots.shape[0] == 0:  # an empty range: only the base
        return jnp.broadcast_to(base, (x.shape[0], n_out)).astype(values.dtype)
    strategy, layout = _plan(node, names, inputs, x.shape[0], span)
    f = _forest(node, arrays)
    platform = str(lowering_options().get("platform", jax.default_backend()))

    scalar = per_tree or values.shape[1] == 1  # [N] tables: 2-D gathers and a plain matmul

    def finish(leaf, trees, table):
        w = (trees >= 0).astype(values.dtype)
        if per_tree:
            w = jax.nn.one_hot(tree_target[jnp.maximum(trees, 0)], n_out, dtype=values.dtype) * w[:, None]
        if scalar:
            return jnp.einsum("ct,cn->tn", table[leaf], w.reshape(w.shape[0], -1), precision=jax.lax.Precision.HIGHEST)
        return jnp.einsum("ctn,c->tn", table[leaf], w, precision=jax.lax.Precision.HIGHEST)

    table = values[:, 0] if scalar else values
    acc = leaves(strategy, f, layout, roots, x, int(attrs["max_depth"]), platform, (table,), finish)
    if attrs["aggregate"] == "mean":
        counts = jnp.maximum(jnp.zeros((n_out,), values.dtype).at[tree_target].add(1.0), 1.0) if per_tree else jnp.float32(roots.shape[0])
        acc = acc / counts
    if attrs.get("base") is not None:
        acc = acc + base
    return acc


_LEAF_V1 = ("feature", "threshold", "left", "right", "default_left", "roots")
_LEAF_V2 = _LEAF_V1 + _DECISION[5:] + ("leaf_ids",)


def roots_input(node: Node) -> str | None:
    """The value a ``TreeEnsemble`` / ``TreeLeafIndex`` node reads its ``roots`` (one per tree) from."""
    at = 1 + (_V1 if node.op == "TreeEnsemble" else _LEAF_V1).index("roots")  # the same in every version
    return node.inputs[at] if len(node.inputs) > at else None


@register_rule("TreeLeafIndex", attrs=_LEAF, inputs=(1 + len(_LEAF_V1), 1 + len(_LEAF_V1)), check=_check_forest)
def _tree_leaf_index(node: Node, x, *inputs):
    """Version 1: leaf index per (row, tree) relative to the tree's root, ``[B, n_trees]`` int32."""
    return _leaf_index(node, x, _LEAF_V1, inputs)


@register_rule("TreeLeafIndex", version=2, attrs=_LEAF, inputs=(1 + len(_LEAF_V1), 1 + len(_LEAF_V2)), check=_check_forest)
def _tree_leaf_index_v2(node: Node, x, *inputs):
    """Version 2: ``leaf_ids[leaf]`` per (row, tree) (or the index relative to the root if empty)."""
    return _leaf_index(node, x, _LEAF_V2, inputs)


def _leaf_index(node: Node, x, names: Sequence[str], inputs: Sequence[Any]):
    arrays = dict(zip(names, inputs))
    span = _tree_range(node, arrays["roots"].shape[0])
    roots = arrays["roots"][span[0] : span[1]]
    leaf_ids = arrays.get("leaf_ids", _EMPTY_I)
    if roots.shape[0] == 0:
        return jnp.zeros((x.shape[0], 0), jnp.int32)
    strategy, layout = _plan(node, names, inputs, x.shape[0], span)
    f = _forest(node, arrays)
    platform = str(lowering_options().get("platform", jax.default_backend()))

    def finish(leaf, trees, node_ids):
        nodes = node_ids[leaf]
        ids = leaf_ids[nodes] if leaf_ids.shape[0] > 0 else nodes - roots[jnp.maximum(trees, 0)][:, None]
        return ids[: roots.shape[0]].T

    node_ids = jnp.arange(arrays["left"].shape[0], dtype=jnp.int32)
    ids = leaves(strategy, f, layout, roots, x, int(node.attrs["max_depth"]), platform, (node_ids,), finish)
    return ids[:, 0] if node.attrs["squeeze_single"] and roots.shape[0] == 1 else ids


for _rule in (_tree_ensemble, _tree_ensemble_v2, _tree_leaf_index, _tree_leaf_index_v2):
    _rule.prepare = _prepare
