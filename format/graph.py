"""The Graph IR: a small, typed, framework-neutral description of a model.

A graph has named inputs, nodes and named outputs. Every value is referenced by
name: a graph input, a node output, or a stored tensor (kept in the tensor
section of the file, never inside the graph). Exporters build graphs with
:class:`GraphBuilder`; the lowering turns them into JAX functions.

The dict form (``Graph.to_dict``) is what the ``.mle`` graph section holds::

    {"inputs":  [{"name", "dtype", "shape", "feature_names"}],
     "nodes":   [{"op", "version", "name", "inputs", "outputs", "attrs"}],
     "outputs": {"label": "<value name>", "probabilities": "...", ...}}

``shape`` uses ``None`` for the symbolic batch dimension, and for variable-length
axes past it (their buckets: ``metadata["sequence"]``, ``lowering/seq_buckets.py``). ``attrs`` hold only
plain data (numbers, strings, lists, dicts); arrays go to stored tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .errors import MLEFormatError

__all__ = ["ValueInfo", "Node", "Graph", "GraphBuilder", "OUTPUT_KINDS"]

#: Names a graph output may take, and what each holds.
OUTPUT_KINDS = {
    "label": "class index per row (int32); mapped to classes_ on the host",
    "probabilities": "class probabilities per row",
    "log_probabilities": "log of class probabilities per row",
    "decision": "decision function / raw margin per row",
    "output": "regression output or network output",
    "transform": "transformed features",
    "score_samples": "per-row score (density, anomaly score)",
    "leaf_index": "leaf index per row and tree (int32)",
}
# A network with several outputs names the extra ones "output:<name>"; "output" is the first.

_NAME = re.compile(r"^[A-Za-z0-9_.:/\-]{1,200}$")
_INPUT_DTYPES = ("float32", "float64", "int32", "int64", "bool")


@dataclass(frozen=True)
class ValueInfo:
    """A graph input: name, dtype and shape (``None`` marks the batch dimension)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    feature_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Node:
    """One op application. ``inputs``/``outputs`` are value names."""

    op: str
    version: int
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    """A whole model: inputs, nodes in topological order, named outputs."""

    inputs: tuple[ValueInfo, ...]
    nodes: tuple[Node, ...]
    outputs: Mapping[str, str]

    def to_dict(self) -> dict:
        """The plain-data form stored in the graph section."""
        return {
            "inputs": [
                {
                    "name": v.name,
                    "dtype": v.dtype,
                    "shape": list(v.shape),
                    "feature_names": None if v.feature_names is None else list(v.feature_names),
                }
                for v in self.inputs
            ],
            "nodes": [
                {
                    "op": n.op,
                    "version": n.version,
                    "name": n.name,
                    "inputs": list(n.inputs),
                    "outputs": list(n.outputs),
                    "attrs": dict(n.attrs),
                }
                for n in self.nodes
            ],
            "outputs": dict(self.outputs),
        }

    @classmethod
    def from_dict(cls, d: Any, tensor_names: frozenset[str] | set[str] = frozenset()) -> "Graph":
        """Parse and structurally validate a graph section.

        Checks types of every field, that every referenced value exists before
        it is used (inputs, earlier outputs or stored tensors), and that names
        are unique. Raises :class:`MLEFormatError` on any violation.
        """
        _expect(isinstance(d, dict), "graph", "a map", d)
        _expect(set(d) == {"inputs", "nodes", "outputs"}, "graph", "keys inputs, nodes, outputs", sorted(map(str, d)))
        known: set[str] = set(tensor_names)
        inputs = []
        _expect(isinstance(d["inputs"], list) and len(d["inputs"]) >= 1, "graph.inputs", "a non-empty list", d["inputs"])
        for i, v in enumerate(d["inputs"]):
            where = f"graph.inputs[{i}]"
            _expect(isinstance(v, dict) and set(v) == {"name", "dtype", "shape", "feature_names"}, where, "a map with name, dtype, shape, feature_names", v)
            name = _check_name(v["name"], where)
            _expect(v["dtype"] in _INPUT_DTYPES, where + ".dtype", f"one of {_INPUT_DTYPES}", v["dtype"])
            shape = v["shape"]
            _expect(
                isinstance(shape, list) and 1 <= len(shape) <= 8 and shape[0] is None
                and all(s is None or isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in shape[1:]),
                where + ".shape", "a list [None, d1, ...] of at most 8 dims (None past the batch: a variable length)", shape,
            )
            fn = v["feature_names"]
            if fn is not None:
                _expect(
                    isinstance(fn, list) and all(isinstance(s, str) for s in fn) and len(shape) == 2 and len(fn) == shape[1],
                    where + ".feature_names", f"null or a list of {shape[1] if len(shape) > 1 else '?'} strings", fn,
                )
                fn = tuple(fn)
            _expect(name not in known, where, "a unique name", name)
            known.add(name)
            inputs.append(ValueInfo(name, v["dtype"], tuple(shape), fn))
        nodes = []
        _expect(isinstance(d["nodes"], list), "graph.nodes", "a list", d["nodes"])
        for i, n in enumerate(d["nodes"]):
            where = f"graph.nodes[{i}]"
            _expect(
                isinstance(n, dict) and set(n) == {"op", "version", "name", "inputs", "outputs", "attrs"},
                where, "a map with op, version, name, inputs, outputs, attrs", n,
            )
            _expect(isinstance(n["op"], str) and _NAME.match(n["op"]), where + ".op", "an op name", n["op"])
            _expect(isinstance(n["version"], int) and not isinstance(n["version"], bool) and n["version"] >= 1, where + ".version", "a positive int", n["version"])
            _expect(isinstance(n["name"], str), where + ".name", "a string", n["name"])
            _expect(isinstance(n["attrs"], dict) and all(isinstance(k, str) for k in n["attrs"]), where + ".attrs", "a map with string keys", n["attrs"])
            _expect(isinstance(n["inputs"], list) and isinstance(n["outputs"], list) and n["outputs"], where, "lists of inputs and outputs", n)
            for ref in n["inputs"]:
                _check_name(ref, where + ".inputs")
                _expect(ref in known, where + ".inputs", "a value defined earlier (graph input, node output or stored tensor)", ref)
            for out in n["outputs"]:
                _check_name(out, where + ".outputs")
                _expect(out not in known, where + ".outputs", "a new unique value name", out)
                known.add(out)
            nodes.append(Node(n["op"], n["version"], n["name"], tuple(n["inputs"]), tuple(n["outputs"]), n["attrs"]))
        outs = d["outputs"]
        _expect(isinstance(outs, dict) and outs, "graph.outputs", "a non-empty map", outs)
        for k, ref in outs.items():
            _expect(isinstance(k, str) and _NAME.match(k), "graph.outputs", "output names", k)
            _expect(isinstance(ref, str) and ref in known, f"graph.outputs[{k!r}]", "a defined value", ref)
        return cls(tuple(inputs), tuple(nodes), dict(outs))


