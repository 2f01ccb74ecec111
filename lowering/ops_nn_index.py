"""Shape ops with sizes read from graph inputs, and advanced indexing.

``ops_nn``'s shape specs know one symbolic size, the batch. Text models have a
second one, the sequence length, and sizes built from both (``B*S`` after
folding batch and time together, ``S - 1``, ``max(S, 1)``). The ``Sym*`` ops
below take their sizes as *size expressions* over dimensions of reference
inputs, resolved when the graph is traced (shapes are static under ``jit``).

Size expressions
----------------
A ``shape`` attr is a comma-separated list of expressions (``"d0,d1,32"``);
``start``/``stop``/``length`` attrs are one expression. Grammar::

    expr   := term (("+" | "-") term)*
    term   := factor (("*" | "//" | "%") factor)*
    factor := INT | "d" INT | ("max" | "min") "(" expr "," expr ")" | "(" expr ")" | "-" factor

``d<i>`` is ``refs[dims[i][0]].shape[dims[i][1]]`` (attr ``dims``: a list of
``[ref position, axis]`` pairs; ref position 0 is the first ref input).
``//`` and ``%`` are Python's floor division and modulo. At most 1,000
characters and 16 dims.

Op table (version 1)
--------------------
  SymReshape(x, *refs) attrs shape, dims: ``x.reshape(shape)`` (``-1`` infers).
  SymBroadcast(x, *refs) attrs shape, dims: numpy broadcasting of ``x`` to shape
      (a one-element ``x`` counts as a scalar).
  SymArange(*refs) attrs start (expr), step (number), length (expr), dtype:
      ``start + step * [0, 1, ..., length - 1]`` (torch ``arange`` with its
      length, ``ceil((end - start) / step)``, computed by the exporter).
  SymSlice(x, *refs) attrs axis, start (expr), stop (expr or ""), step (int >= 1):
      ``x[start:stop:step]`` on ``axis``, Python semantics (negative from the
      end, clamped); an empty ``stop`` runs to the end.
  AdvancedIndex(x, *indices) attr axes (one per index, increasing): numpy /
      torch advanced indexing ``x[..., i0, ..., i1, ...]`` with integer index
      arrays at ``axes`` and full slices elsewhere. The index arrays broadcast
      together; their result dims replace the indexed axes in place when
      those are adjacent, else go first (numpy's rule, which torch follows).
      Negative indices count from the end; out-of-range ones are clamped.
  GatherElements(x, index) attr axis: ``torch.gather`` /
      ``jnp.take_along_axis`` (index has x's rank); out of range is clamped.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import jax.numpy as jnp
from jax import lax

from ..format.graph import Node
from .registry import Attr, register_rule

__all__ = ["parse_sizes", "eval_size"]

_TOKEN = re.compile(r"\s*(?:(\d+)|d(\d+)|(max|min)|(//|[-+*(),%]))")
_MAX_CHARS = 1000

_DIMS = {"dims": Attr("int_pairs", [], lo=0, hi=63)}
_DTYPES = ("int32", "int64", "float32", "bool")


def _tokens(text: str) -> list[tuple[str, Any]]:
    if len(text) > _MAX_CHARS:
        raise ValueError(f"size expression longer than {_MAX_CHARS} characters")
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"bad size expression {text!r} at {pos}: expected an int, d<i>, max, min or an operator")
        num, dim, fn, sym = m.groups()
        out.append(("int", int(num)) if num else ("dim", int(dim)) if dim else ("fn", fn) if fn else ("op", sym))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over :func:`_tokens`; builds nested tuples ``(op, a, b)``, ints and ``("d", i)``."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str, value: Any = None) -> Any:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            raise ValueError(f"bad size expression: expected {value or kind}, found {tok[1] if tok else 'the end'}")
        self.i += 1
        return tok[1]

    def expr(self) -> Any:
        self.depth += 1
        if self.depth > 64:
            raise ValueError("size expression nested too deeply")
        node = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            node = (self.take("op"), node, self.term())
        self.depth -= 1
        return node

    def term(self) -> Any:
        node = self.factor()
        while self.peek() in (("op", "*"), ("op", "//"), ("op", "%")):
            node = (self.take("op"), node, self.factor())
        return node

    def factor(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise ValueError("bad size expression: it ends early")
        kind, value = tok
        if kind == "int":
            self.i += 1
            return value
        if kind == "dim":
            self.i += 1
            return ("d", value)
        if kind == "fn":
            self.i += 1
            self.take("op", "(")
            a = self.expr()
            self.take("op", ",")
            b = self.expr()
            self.take("op", ")")
            return (value, a, b)
        if tok == ("op", "("):
            self.i += 1
            node = self.expr()
            self.take("op", ")")
            return node
        if tok == ("op", "-"):
            self.i += 1
            return ("-", 0, self.factor())
        raise ValueError(f"bad size expression: unexpected {value!r}")


def parse_sizes(text: str, n_dims: int, many: bool = True) -> list:
    """Parse a size expression (``many``: a comma-separated list of them); every ``d<i>`` must be < ``n_dims``."""
    p = _Parser(text)
    out = [p.expr()] if p.peek() is not None or not many else []
    while many and p.peek() == ("op", ","):
        p.i += 1
        out.append(p.expr())
    if p.peek() is not None or not out:
        raise ValueError(f"bad size expression {text!r}")
    for tok in p.toks:
        if tok[0] == "dim" and tok[1] >= n_dims:
            raise ValueError(f"size expression {text!r} names d{tok[1]}, but only {n_dims} dims are given")
    return out


_OPS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "//": lambda a, b: a // b, "%": lambda a, b: a % b, "max": max, "min": min,
}


def eval_size(tree: Any, dims: Sequence[int]) -> int:
    """Value of a parsed size expression with ``d<i>`` = ``dims[i]``."""
    if isinstance(tree, int):
        return tree
    if tree[0] == "d":
        return int(dims[tree[1]])
    a, b = eval_size(tree[1], dims), eval_size(tree[2], dims)
    if tree[0] in ("//", "%") and b == 0:
        raise ValueError("size expression divides by zero")
    return int(_OPS[tree[0]](a, b))


def _dim_values(node: Node, refs: Sequence[Any]) -> list[int]:
    out = []
    for pos, axis in node.attrs["dims"]:
        if pos >= len(refs) or axis >= refs[pos].ndim:
            raise ValueError(f"{node.op} {node.name!r}: dims entry [{pos}, {axis}] names no ref input dimension")
        out.append(refs[pos].shape[axis])
    return out


def _sizes(node: Node, refs: Sequence[Any], attr: str = "shape", many: bool = True) -> list[int]:
    dims = _dim_values(node, refs)
    return [eval_size(t, dims) for t in parse_sizes(node.attrs[attr], len(node.attrs["dims"]), many)]


def _check_exprs(*attrs: str):
    """A load-time check that each named attr parses (``shape`` as a list, others as one expression)."""

    def check(node: Node, shapes: Sequence[tuple | None], budget: int) -> None:
        for a in attrs:
            if node.attrs.get(a, ""):
                parse_sizes(node.attrs[a], len(node.attrs["dims"]), many=a == "shape")

    return check


_SHAPE = {"shape": Attr("str"), **_DIMS}


@register_rule("SymReshape", attrs=_SHAPE, check=_check_exprs("shape"))
def _sym_reshape(node: Node, x, *refs):
    """``x.reshape`` to sizes computed from the refs' dimensions (see the module docstring)."""
    return x.reshape(_sizes(node, refs))


