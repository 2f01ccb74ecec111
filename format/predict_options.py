"""Per-call prediction options a model may declare in its metadata: optional inputs and iteration ranges.

Written by exporters (``ctx.options``; ``export_model`` stores them) and
applied by :mod:`mlejax.predict_options`. Both keys are optional.

**Optional graph inputs** (``"input_defaults"``)::

    {"base_margin": [0.1, -0.3, 0.2]}   # graph input name -> its default row

Every named input except the first (``X``) may be left out by a caller; it
then holds the default row (``prod(shape[1:])`` numbers, row-major) repeated
for every row of the batch. XGBoost models use it for ``base_margin``
(``[batch, n_groups]`` float32, default: the margin of ``base_score``).

**Iteration ranges** (``"iterations"``)::

    {"indptr": [0, 3, 6, 9],        # trees of iteration i: indptr[i] .. indptr[i+1]
     "default": [0, 3],             # iterations used when the caller gives no range
     "open_end": "default" | "last",  # what a range (b, 0) means (below)
     "nodes": ["TreeEnsemble.4", ...]}  # the TreeEnsemble / TreeLeafIndex nodes it slices

A range ``(b, e)`` of iterations selects trees ``indptr[b] .. indptr[e]``
of every listed node (their ``tree_range`` attribute, see
``lowering/ops_trees.py``); the stored tensors are unchanged. ``e == 0``
means the model's default range (``open_end == "default"``, XGBoost's
scikit-learn wrappers) or up to the last iteration (``"last"``, a Booster).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import MLEFormatError
from .graph import Graph

__all__ = ["validate_input_defaults", "validate_iterations", "TREE_OPS"]

#: Ops whose trees an iteration range slices (through their ``tree_range`` attribute).
TREE_OPS = ("TreeEnsemble", "TreeLeafIndex")


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise MLEFormatError(f"metadata.{where}: expected {what}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_INT = frozenset({int})


def _non_decreasing_below(values: list[int], bound: int) -> bool:
    """Whether ints ``values`` (first one 0) never decrease and stay below ``bound`` (one numpy pass)."""
    if not 0 <= max(values) < bound:
        return False
    return bool((np.diff(np.asarray(values, dtype=np.int64)) >= 0).all())


def validate_input_defaults(spec: Any, graph: Graph) -> None:
    """Check ``metadata.input_defaults`` against the graph; :class:`MLEFormatError` names the bad field."""
    _need(isinstance(spec, dict), "input_defaults", "a map of graph input name to a list of numbers")
    infos = {info.name: info for info in graph.inputs[1:]}
    for name, row in spec.items():
        where = f"input_defaults[{name!r}]"
        _need(name in infos, where, f"the name of a graph input after the first ({sorted(infos)})")
        info = infos[name]
        size = 1
        for d in info.shape[1:]:
            size *= d
        _need(info.dtype in ("float32", "float64"), where, f"a float input, found dtype {info.dtype}")
        _need(isinstance(row, list) and len(row) == size and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row),
              where, f"a list of {size} numbers")


def validate_iterations(spec: Any, graph: Graph) -> None:
    """Check ``metadata.iterations`` (structure and node names); :class:`MLEFormatError` names the bad field."""
    _need(isinstance(spec, dict) and set(spec) == {"indptr", "default", "open_end", "nodes"}, "iterations",
          "a map with indptr, default, open_end, nodes")
    indptr = spec["indptr"]
    _need(isinstance(indptr, list) and 2 <= len(indptr) < 2**31 and _INT.issuperset(map(type, indptr)) and indptr[0] == 0
          and _non_decreasing_below(indptr, 2**31),
          "iterations.indptr", "a non-decreasing list of at least 2 ints starting at 0")
    default = spec["default"]
    n_iter = len(indptr) - 1
    _need(isinstance(default, list) and len(default) == 2 and all(_is_int(v) for v in default)
          and 0 <= default[0] <= default[1] <= n_iter, "iterations.default", f"[begin, end] with 0 <= begin <= end <= {n_iter}")
    _need(spec["open_end"] in ("default", "last"), "iterations.open_end", "'default' or 'last'")
    ops = {node.name: node.op for node in graph.nodes}
    nodes = spec["nodes"]
    _need(isinstance(nodes, list) and nodes and all(isinstance(n, str) and ops.get(n) in TREE_OPS for n in nodes),
          "iterations.nodes", f"a non-empty list of names of {'/'.join(TREE_OPS)} nodes")
