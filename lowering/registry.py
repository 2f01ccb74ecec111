"""Op registry: one JAX rule per (op, version), with the node shape it accepts.

Rules register right beside their definition with :func:`register_rule`,
declaring their attributes (:class:`Attr`: type, range or choices, default or
required), their output count and, when the signature does not say it, their
input count. A rule takes the :class:`~mlejax.format.graph.Node` and its input
arrays and returns one array or a tuple of arrays (one per node output).

The declaration is both the load-time check and what the rule reads: a rule
is called with a node whose ``attrs`` hold exactly the declared attributes
(defaults filled in), and reading an undeclared one raises
:class:`UndeclaredAttributeError`. So the check cannot drift from the rule.
:func:`check_graph` validates every node of a graph at load.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import os
import pkgutil
from typing import Any, Callable, Mapping, Sequence

from ..format.errors import MLEError, MLEFormatError, UnsupportedModelError
from ..format.graph import Graph, Node

__all__ = [
    "ABSENT", "Attr", "OpSpec", "Rule", "REQUIRED", "UndeclaredAttributeError", "register_rule", "get_rule", "check_graph",
    "check_supported", "registered_ops", "row_budget", "shape_spec_elements",
]

Rule = Callable[..., object]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Default of an attribute the node must give.
REQUIRED: Any = _Sentinel("REQUIRED")
#: Default of an optional attribute left out of the rule's mapping when absent (the rule reads it with ``.get``).
ABSENT: Any = _Sentinel("ABSENT")

#: Ints in attributes are bounded to this range unless an Attr says otherwise (no OverflowError downstream).
INT_LIMIT = 2**31 - 1


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_dim(v: Any) -> bool:
    """A shape-spec entry: an int, ``"B"`` or ``"B*k"`` (k a positive int)."""
    if _is_int(v):
        return True
    if not isinstance(v, str) or not v.startswith("B"):
        return False
    return v == "B" or (v[1:2] == "*" and v[2:].isdigit() and 0 < len(v) - 2 <= 9 and int(v[2:]) > 0)


#: kind name -> (check, description, scalar elements of a valid value for range checks)
_KINDS: dict[str, tuple[Callable[[Any], bool], str, Callable[[Any], list]]] = {
    "int": (_is_int, "an int", lambda v: [v]),
    "number": (_is_num, "a number", lambda v: [v]),
    "number_or_nan": (lambda v: v == "nan" or _is_num(v), 'a number or "nan"', lambda v: []),
    "bool": (lambda v: isinstance(v, bool) or v in (0, 1) and _is_int(v), "a bool", lambda v: []),
    "str": (lambda v: isinstance(v, str), "a string", lambda v: []),
    "ints": (lambda v: isinstance(v, list) and all(map(_is_int, v)), "a list of ints", lambda v: v),
    "numbers": (lambda v: isinstance(v, list) and all(map(_is_num, v)), "a list of numbers", lambda v: v),
    "opt_ints": (
        lambda v: isinstance(v, list) and all(i is None or _is_int(i) for i in v), "a list of ints or nulls",
        lambda v: [i for i in v if i is not None],
    ),
    "int_lists": (
        lambda v: isinstance(v, list) and all(isinstance(p, list) and all(map(_is_int, p)) for p in v),
        "a list of int lists", lambda v: [i for p in v for i in p],
    ),
    "int_pairs": (
        lambda v: isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 and all(map(_is_int, p)) for p in v),
        "a list of [int, int] pairs", lambda v: [i for p in v for i in p],
    ),
    "shape": (
        lambda v: isinstance(v, list) and len(v) <= 16 and all(map(_is_dim, v)),
        "a shape spec (at most 16 entries, each an int, 'B' or 'B*k')", lambda v: [d for d in v if _is_int(d)],
    ),
}


@dataclasses.dataclass(frozen=True)
class Attr:
    """One declared node attribute.

    ``kind``: ``int``, ``number``, ``number_or_nan``, ``bool``, ``str``, ``ints``, ``numbers``,
    ``opt_ints``, ``int_lists``, ``int_pairs`` or ``shape`` (see :data:`_KINDS`);
    ``default``: :data:`REQUIRED`, :data:`ABSENT` or the value used when the
    node omits it; ``choices``: the allowed values; ``lo``/``hi``: inclusive
    bounds on a number or on every int of a list (ints default to
    ±:data:`INT_LIMIT`); ``nullable``: ``None`` is allowed too;
    ``length``: exact list length.
    """

    kind: str
    default: Any = REQUIRED
    choices: tuple | None = None
    lo: float | None = None
    hi: float | None = None
    nullable: bool = False
    length: int | None = None

    def check(self, value: Any) -> str | None:
        """``None`` if ``value`` is valid, else what was expected."""
        if value is None and self.nullable:
            return None
        ok, what, scalars = _KINDS[self.kind]
        expected = what + (" or null" if self.nullable else "")
        if self.choices is not None:
            return None if ok(value) and value in self.choices else f"one of {list(self.choices)}"
        if not ok(value):
            return expected
        if self.length is not None and len(value) != self.length:
            return f"{expected} of length {self.length}"
        bounded = self.kind not in ("number", "numbers")  # ints are always bounded
        lo = self.lo if self.lo is not None else -INT_LIMIT if bounded else None
        hi = self.hi if self.hi is not None else INT_LIMIT if bounded else None
        for v in scalars(value):
            if (lo is not None and not v >= lo) or (hi is not None and not v <= hi):
                return f"{expected} in [{lo}, {hi}]"
        return None


class UndeclaredAttributeError(LookupError):
    """A rule read an attribute its :func:`register_rule` declaration does not list (a bug in the rule)."""


class _Attrs(dict):
    """The validated attributes of a node: reading an undeclared name is a programming error."""

    def __init__(self, values: Mapping[str, Any], declared: Mapping[str, Attr], op: str) -> None:
        super().__init__(values)
        self._declared, self._op = declared, op

    def _undeclared(self, key: str) -> UndeclaredAttributeError:
        return UndeclaredAttributeError(f"rule for op {self._op!r} read attribute {key!r}, which it does not declare")

    def __getitem__(self, key: str) -> Any:
        if key not in self._declared:
            raise self._undeclared(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._declared:
            raise self._undeclared(key)
        return super().get(key, default)


@dataclasses.dataclass
class OpSpec:
    """A rule and its declaration: attributes, input and output counts, and an extra node check.

    Calling it validates the node (:meth:`validate`) and runs the rule on it.
    """

    op: str
    version: int
    fn: Rule
    attrs: Mapping[str, Attr]
    inputs: tuple[int, float]
    outputs: int | Callable[[Mapping[str, Any]], int]
    check: Callable[[Node, Sequence[tuple | None], int], None] | None

    @property
    def prepare(self) -> Callable | None:
        """The rule's ``prepare(node, host)`` hook, if it has one (see :mod:`.program`)."""
        prepare = getattr(self.fn, "prepare", None)
        return None if prepare is None else lambda node, host: prepare(self.validate(node), host)

    def validate(self, node: Node, shapes: Sequence[tuple | None] | None = None, budget: int = 0) -> Node:
        """``node`` with its attributes checked and defaults filled; MLEFormatError naming node and attribute.

        ``shapes``: the shape of each input that is a stored tensor (``None``
        for the others); when given, the op's extra ``check`` runs too, with
        ``budget``, the most elements per batch row a node may produce.
        """
        where = f"node {node.name!r} (op {node.op})"
        values: dict[str, Any] = {}
        for name, attr in self.attrs.items():
            if name not in node.attrs:
                if attr.default is REQUIRED:
                    raise MLEFormatError(f"{where}: attribute {name!r} is required")
                if attr.default is not ABSENT:
                    values[name] = attr.default
                continue
            value = node.attrs[name]
            problem = attr.check(value)
            if problem is not None:
                raise MLEFormatError(f"{where}: attribute {name!r}: expected {problem}, found {_short(value)}")
            values[name] = value
        lo, hi = self.inputs
        if not lo <= len(node.inputs) <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi != math.inf else f"at least {lo}"
            raise MLEFormatError(f"{where}: expected {want} inputs, found {len(node.inputs)}")
        n_out = self.outputs(values) if callable(self.outputs) else self.outputs
        if not 1 <= len(node.outputs) <= n_out:
            raise MLEFormatError(f"{where}: expected 1 to {n_out} outputs, found {len(node.outputs)}")
        checked = dataclasses.replace(node, attrs=_Attrs(values, self.attrs, node.op))
        if shapes is not None and self.check is not None:
            try:
                self.check(checked, shapes, budget)
            except ValueError as e:
                raise MLEFormatError(f"{where}: {e}") from None
        return checked

    def __call__(self, node: Node, *inputs: Any) -> object:
        """Run the rule; an error tracing it on these inputs (shapes the file got wrong) is an MLEFormatError."""
        checked = self.validate(node)
        try:
            return self.fn(checked, *inputs)
        except MLEError:
            raise
        except (TypeError, ValueError, IndexError, KeyError, NotImplementedError, OverflowError, ZeroDivisionError) as e:
            shapes = [getattr(x, "shape", None) for x in inputs]
            raise MLEFormatError(
                f"node {node.name!r} (op {node.op}) cannot run on inputs of shapes {shapes}: {type(e).__name__}: {e}"
            ) from e


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _arity(fn: Rule) -> tuple[int, float]:
    """(min, max) number of inputs from the rule's signature (after ``node``)."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return sum(p.default is p.empty and p.kind is not p.VAR_POSITIONAL for p in params), math.inf
    return sum(p.default is p.empty for p in params), len(params)


_RULES: dict[tuple[str, int], OpSpec] = {}


def register_rule(
    op: str,
    version: int = 1,
    *,
    attrs: Mapping[str, Attr] | None = None,
    inputs: tuple[int, float] | None = None,
    outputs: int | Callable[[Mapping[str, Any]], int] = 1,
    check: Callable[[Node, Sequence[tuple | None], int], None] | None = None,
) -> Callable[[Rule], Rule]:
    """Decorator registering ``rule`` as the lowering of ``op`` at ``version``.

    Args:
      attrs: the attributes the rule reads, by name.
      inputs: ``(min, max)`` input count (``math.inf``: any); default: from the
        rule's signature (parameters after ``node``; defaults are optional
        inputs, ``*args`` any number).
      outputs: the most outputs a node may name (int, or a function of the
        validated attributes).
      check: ``check(node, shapes, budget)`` raising ValueError for a node the
        rule cannot run within bounds; ``shapes`` holds each input's
        stored-tensor shape (``None`` for computed values), ``budget`` the most
        elements per batch row a node may produce (:func:`check_graph`).
    """

    def deco(rule: Rule) -> Rule:
        key = (op, version)
        if key in _RULES:
            raise ValueError(f"a rule for op {op!r} version {version} is already registered")
        _RULES[key] = OpSpec(op, version, rule, dict(attrs or {}), inputs or _arity(rule), outputs, check)
        return rule

    return deco


def registered_ops() -> dict[str, list[int]]:
    """Every known op with its supported versions."""
    _load_rules()
    ops: dict[str, list[int]] = {}
    for op, version in sorted(_RULES):
        ops.setdefault(op, []).append(version)
    return ops


def get_rule(node: Node) -> OpSpec:
    """The rule for ``node``; :class:`UnsupportedModelError` names node, op and known ops."""
    _load_rules()
    rule = _RULES.get((node.op, node.version))
    if rule is None:
        known = registered_ops()
        if node.op in known:
            raise UnsupportedModelError(
                f"node {node.name!r}: op {node.op!r} version {node.version} is not supported by this "
                f"mlejax (supported versions: {known[node.op]}); upgrade mlejax to load this file"
            )
        raise UnsupportedModelError(
            f"node {node.name!r}: unknown op {node.op!r}; known ops: {', '.join(sorted(known))}"
        )
    return rule


def check_supported(graph: Graph) -> None:
    """Raise :class:`UnsupportedModelError` if any node's op/version has no rule."""
    for node in graph.nodes:
        get_rule(node)