def _check_name(name: Any, where: str) -> str:
    _expect(isinstance(name, str) and _NAME.match(name) is not None, where, "a value name of 1-200 characters [A-Za-z0-9_.:/-]", name)
    return name


def _expect(ok: bool, where: str, expected: str, found: Any) -> None:
    if not ok:
        text = repr(found)
        if len(text) > 120:
            text = text[:117] + "..."
        raise MLEFormatError(f"invalid graph: {where}: expected {expected}, found {text}")


class GraphBuilder:
    """Builds a :class:`Graph` and the stored tensors it references.

    Exporters call :meth:`add_input`, :meth:`tensor` (store an array, get its
    name), :meth:`node` (add an op, get its output names) and
    :meth:`set_output`, then :meth:`build`.
    """

    def __init__(self) -> None:
        self._inputs: list[ValueInfo] = []
        self._nodes: list[Node] = []
        self._outputs: dict[str, str] = {}
        self.tensors: dict[str, np.ndarray] = {}
        self._counter = 0

    def fresh(self, hint: str) -> str:
        """A new unique value name based on ``hint``."""
        self._counter += 1
        return f"{hint}.{self._counter}"

    def add_input(self, name: str, dtype: str, shape: tuple[int | None, ...], feature_names: list[str] | None = None) -> str:
        self._inputs.append(ValueInfo(name, dtype, tuple(shape), None if feature_names is None else tuple(feature_names)))
        return name

    def tensor(self, hint: str, array: Any, dtype: Any = None) -> str:
        """Store ``array`` (copied, C-contiguous) as a tensor; return its value name."""
        name = self.fresh(hint)
        self.tensors[name] = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        return name

    def node(self, op: str, inputs: list[str], *, n_outputs: int = 1, version: int = 1, **attrs: Any) -> list[str]:
        """Append a node; return the names of its ``n_outputs`` outputs."""
        name = self.fresh(op)
        outputs = [f"{name}:{i}" for i in range(n_outputs)]
        self._nodes.append(Node(op, version, name, tuple(inputs), tuple(outputs), attrs))
        return outputs

    def op(self, op: str, *inputs: str, version: int = 1, **attrs: Any) -> str:
        """Append a single-output node; return its output name."""
        return self.node(op, list(inputs), version=version, **attrs)[0]

    def producer(self, value: str) -> str:
        """Name of the node that outputs ``value``."""
        for node in reversed(self._nodes):
            if value in node.outputs:
                return node.name
        raise KeyError(f"no node outputs {value!r}")

    def set_output(self, kind: str, value: str) -> None:
        if kind not in OUTPUT_KINDS and not kind.startswith("output:"):
            raise ValueError(f"unknown output kind {kind!r}; known: {sorted(OUTPUT_KINDS)} or 'output:<name>'")
        self._outputs[kind] = value

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self._outputs)

    def build(self) -> Graph:
        graph = Graph(tuple(self._inputs), tuple(self._nodes), dict(self._outputs))
        Graph.from_dict(graph.to_dict(), set(self.tensors))  # fail at export, not at load
        return graph