@register_rule("SymBroadcast", attrs=_SHAPE, check=_check_exprs("shape"))
def _sym_broadcast(node: Node, x, *refs):
    """numpy broadcasting of ``x`` to computed sizes; a one-element ``x`` counts as a scalar."""
    if x.size == 1:
        x = x.reshape(())
    return jnp.broadcast_to(x, _sizes(node, refs))


@register_rule(
    "SymArange",
    attrs={"start": Attr("str"), "step": Attr("number", 1), "length": Attr("str"), "dtype": Attr("str", "int32", choices=_DTYPES), **_DIMS},
    check=_check_exprs("start", "length"),
)
def _sym_arange(node: Node, *refs):
    """``start + step * arange(length)`` with ``start`` and ``length`` computed from the refs."""
    (start,) = _sizes(node, refs, "start", many=False)
    (length,) = _sizes(node, refs, "length", many=False)
    step = node.attrs["step"]
    dtype = node.attrs["dtype"]
    iota = lax.iota(jnp.int32 if dtype != "float32" else jnp.float32, max(length, 0))
    return (start + step * iota).astype(dtype)


@register_rule(
    "SymSlice",
    attrs={"axis": Attr("int", lo=-64, hi=63), "start": Attr("str"), "stop": Attr("str", ""), "step": Attr("int", 1, lo=1), **_DIMS},
    check=_check_exprs("start", "stop"),
)
def _sym_slice(node: Node, x, *refs):
    """``x[start:stop:step]`` along ``axis`` with computed bounds (Python semantics)."""
    (start,) = _sizes(node, refs, "start", many=False)
    stop = _sizes(node, refs, "stop", many=False)[0] if node.attrs["stop"] else None
    index = [slice(None)] * x.ndim
    index[node.attrs["axis"] % x.ndim] = slice(start, stop, node.attrs["step"])
    return x[tuple(index)]


@register_rule("AdvancedIndex", attrs={"axes": Attr("ints", lo=0, hi=63)})
def _advanced_index(node: Node, x, *indices):
    """numpy/torch advanced indexing with integer arrays at ``axes`` (see the module docstring)."""
    axes = node.attrs["axes"]
    if len(axes) != len(indices) or list(axes) != sorted(set(axes)) or (axes and axes[-1] >= x.ndim):
        raise ValueError(f"AdvancedIndex {node.name!r}: axes {axes} must be increasing axes of x, one per index ({len(indices)})")
    index: list[Any] = [slice(None)] * x.ndim
    for axis, i in zip(axes, indices):
        index[axis] = i.astype(jnp.int32)
    return x.at[tuple(index)].get(mode="clip")


@register_rule("GatherElements", attrs={"axis": Attr("int", lo=-64, hi=63)})
def _gather_elements(node: Node, x, index):
    """``torch.gather(x, axis, index)``: ``jnp.take_along_axis``, out of range clamped."""
    return jnp.take_along_axis(x, index.astype(jnp.int32), axis=node.attrs["axis"], mode="clip")