def check_graph(graph: Graph, tensors: Mapping[str, Any]) -> None:
    """Check every node against its rule's declaration (:class:`OpSpec`); raise MLE errors.

    ``tensors``: the stored tensors (anything with ``.shape`` and ``.size``),
    whose shapes the ops' extra checks compare attributes with. A node may
    produce at most :func:`row_budget` elements per batch row. One pass.
    """
    budget = row_budget(graph, tensors)
    for node in graph.nodes:
        shapes = [tuple(tensors[name].shape) if name in tensors else None for name in node.inputs]
        get_rule(node).validate(node, shapes, budget)


#: Elements per row any model may produce, however small its file.
MIN_ROW_BUDGET = 1 << 22
#: Elements per row a node may produce, per element of the graph inputs' rows and the stored tensors.
ROW_BUDGET_FACTOR = 64


def row_budget(graph: Graph, tensors: Mapping[str, Any]) -> int:
    """The most elements per batch row a node may produce (shape specs, tiles, pads):
    ``max(MIN_ROW_BUDGET, ROW_BUDGET_FACTOR * (input elements per row + stored elements))``."""
    per_row = sum(math.prod(1 if s is None else s for s in v.shape[1:]) for v in graph.inputs)  # a variable length counts 1
    stored = sum(int(t.size) for t in tensors.values())
    return max(MIN_ROW_BUDGET, ROW_BUDGET_FACTOR * (per_row + stored))


def shape_spec_elements(spec: Sequence[Any]) -> int:
    """Elements per batch row of a shape spec: the product of its ints and of each ``k`` of ``"B*k"``."""
    total = 1
    for d in spec:
        total *= d if _is_int(d) else int(d[2:]) if d != "B" else 1
    return total


_loaded = False


def _load_rules() -> None:
    """Import every ``ops_*`` module of this package; each registers its rules on import."""
    global _loaded
    if not _loaded:
        _loaded = True
        for info in pkgutil.iter_modules([os.path.dirname(__file__)]):
            if info.name.startswith("ops_"):
                importlib.import_module(f"{__package__}.{info.name}")
