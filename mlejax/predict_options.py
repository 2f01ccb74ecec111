"""Per-call prediction options: optional graph inputs (``base_margin``) and ``iteration_range``.

The metadata that declares them is specified (and validated) in
:mod:`mlejax.format.predict_options`. At call time:

- an **optional input** (e.g. XGBoost's ``base_margin``) is taken positionally
  after the required inputs or by keyword (``predict(X, base_margin=m)``);
  left out, it holds its default row for every row of the batch. An input of
  shape ``[batch, 1]`` may be given as a 1-D ``[batch]`` array;
- ``iteration_range=(begin, end)`` selects trees of the listed tree nodes.
  It is static: each distinct range gets its own graph (the nodes'
  ``tree_range`` attribute rewritten) and :class:`~mlejax.lowering.Program`,
  cached, which shares the stored tensors already on the device.

A method accepts exactly the options its output depends on, and
``check_finite`` (every method but ``jax_function``: the host's NaN / infinity
check, see :class:`mlejax.host.InputChecks`); anything else is a ``TypeError``
that names them.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, Mapping, Sequence

import numpy as np

from .format.errors import InputError, MLEFormatError
from .format.graph import Graph
from .format.predict_options import validate_input_defaults, validate_iterations
from .lowering import Program
from .lowering.ops_trees import roots_input

__all__ = ["PredictOptions", "SharedProgram", "ITERATION_RANGE", "CHECK_FINITE", "BY_POSITION"]

ITERATION_RANGE = "iteration_range"
#: accepted by every method: ``False`` skips the host's NaN / infinity check (:class:`mlejax.host.InputChecks`)
CHECK_FINITE = "check_finite"
#: per-call option: X's columns are already in the model's feature order (batch scoring, serving)
BY_POSITION = "by_position"


class PredictOptions:
    """The per-call options a loaded model declares (validated against its graph and tensors)."""

    def __init__(self, metadata: Mapping[str, Any], graph: Graph, tensors: Mapping[str, np.ndarray]) -> None:
        self.graph = graph
        spec = metadata.get("input_defaults")
        if spec is not None:
            validate_input_defaults(spec, graph)
        infos = {info.name: info for info in graph.inputs}
        #: default value of each optional input, shaped like one row
        self.defaults: dict[str, np.ndarray] = {
            name: np.asarray(row, np.float64).astype(infos[name].dtype).reshape(infos[name].shape[1:])
            for name, row in (spec or {}).items()
        }
        names = [info.name for info in graph.inputs]
        self.n_required = len(names) - len(self.defaults)
        if any(name not in self.defaults for name in names[self.n_required :]):
            raise MLEFormatError("metadata.input_defaults: optional inputs must be the last graph inputs")
        self.iterations: dict | None = metadata.get("iterations")
        if self.iterations is not None:
            validate_iterations(self.iterations, graph)
            n_trees = self.iterations["indptr"][-1]
            for node in graph.nodes:
                if node.name in self.iterations["nodes"]:
                    roots = tensors.get(roots_input(node) or "")
                    if roots is None or roots.shape != (n_trees,):
                        raise MLEFormatError(
                            f"metadata.iterations: node {node.name!r} does not have indptr[-1] = {n_trees} trees"
                        )
        self._graphs: dict[tuple[int, int], Graph] = {}
        self._reach: dict[str, tuple[set, set]] = {}

    # --- which options a call accepts -------------------------------------------------------
    def _reached(self, output: str) -> tuple[set, set]:
        """(values, node names) that graph output ``output`` depends on."""
        if output not in self._reach:
            wanted, nodes = {self.graph.outputs[output]}, set()
            for node in reversed(self.graph.nodes):
                if wanted.intersection(node.outputs):
                    nodes.add(node.name)
                    wanted.update(node.inputs)
            self._reach[output] = (wanted, nodes)
        return self._reach[output]

    def supported(self, outputs: Sequence[str]) -> list[str]:
        """Keyword options that computing ``outputs`` accepts."""
        values, nodes = set(), set()
        for output in outputs:
            v, n = self._reached(output)
            values |= v
            nodes |= n
        names = [name for name in self.defaults if name in values]
        if self.iterations is not None and nodes.intersection(self.iterations["nodes"]):
            names.append(ITERATION_RANGE)
        return names

    def parse(self, caller: str, outputs: Sequence[str], options: Mapping[str, Any], *, leaf: bool = False
              ) -> tuple[dict[str, Any], tuple[int, int] | None]:
        """(optional inputs given by keyword, tree range or ``None`` for the default); TypeError on unknown options."""
        supported = self.supported(outputs)
        if caller != "jax_function":
            supported += [CHECK_FINITE, BY_POSITION]
        unknown = sorted(set(options) - set(supported))
        if unknown:
            accepts = ", ".join(supported) if supported else "no keyword arguments"
            raise TypeError(f"{caller}() got unexpected keyword argument(s) {unknown}; for this model it accepts: {accepts}")
        named = {k: v for k, v in options.items() if k in self.defaults and v is not None}
        return named, self.tree_range(options.get(ITERATION_RANGE), leaf=leaf)

    # --- inputs -------------------------------------------------------------------------------
    def complete(self, inputs: Sequence[Any], named: Mapping[str, Any]) -> list[Any]:
        """All graph inputs: ``inputs`` positionally, then keyword ones, then defaults (``None`` until the batch is known)."""
        infos = self.graph.inputs
        if not self.n_required <= len(inputs) <= len(infos):
            names = [i.name for i in infos]
            expected = f"{self.n_required}" if self.n_required == len(infos) else f"{self.n_required} to {len(infos)}"
            raise InputError(f"this model takes {expected} input(s) {names}, got {len(inputs)}")
        positional = {info.name for info in infos[: len(inputs)]}
        both = sorted(positional.intersection(named))
        if both:
            raise TypeError(f"input(s) {both} given both positionally and by keyword")
        out = list(inputs) + [named.get(info.name) for info in infos[len(inputs) :]]
        for i, info in enumerate(infos):
            if out[i] is not None and info.name in self.defaults and np.ndim(out[i]) == 1 and tuple(info.shape[1:]) == (1,):
                out[i] = np.reshape(out[i], (-1, 1))  # [batch] for a [batch, 1] input, as XGBoost's base_margin
        return out

    def default(self, name: str, rows: int, xp: Any = np) -> Any:
        """The default of optional input ``name`` for ``rows`` rows."""
        row = self.defaults[name]
        return xp.broadcast_to(xp.asarray(row), (rows, *row.shape))

    # --- iteration ranges ---------------------------------------------------------------------
    def tree_range(self, iteration_range: Any, *, leaf: bool = False) -> tuple[int, int] | None:
        """Trees ``(begin, end)`` of an ``iteration_range`` (XGBoost's rules), ``None`` for the default.

        ``(b, 0)`` is the default range or ``(b, n_iterations)`` (``open_end``);
        ``leaf`` (``apply`` / ``pred_leaf``) requires ``begin == 0``, as XGBoost.
        """
        if iteration_range is None:
            return None
        spec = self.iterations
        try:
            begin, end = (operator.index(v) for v in iteration_range)
        except (TypeError, ValueError):
            raise InputError(f"iteration_range: expected a pair of ints (begin, end), got {iteration_range!r}") from None
        n_iter = len(spec["indptr"]) - 1
        if end == 0:
            if spec["open_end"] == "default":
                return None
            end = n_iter
        if begin < 0 or end < 0:
            raise InputError(f"iteration_range {iteration_range!r}: begin and end must be >= 0")
        if begin > end:
            raise InputError(f"iteration_range {iteration_range!r}: begin must not exceed end")
        if end > n_iter:
            raise InputError(f"iteration_range {iteration_range!r}: out of range; the model has {n_iter} iterations")
        if leaf and begin != 0:
            raise InputError(f"iteration_range {iteration_range!r}: leaf indices (apply) support only ranges starting at 0, as XGBoost")
        span = (spec["indptr"][begin], spec["indptr"][end])
        default = tuple(spec["indptr"][i] for i in spec["default"])
        return None if span == default else span

    def graph_for(self, span: tuple[int, int] | None) -> Graph:
        """The graph with the tree nodes' ``tree_range`` set to ``span`` (``None``: the stored graph)."""
        if span is None:
            return self.graph
        if span not in self._graphs:
            nodes = tuple(
                dataclasses.replace(node, attrs={**node.attrs, "tree_range": list(span)}) if node.name in self.iterations["nodes"] else node
                for node in self.graph.nodes
            )
            self._graphs[span] = Graph(self.graph.inputs, nodes, self.graph.outputs)
        return self._graphs[span]


class SharedProgram(Program):
    """A :class:`Program` over a rewritten graph that reuses ``base``'s device copies of the stored tensors."""

    def __init__(self, graph: Graph, tensors: Mapping[str, np.ndarray], base: Program) -> None:
        super().__init__(graph, tensors, device=base.device, batch_buckets=base.batch_buckets, max_tile=base.max_tile,
                         options=base.options)
        self._base = base

    @property
    def params(self) -> dict:
        """The base program's stored tensors on the device (not copied again)."""
        return self._base.params
