"""PyTorch ``nn.Module`` → Graph IR, through ``torch.export``.

The module (in eval mode) is captured with ``torch.export.export`` with one
shared symbolic batch dimension for every input, decomposed to core ATen
(recurrent layers and attention kept whole), and each ATen node is mapped to
the ops of ``lowering/ops_nn.py`` / ``ops_core.py``. Parameters, buffers and
constants become stored tensors; nodes whose inputs are all constants (a
transposed weight, an arange) are evaluated once at export time. Shapes that
mention the batch are written as shape specs (``"B"``, ``"B*k"``), so the
file runs at any batch size. Graph inputs keep the names of ``forward``'s
arguments; the first output is ``output`` (``predict``), further ones
``output:<index or dict key>``.

Variable lengths: ``None`` in ``input_shape`` past the batch axis (e.g.
``[(None, None), (None, None)]`` for token ids and their attention mask, with
``sample_input`` giving the traced length) exports those axes symbolic too
(``Dim.DYNAMIC``). Sizes built from them (``B*L``, ``L-1``) become size
expressions of the ``Sym*`` ops of ``lowering/ops_nn_index.py``; the graph
input gets ``None`` there and ``metadata["sequence"]`` records each axis' max
length (torch.export's inferred range), which axes must be equal, which
output axes follow a length, and whether zero-padding the lengths is exact
(checked by running the module on the sample cut to half length, with and
without padding back). The runtime buckets lengths only where it is
(``lowering/seq_buckets.py``).

An ATen op without a mapping raises :class:`UnsupportedModelError` naming the
op and the module path it came from.
"""

from __future__ import annotations

import inspect
import math
import operator
import warnings
from typing import Any, Callable

import numpy as np

from ..format.errors import InputError, UnsupportedModelError
from ._nn_common import NetworkInputs, build_network_inputs, input_count, network_outputs, positional_names
from ._nn_fold import fold_batch_norm
from .registry import ExportContext, register_converter

__all__ = ["convert_torch_module", "supported_ops"]

#: trace batch size: not 0 or 1, which torch.export would specialise on.
_TRACE_BATCH = 3


class _Const:
    """A value known at export time (a torch tensor or Python scalar)."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _Converter:
    """Walks one ``ExportedProgram`` graph and emits IR nodes."""

    def __init__(self, ep: Any, ctx: ExportContext, inputs: NetworkInputs) -> None:
        import torch
        import sympy

        self.torch = torch
        self.ep = ep
        self.b = ctx.builder
        self.ref = inputs[0]  # graph input that supplies the batch size to shape specs
        self.env: dict[Any, Any] = {}
        self.stored: dict[int, tuple[Any, str]] = {}
        sig = ep.graph_signature
        self.lifted = {
            **sig.inputs_to_parameters,
            **sig.inputs_to_buffers,
            **getattr(sig, "inputs_to_lifted_tensor_constants", {}),
        }
        self.state = {**ep.state_dict, **ep.constants}
        self.user_inputs = list(sig.user_inputs)
        self.input_names = list(inputs)
        #: sympy symbol -> (graph input name, axis) for each symbolic dimension of a graph input
        self.symbols: dict[Any, tuple[str, int]] = {}
        #: (graph input name, axis) -> its size (a sympy expression)
        self.input_sizes: dict[tuple[str, int], Any] = {}
        self.batch_symbol = sympy.Symbol("__no_batch__")
        for node in ep.graph.nodes:
            if node.op == "placeholder" and node.name in self.user_inputs:
                name = self.input_names[self.user_inputs.index(node.name)]
                for axis, size in enumerate(self.meta(node).shape):
                    expr = self.input_sizes[(name, axis)] = _expr(size)
                    if isinstance(expr, sympy.Symbol) and expr not in self.symbols:
                        self.symbols[expr] = (name, axis)
        for sym, (name, axis) in self.symbols.items():
            if name == self.ref and axis == 0:
                self.batch_symbol = sym

    # --- values --------------------------------------------------------------------
    def value(self, v: Any, hint: str = "const", dtype: str | None = None) -> str:
        """The IR value name of ``v`` (a node result or constant, stored on first use)."""
        if isinstance(v, str):
            return v
        if isinstance(v, _Const):
            v = v.value
        t = self.torch
        if isinstance(v, t.Tensor):
            key = id(v)
            if key not in self.stored:  # the tensor is kept with its name, so its id stays unique
                arr = v.detach().cpu()
                if arr.dtype.is_floating_point:
                    arr = arr.float().numpy()
                elif arr.dtype == t.bool:
                    arr = arr.numpy()
                else:
                    arr = arr.to(t.int32).numpy()
                self.stored[key] = (v, self.b.tensor(hint, arr))
            return self.stored[key][1]
        if isinstance(v, (bool, int, float)):
            np_dtype = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}[dtype or ("bool" if isinstance(v, bool) else "float32")]
            return self.b.tensor(hint, np.asarray(v, np_dtype))
        raise UnsupportedModelError(f"cannot use {type(v).__name__} {v!r} as a tensor")

    def dim(self, d: Any) -> int | str:
        """A shape entry: an int, or a spec string ``"B"``/``"B*k"`` for a size that depends on the batch."""
        if isinstance(d, int):
            return d
        if isinstance(d, _Const):
            return int(d.value)
        import sympy

        expr = sympy.expand(_expr(d))
        if expr.is_Integer:
            return int(expr)
        syms = expr.free_symbols
        if syms == {self.batch_symbol}:
            coeff = sympy.Poly(expr, self.batch_symbol)
            if coeff.degree() == 1 and coeff.coeff_monomial(1) == 0:
                k = int(coeff.coeff_monomial(self.batch_symbol))
                return "B" if k == 1 else f"B*{k}"
        raise UnsupportedModelError(f"shape entry {expr} is not an integer multiple of the batch size")

    def sym_sizes(self, sizes: Any) -> tuple[list[str] | None, list[str], list[list[int]]]:
        """Size expressions (``ops_nn_index``) for ``sizes``: (texts, ref input names, ``dims`` attr).

        ``texts`` is ``None`` when every entry is an int or a multiple of the batch
        (then the shape-spec ops of ``ops_nn`` serve).
        """
        try:
            [self.dim(s) for s in sizes]
            return None, [], []
        except UnsupportedModelError:
            pass
        refs: list[str] = []
        dims: list[list[int]] = []
        texts = [self.size_text(s, refs, dims) for s in sizes]
        return texts, refs, dims

    def size_text(self, d: Any, refs: list[str], dims: list[list[int]]) -> str:
        """One size as a size-expression string, registering the input dimensions it reads in ``refs``/``dims``."""
        import sympy
        from torch.utils._sympy.functions import FloorDiv, Mod, PythonMod

        def text(e: Any) -> str:
            if e.is_Integer:
                return str(int(e))
            if e.is_Symbol:
                if e not in self.symbols:
                    raise UnsupportedModelError(f"size {e} is not a dimension of a graph input")
                name, axis = self.symbols[e]
                if name not in refs:
                    refs.append(name)
                pair = [refs.index(name), axis]
                if pair not in dims:
                    dims.append(pair)
                return f"d{dims.index(pair)}"
            args = [text(a) for a in e.args]
            if isinstance(e, sympy.Add):
                return "(" + " + ".join(args) + ")"
            if isinstance(e, sympy.Mul) and not any(a.is_Rational and not a.is_Integer for a in e.args):
                return "(" + " * ".join(args) + ")"
            if isinstance(e, (sympy.Max, sympy.Min)):
                fn = "max" if isinstance(e, sympy.Max) else "min"
                out = args[0]
                for a in args[1:]:
                    out = f"{fn}({out}, {a})"
                return out
            if isinstance(e, FloorDiv):
                return f"({args[0]} // {args[1]})"
            if isinstance(e, (Mod, PythonMod)):
                return f"({args[0]} % {args[1]})"
            if isinstance(e, sympy.Pow) and e.args[1].is_Integer and 0 < int(e.args[1]) <= 8:
                return "(" + " * ".join([args[0]] * int(e.args[1])) + ")"
            raise UnsupportedModelError(f"size {e} ({type(e).__name__}) cannot be written as a size expression; "
                                        "sums, products, max, min, // and % of input dimensions can")

        if isinstance(d, int):
            return str(d)
        if isinstance(d, _Const):
            return str(int(d.value))
        return text(_expr(d))

    def sym_op(self, op: str, x: Any, sizes: Any, **attrs: Any) -> str | None:
        """``op`` (a ``Sym*`` op of ``ops_nn_index``) with ``shape`` from ``sizes``, or ``None`` if specs serve."""
        texts, refs, dims = self.sym_sizes(sizes)
        if texts is None:
            return None
        inputs = ([] if x is None else [x]) + refs
        return self.op(op, *inputs, shape=",".join(texts), dims=dims, **attrs)

    def shape_spec(self, sizes: Any) -> list:
        return [self.dim(self.resolve(s)) for s in sizes]

    def resolve(self, a: Any) -> Any:
        """Replace fx nodes by converted values, recursively in lists."""
        fx = self.torch.fx
        if isinstance(a, fx.Node):
            return self.env[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self.resolve(x) for x in a)
        return a

    @staticmethod
    def meta(node: Any) -> Any:
        return node.meta.get("val")

    # --- driving -------------------------------------------------------------------
    def run(self) -> list:
        user = iter(self.input_names)
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                if node.name in self.lifted:
                    self.env[node] = _Const(self.state[self.lifted[node.name]])
                else:
                    self.env[node] = next(user)
            elif node.op == "call_function":
                self.env[node] = self.call(node)
            elif node.op == "output":
                leaves = self.torch.utils._pytree.tree_leaves(node.args[0])
                return [self.value(self.env[n] if isinstance(n, self.torch.fx.Node) else _Const(n), "output") for n in leaves]
            else:
                raise UnsupportedModelError(f"unsupported graph node kind {node.op!r} ({node.name})")
        raise UnsupportedModelError("the exported graph has no output")

    def call(self, node: Any) -> Any:
        target = node.target
        args = self.resolve(node.args)
        kwargs = self.resolve(node.kwargs)
        if target is operator.getitem:
            seq, i = args
            return _Const(seq.value[i]) if isinstance(seq, _Const) else seq[i]
        if target in _SYM_OPS:  # arithmetic on symbolic sizes
            return self.meta(node)
        name = _op_name(target)
        if name == "sym_size":
            return self.meta(node)
        if _all_const(args, kwargs):
            return _Const(target(*_unwrap(args), **_unwrap(kwargs)))
        handler = _HANDLERS.get(name)
        if handler is None:
            raise UnsupportedModelError(
                f"PyTorch op aten.{name} (node {node.name!r} in module {_module_path(node)}) is not supported; "
                f"{len(_HANDLERS)} ATen ops are (mlejax.exporters.nn_torch.supported_ops())"
            )
        try:
            return handler(self, node, _bind(target, args, kwargs))
        except UnsupportedModelError as exc:
            raise UnsupportedModelError(f"node {node.name!r} (aten.{name}, module {_module_path(node)}): {exc}") from None

    # --- helpers for handlers --------------------------------------------------------
    def dtype_of(self, node: Any) -> str:
        t = self.torch
        dt = self.meta(node).dtype
        return "bool" if dt == t.bool else "float32" if dt.is_floating_point else "int32"

    def op(self, op: str, *inputs: Any, **attrs: Any) -> str:
        return self.b.op(op, *(self.value(i) for i in inputs), **attrs)


def _op_name(target: Any) -> str:
    schema = getattr(target, "_schema", None)
    if schema is None:
        return getattr(target, "__name__", str(target))
    return schema.name.split("::", 1)[-1]


def _bind(target: Any, args: tuple, kwargs: dict) -> dict:
    """Arguments by schema name, with defaults filled in."""
    out = {}
    for i, a in enumerate(target._schema.arguments):
        if i < len(args):
            out[a.name] = args[i]
        elif a.name in kwargs:
            out[a.name] = kwargs[a.name]
        elif a.has_default_value():
            out[a.name] = a.default_value
    return out


def _expr(d: Any) -> Any:
    """The sympy expression of a size (a SymInt, sympy expression or int)."""
    import sympy

    if isinstance(d, int):
        return sympy.Integer(d)
    return d.node.expr if hasattr(d, "node") else d


def _all_const(args: Any, kwargs: dict) -> bool:
    leaves = [*_leaves(args), *_leaves(list(kwargs.values()))]
    return all(not isinstance(x, str) and not _is_sym(x) for x in leaves)


def _leaves(a: Any) -> list:
    if isinstance(a, (list, tuple)):
        return [y for x in a for y in _leaves(x)]
    return [a]


def _is_sym(x: Any) -> bool:
    return type(x).__name__ in ("SymInt", "SymFloat", "SymBool")


def _unwrap(a: Any) -> Any:
    if isinstance(a, _Const):
        return a.value
    if isinstance(a, (list, tuple)):
        return type(a)(_unwrap(x) for x in a)
    if isinstance(a, dict):
        return {k: _unwrap(v) for k, v in a.items()}
    return a


def _module_path(node: Any) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "<top>"
    path, cls = list(stack.values())[-1]
    cls_name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
    return f"{path or '<top>'} ({cls_name.rsplit('.', 1)[-1]})"


_SYM_OPS = {operator.mul, operator.add, operator.sub, operator.floordiv, operator.neg}

# --- handlers: (converter, node, bound args) -> value --------------------------------

_HANDLERS: dict[str, Callable] = {}


def _handles(*names: str):
    def deco(fn: Callable) -> Callable:
        for n in names:
            _HANDLERS[n] = fn
        return fn

    return deco


def _ints(v: Any, n: int) -> list[int]:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return [int(x) for x in (v * n if len(v) == 1 else v)]


@_handles("convolution")
def _convolution(c: _Converter, node, a):
    rank = c.meta(node).dim() - 2
    pad = [[p, p] for p in _ints(a["padding"], rank)]
    common = dict(strides=_ints(a["stride"], rank), padding=pad, dilation=_ints(a["dilation"], rank), groups=int(a["groups"]), layout="channels_first")
    inputs = [a["input"], a["weight"]] + ([a["bias"]] if a["bias"] is not None else [])
    if a["transposed"]:
        return c.op("ConvTranspose", *inputs, output_padding=_ints(a["output_padding"], rank), **common)
    return c.op("Conv", *inputs, **common)


@_handles("_native_batch_norm_legit_no_training")
def _batch_norm(c: _Converter, node, a):
    mean, var = a["running_mean"], a["running_var"]
    scale = a["weight"] if a["weight"] is not None else _Const(c.torch.ones_like(mean.value))
    inputs = [a["input"], mean, var, scale] + ([a["bias"]] if a["bias"] is not None else [])
    y = c.op("BatchNorm", *inputs, eps=float(a["eps"]), axis=1)
    return (y, None, None)


@_handles("native_layer_norm")
def _layer_norm(c: _Converter, node, a):
    n = len(a["normalized_shape"])
    scale = a["weight"] if a["weight"] is not None else (_Const(c.torch.ones(tuple(a["normalized_shape"]))) if a["bias"] is not None else None)
    inputs = [a["input"]] + ([scale] if scale is not None else []) + ([a["bias"]] if a["bias"] is not None else [])
    y = c.op("LayerNorm", *inputs, axes=list(range(-n, 0)), eps=float(a["eps"]))
    return (y, None, None)


@_handles("native_group_norm")
def _group_norm(c: _Converter, node, a):
    channels = c.meta(node)[0].shape[1]
    scale = a["weight"] if a["weight"] is not None else (_Const(c.torch.ones(int(channels))) if a["bias"] is not None else None)
    inputs = [a["input"]] + ([scale] if scale is not None else []) + ([a["bias"]] if a["bias"] is not None else [])
    y = c.op("GroupNorm", *inputs, groups=int(a["group"]), eps=float(a["eps"]), layout="channels_first")
    return (y, None, None)


def _pool_attrs(a: dict, rank: int) -> dict:
    kernel = _ints(a["kernel_size"], rank)
    stride = _ints(a["stride"], rank) if a["stride"] else kernel
    return dict(kernel=kernel, strides=stride, padding=[[p, p] for p in _ints(a["padding"], rank)], ceil_mode=bool(a["ceil_mode"]), layout="channels_first")


@_handles("max_pool2d_with_indices", "max_pool3d_with_indices", "max_pool1d_with_indices")
def _max_pool(c: _Converter, node, a):
    rank = c.meta(node)[0].dim() - 2
    y = c.op("MaxPool", a["self"], dilation=_ints(a["dilation"], rank), **_pool_attrs(a, rank))
    return (y, None)


@_handles("max_pool2d", "max_pool1d", "max_pool3d")
def _max_pool_plain(c: _Converter, node, a):
    rank = c.meta(node).dim() - 2
    return c.op("MaxPool", a["self"], dilation=_ints(a["dilation"], rank), **_pool_attrs(a, rank))


@_handles("avg_pool1d", "avg_pool2d", "avg_pool3d")
def _avg_pool(c: _Converter, node, a):
    rank = c.meta(node).dim() - 2
    return c.op(
        "AvgPool", a["self"], count_include_pad=bool(a["count_include_pad"]),
        divisor_override=a.get("divisor_override"), **_pool_attrs(a, rank),
    )


@_handles("_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_avg_pool1d", "_adaptive_avg_pool1d")
def _adaptive_avg(c: _Converter, node, a):
    return c.op("AdaptiveAvgPool", a["self"], output_size=[int(s) for s in a["output_size"]], layout="channels_first")


@_handles("adaptive_max_pool2d", "adaptive_max_pool1d", "adaptive_max_pool3d")
def _adaptive_max(c: _Converter, node, a):
    return (c.op("AdaptiveMaxPool", a["self"], output_size=[int(s) for s in a["output_size"]], layout="channels_first"), None)


_UNARY = {
    "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs",
    "neg": "Neg", "rsqrt": "Rsqrt", "erf": "Erf", "silu": "Silu", "mish": "Mish", "hardswish": "HardSwish",
    "hardsigmoid": "HardSigmoid", "floor": "Floor", "ceil": "Ceil", "round": "Round", "sign": "Sign", "sin": "Sin",
    "cos": "Cos", "reciprocal": "Reciprocal", "log1p": "Log1p", "expm1": "Expm1", "logical_not": "Not",
    "isnan": "IsNaN", "isinf": "IsInf", "log_sigmoid_forward": "LogSigmoid", "relu6": "Relu6", "selu": "Selu",
}


def _unary(op: str):
    def handler(c: _Converter, node, a):
        x = a["self"]
        y = c.op(op, x)
        return (y, None) if isinstance(c.meta(node), (tuple, list)) else y

    return handler


for _aten, _ir in _UNARY.items():
    _HANDLERS[_aten] = _unary(_ir)


@_handles("leaky_relu")
def _leaky_relu(c: _Converter, node, a):
    return c.op("LeakyRelu", a["self"], alpha=float(a["negative_slope"]))


@_handles("elu")
def _elu(c: _Converter, node, a):
    alpha, scale, input_scale = float(a["alpha"]), float(a["scale"]), float(a["input_scale"])
    x = a["self"] if input_scale == 1.0 else c.op("Mul", a["self"], c.value(input_scale))
    y = c.op("Elu", x, alpha=alpha)
    return y if scale == 1.0 else c.op("Mul", y, c.value(scale))


@_handles("gelu")
def _gelu(c: _Converter, node, a):
    return c.op("Gelu", a["self"], approximate=str(a["approximate"]))


@_handles("softplus")
def _softplus(c: _Converter, node, a):
    return c.op("Softplus", a["self"], beta=float(a["beta"]), threshold=float(a["threshold"]))


@_handles("hardtanh")
def _hardtanh(c: _Converter, node, a):
    return c.op("HardTanh", a["self"], min=float(a["min_val"]), max=float(a["max_val"]))


@_handles("clamp")
def _clamp(c: _Converter, node, a):
    lo, hi = a.get("min"), a.get("max")
    return c.op("Clip", a["self"], min=None if lo is None else float(lo), max=None if hi is None else float(hi))


@_handles("_softmax", "softmax")
def _softmax(c: _Converter, node, a):
    return c.op("Softmax", a["self"], axis=int(a["dim"]))


@_handles("_log_softmax", "log_softmax")
def _log_softmax(c: _Converter, node, a):
    return c.op("LogSoftmax", a["self"], axis=int(a["dim"]))


def _operand(c: _Converter, v: Any, like_node: Any) -> str:
    """A tensor operand; Python scalars take the dtype of the node's result."""
    if isinstance(v, (bool, int, float)):
        return c.value(v, dtype=c.dtype_of(like_node))
    return c.value(v)


def _binary(op: str):
    def handler(c: _Converter, node, a):
        x, y = a["self"], a["other"]
        alpha = a.get("alpha", 1)
        if alpha != 1:
            y = c.op("Mul", _operand(c, y, node), c.value(alpha, dtype=c.dtype_of(node)))
        return c.op(op, _operand(c, x, node), _operand(c, y, node))

    return handler


for _aten, _ir in {"add": "Add", "sub": "Sub", "mul": "Mul", "maximum": "Max", "minimum": "Min", "atan2": "Atan2", "fmod": "Rem"}.items():
    _HANDLERS[_aten] = _binary(_ir)


@_handles("rsub")
def _rsub(c: _Converter, node, a):
    other = a["other"] if a.get("alpha", 1) == 1 else c.op("Mul", _operand(c, a["other"], node), c.value(a["alpha"], dtype=c.dtype_of(node)))
    return c.op("Sub", _operand(c, other, node), _operand(c, a["self"], node))


@_handles("div")
def _div(c: _Converter, node, a):
    mode = a.get("rounding_mode")
    x, y = _operand(c, a["self"], node), _operand(c, a["other"], node)
    if mode is None:
        return c.op("Div", x, y)
    if mode == "floor":
        return c.op("FloorDiv", x, y)
    raise UnsupportedModelError("div with rounding_mode='trunc' is not supported")


@_handles("remainder")
def _remainder(c: _Converter, node, a):
    """Python's modulo (the sign of the divisor): ``x - floor(x / y) * y``."""
    x, y = _operand(c, a["self"], node), _operand(c, a["other"], node)
    return c.op("Sub", x, c.op("Mul", c.op("FloorDiv", x, y), y))


@_handles("pow")
def _pow(c: _Converter, node, a):
    base = a.get("self")
    exp = a["exponent"]
    if isinstance(exp, (int, float)) and float(exp).is_integer() and abs(exp) <= 64:
        return c.op("IntPow", base, exponent=int(exp))
    if exp == 0.5:
        return c.op("Sqrt", base)
    return c.op("Pow", _operand(c, base, node), _operand(c, exp, node))


for _aten, _direction in {"eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}.items():
    _HANDLERS[_aten] = lambda c, node, a, _d=_direction: c.op(
        "Compare", _operand(c, a["self"], node.args[0]), _operand(c, a["other"], node.args[0]), direction=_d
    )
for _aten, _ir in {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor", "bitwise_and": "And", "bitwise_or": "Or", "bitwise_xor": "Xor"}.items():
    _HANDLERS[_aten] = lambda c, node, a, _ir=_ir: _boolean(c, node, _ir, a["self"], a["other"])


@_handles("bitwise_not")
def _bitwise_not(c: _Converter, node, a):
    return _boolean(c, node, "Not", a["self"])


def _boolean(c: _Converter, node, op: str, *xs):
    """Logical ops; the bitwise ATen ops are accepted on booleans only."""
    if _op_name(node.target).startswith("bitwise") and c.dtype_of(node) != "bool":
        raise UnsupportedModelError("bitwise ops on integers are not supported; booleans are")
    return c.op(op, *xs)


@_handles("where")
def _where(c: _Converter, node, a):
    return c.op("Where", a["condition"], _operand(c, a["self"], node), _operand(c, a["other"], node))


@_handles("masked_fill")
def _masked_fill(c: _Converter, node, a):
    return c.op("Where", a["mask"], _operand(c, a["value"], node), a["self"])


@_handles("addmm")
def _addmm(c: _Converter, node, a):
    if a.get("beta", 1) != 1 or a.get("alpha", 1) != 1:
        raise UnsupportedModelError("addmm with alpha or beta other than 1 is not supported")
    return c.op("MatMulAdd", a["mat1"], a["mat2"], a["self"])


@_handles("mm", "bmm", "matmul")
def _mm(c: _Converter, node, a):
    return c.op("MatMul", a["self"], a.get("mat2", a.get("other")))


@_handles("view", "_unsafe_view", "reshape")
def _view(c: _Converter, node, a):
    sym = c.sym_op("SymReshape", a["self"], c.meta(node).shape)
    if sym is not None:
        return sym
    return c.op("ReshapeDims", a["self"], c.ref, shape=c.shape_spec(a.get("size", a.get("shape"))))


@_handles("expand")
def _expand(c: _Converter, node, a):
    sym = c.sym_op("SymBroadcast", a["self"], c.meta(node).shape)
    if sym is not None:
        return sym
    shape = [c.dim(s) for s in c.meta(node).shape]
    return c.op("BroadcastTo", a["self"], c.ref, shape=shape)


@_handles("permute")
def _permute(c: _Converter, node, a):
    return c.op("Transpose", a["self"], perm=[int(d) % len(a["dims"]) for d in a["dims"]])


@_handles("transpose")
def _transpose(c: _Converter, node, a):
    n = c.meta(node).dim()
    perm = list(range(n))
    i, j = int(a["dim0"]) % n, int(a["dim1"]) % n
    perm[i], perm[j] = perm[j], perm[i]
    return c.op("Transpose", a["self"], perm=perm)


@_handles("t")
def _t(c: _Converter, node, a):
    return c.op("Transpose", a["self"], perm=[1, 0]) if c.meta(node).dim() == 2 else c.value(a["self"])


@_handles("unsqueeze")
def _unsqueeze(c: _Converter, node, a):
    return c.op("Unsqueeze", a["self"], axes=[int(a["dim"]) % c.meta(node).dim()])


@_handles("squeeze")
def _squeeze(c: _Converter, node, a):
    in_shape = c.meta(node.args[0]).shape
    dims = a.get("dim", None)
    dims = range(len(in_shape)) if dims is None else ([dims] if isinstance(dims, int) else dims)
    axes = sorted({int(d) % len(in_shape) for d in dims if in_shape[int(d)] == 1 and isinstance(in_shape[int(d)], int)})
    return c.op("SqueezeAxes", a["self"], axes=axes) if axes else c.value(a["self"])


@_handles("flatten")
def _flatten(c: _Converter, node, a):
    return c.op("Flatten", a["self"], start=int(a["start_dim"]), end=int(a["end_dim"]))


@_handles("cat", "concat")
def _cat(c: _Converter, node, a):
    tensors = [t for t, m in zip(a["tensors"], node.args[0]) if c.meta(m).numel() != 0 or _is_sym(c.meta(m).numel())]
    return c.op("Concat", *tensors, axis=int(a["dim"]))


@_handles("split_with_sizes", "split")
def _split(c: _Converter, node, a):
    outs = c.meta(node)
    dim = int(a["dim"])
    sizes = [int(o.shape[dim]) for o in outs]
    return tuple(c.b.node("Split", [c.value(a["self"])], n_outputs=len(sizes), axis=dim, sizes=sizes))


@_handles("unbind")
def _unbind(c: _Converter, node, a):
    dim = int(a["dim"])
    n = c.meta(node.args[0]).shape[dim]
    return tuple(c.op("Index", a["self"], axis=dim, index=i) for i in range(int(n)))


@_handles("slice")
def _slice(c: _Converter, node, a):
    start, end, step = a["start"], a["end"], int(a["step"])
    try:
        end = None if end is None or (isinstance(end, int) and end >= 2**62) else c.dim(end)
        start = 0 if start is None else c.dim(start)
    except UnsupportedModelError:
        return _sym_slice(c, a)
    if isinstance(start, str) or isinstance(end, str):
        return _sym_slice(c, a)
    return c.op("Slice", a["self"], axes=[int(a["dim"])], starts=[start], stops=[end], steps=[step])


def _sym_slice(c: _Converter, a: dict) -> str:
    """``aten.slice`` with bounds that depend on input sizes: ``SymSlice``."""
    refs: list[str] = []
    dims: list[list[int]] = []
    end = a["end"]
    stop = "" if end is None or (isinstance(end, int) and end >= 2**62) else c.size_text(end, refs, dims)
    start = c.size_text(0 if a["start"] is None else a["start"], refs, dims)
    return c.op("SymSlice", a["self"], *refs, axis=int(a["dim"]), start=start, stop=stop, step=int(a["step"]), dims=dims)


@_handles("arange")
def _arange(c: _Converter, node, a):
    """``aten.arange`` whose bounds depend on input sizes (constant ones are evaluated at export)."""
    start = a.get("start", 0)
    step = a.get("step", 1)
    if _is_sym(step) or isinstance(step, str) or isinstance(start, str) or isinstance(a.get("end"), str):
        raise UnsupportedModelError("arange with a step that depends on input sizes, or bounds computed from tensor values, is not supported")
    refs: list[str] = []
    dims: list[list[int]] = []
    length = c.size_text(c.meta(node).shape[0], refs, dims)
    start_text = c.size_text(start, refs, dims) if not isinstance(start, float) else None
    if start_text is None or isinstance(step, float) and not float(step).is_integer() and c.dtype_of(node) != "float32":
        raise UnsupportedModelError("arange with a float start is not supported; integer starts are")
    return c.op("SymArange", *refs, start=start_text, step=step, length=length, dtype=c.dtype_of(node), dims=dims)


@_handles("gather")
def _gather(c: _Converter, node, a):
    if a.get("sparse_grad"):
        raise UnsupportedModelError("gather with sparse_grad is not supported")
    return c.op("GatherElements", a["self"], a["index"], axis=int(a["dim"]))


@_handles("index")
def _index_tensor(c: _Converter, node, a):
    """``aten.index.Tensor`` (advanced indexing) with integer index tensors; boolean masks are refused."""
    axes, indices = [], []
    for axis, (i, i_node) in enumerate(zip(a["indices"], node.args[1])):
        if i is None:
            continue
        if c.meta(i_node).dtype == c.torch.bool:
            raise UnsupportedModelError("indexing with a boolean mask is not supported (its result size depends on the values); "
                                        "use torch.where or integer indices")
        axes.append(axis)
        indices.append(i)
    return c.op("AdvancedIndex", a["self"], *indices, axes=axes)


def _reshape(c: _Converter, x: Any, sizes: list) -> str:
    """Reshape ``x`` to ``sizes`` (ints or SymInts): ``ReshapeDims`` when the batch is the only symbol, else ``SymReshape``."""
    sym = c.sym_op("SymReshape", x, sizes)
    return sym if sym is not None else c.op("ReshapeDims", x, c.ref, shape=[c.dim(d) for d in sizes])


@_handles("as_strided")
def _as_strided(c: _Converter, node, a):
    """``aten.as_strided`` where it is provably a view: its elements, read through (size, stride), are those of a
    contiguous input in some axis order (a reshape then a permutation), as in torch's AdaptiveAvgPool decomposition."""
    import sympy

    src = c.meta(node.args[0])
    size, stride = list(a["size"]), list(a["stride"])
    offset = a.get("storage_offset") or 0

    def eq(u: Any, v: Any) -> bool:
        return sympy.simplify(_expr(u) - _expr(v)) == 0

    def refuse(why: str) -> UnsupportedModelError:
        return UnsupportedModelError(
            "as_strided is supported only where it re-reads a contiguous tensor in another axis order "
            f"(storage offset 0, every element once); here {why}"
        )

    contiguous, step = True, sympy.Integer(1)
    for d, st in reversed(list(zip(src.shape, src.stride()))):
        if not eq(d, 1) and not eq(st, step):
            contiguous = False
        step = step * _expr(d)
    if not contiguous:
        raise refuse(f"the input (shape {list(src.shape)}, strides {list(src.stride())}) is not contiguous")
    if not eq(offset, 0):
        raise refuse(f"the storage offset is {offset}")
    if not eq(math.prod(_expr(d) for d in size), step):
        raise refuse(f"size {size} does not hold the input's {step} elements")
    dims = [i for i, d in enumerate(size) if not eq(d, 1)]
    order: list[int] = []  # innermost first
    expected = sympy.Integer(1)
    while len(order) < len(dims):
        nxt = next((i for i in dims if i not in order and eq(stride[i], expected)), None)
        if nxt is None:
            raise refuse(f"strides {stride} for size {size} skip or repeat elements")
        order.append(nxt)
        expected = expected * _expr(size[nxt])
    order.reverse()  # outermost first: the input's elements in this axis order
    y = _reshape(c, a["self"], [size[i] for i in order])
    perm = [order.index(i) for i in dims]
    if perm != sorted(perm):
        y = c.op("Transpose", y, perm=perm)
    return _reshape(c, y, size) if len(dims) != len(size) else y


@_handles("select")
def _select(c: _Converter, node, a):
    return c.op("Index", a["self"], axis=int(a["dim"]), index=int(a["index"]))


@_handles("clone", "contiguous", "alias", "detach", "lift_fresh_copy", "dropout", "native_dropout", "_assert_tensor_metadata")
def _identity(c: _Converter, node, a):
    if _op_name(node.target) == "native_dropout":
        return (a["input"], None)
    if _op_name(node.target) == "_assert_tensor_metadata":
        return None
    return a.get("self", a.get("input"))


@_handles("_to_copy", "to")
def _to_copy(c: _Converter, node, a):
    return c.op("Cast", a["self"], dtype=c.dtype_of(node))


@_handles("full", "zeros", "ones", "scalar_tensor", "full_like", "zeros_like", "ones_like")
def _full(c: _Converter, node, a):
    name = _op_name(node.target)
    fill = {"zeros": 0, "ones": 1, "zeros_like": 0, "ones_like": 1}.get(name, a.get("fill_value", a.get("s")))
    scalar = c.value(fill, dtype=c.dtype_of(node))
    sym = c.sym_op("SymBroadcast", scalar, c.meta(node).shape)
    if sym is not None:
        return sym
    shape = [c.dim(s) for s in c.meta(node).shape]
    return c.op("BroadcastTo", scalar, c.ref, shape=shape)


@_handles("mean", "sum", "amax", "amin", "prod", "any", "all")
def _reduce(c: _Converter, node, a):
    n = c.meta(node.args[0]).dim()
    dims = a.get("dim")
    axes = list(range(n)) if dims is None or dims == [] else [int(d) % n for d in ([dims] if isinstance(dims, int) else dims)]
    op = {"amax": "max", "amin": "min"}.get(_op_name(node.target), _op_name(node.target))
    return c.op("Reduce", a["self"], reduction=op, axes=axes, keepdims=bool(a.get("keepdim", False)))


@_handles("max", "min")
def _max_dim(c: _Converter, node, a):
    if "dim" not in a:
        return c.op("Reduce", a["self"], reduction=_op_name(node.target), axes=list(range(c.meta(node.args[0]).dim())))
    op, dim, keep = _op_name(node.target), int(a["dim"]), bool(a.get("keepdim", False))
    return (c.op("Reduce", a["self"], reduction=op, axes=[dim], keepdims=keep), c.op("ReduceArg", a["self"], reduction=op, axis=dim, keepdims=keep))


@_handles("argmax", "argmin")
def _argmax(c: _Converter, node, a):
    if a.get("dim") is None:
        raise UnsupportedModelError("argmax/argmin over all elements is not supported; pass dim")
    op = "max" if _op_name(node.target) == "argmax" else "min"
    return c.op("ReduceArg", a["self"], reduction=op, axis=int(a["dim"]), keepdims=bool(a.get("keepdim", False)))


@_handles("var")
def _var(c: _Converter, node, a):
    n = c.meta(node.args[0]).dim()
    dims = a.get("dim")
    axes = list(range(n)) if not dims else [int(d) % n for d in dims]
    corr = a.get("correction")
    corr = (1 if a.get("unbiased", True) else 0) if corr is None else float(corr)
    mean = c.op("Reduce", a["self"], reduction="mean", axes=axes, keepdims=True)
    sq = c.op("Square", c.op("Sub", c.value(a["self"]), mean))
    count = math.prod(int(c.meta(node.args[0]).shape[i]) for i in axes)
    total = c.op("Reduce", sq, reduction="sum", axes=axes, keepdims=bool(a.get("keepdim", False)))
    return c.op("Div", total, c.value(float(count - corr)))


@_handles("cumsum")
def _cumsum(c: _Converter, node, a):
    return c.op("CumSum", a["self"], axis=int(a["dim"]))


@_handles("embedding")
def _embedding(c: _Converter, node, a):
    return c.op("Embedding", a["indices"], a["weight"])


@_handles("index_select")
def _index_select(c: _Converter, node, a):
    return c.op("Gather", a["self"], a["index"], axis=int(a["dim"]))


@_handles("constant_pad_nd")
def _constant_pad(c: _Converter, node, a):
    n = c.meta(node).dim()
    pad = list(a["pad"])
    pads = [[0, 0] for _ in range(n)]
    for i in range(len(pad) // 2):  # torch pads the last dim first
        pads[n - 1 - i] = [int(pad[2 * i]), int(pad[2 * i + 1])]
    return c.op("Pad", a["self"], pads=pads, value=float(a.get("value", 0.0)), mode="constant")


@_handles("scaled_dot_product_attention")
def _sdpa(c: _Converter, node, a):
    mask = a.get("attn_mask")
    attrs = dict(is_causal=bool(a.get("is_causal", False)), scale=a.get("scale"))
    if a.get("enable_gqa"):
        raise UnsupportedModelError("scaled_dot_product_attention with enable_gqa is not supported")
    if mask is None:
        return c.op("ScaledDotProductAttention", a["query"], a["key"], a["value"], **attrs)
    is_bool = c.meta(node.args[3] if len(node.args) > 3 else node.kwargs["attn_mask"]).dtype == c.torch.bool
    return c.op("ScaledDotProductAttention", a["query"], a["key"], a["value"], mask, mask_kind="bool" if is_bool else "additive", **attrs)


def _recurrent(op: str, n_states: int):
    """aten.lstm/gru/rnn_tanh/rnn_relu (``.input`` overload) → LSTM/GRU/SimpleRNN."""

    def handler(c: _Converter, node, a):
        if a["train"]:
            raise UnsupportedModelError(f"{op} in training mode is not supported; call module.eval()")
        params = list(a["params"])
        layers, bidir, batch_first = int(a["num_layers"]), bool(a["bidirectional"]), bool(a["batch_first"])
        has_biases = bool(a["has_biases"])
        dirs = 2 if bidir else 1
        k = len(params) // (layers * dirs)
        if k != (4 if has_biases else 2):
            raise UnsupportedModelError(f"{op} with projections (proj_size) is not supported")
        weights = []
        for cell in range(layers * dirs):
            w_ih, w_hh = params[cell * k], params[cell * k + 1]
            if has_biases:
                b_ih, b_hh = params[cell * k + 2], params[cell * k + 3]
            else:
                b_ih = b_hh = _Const(c.torch.zeros(w_ih.value.shape[0]))
            if op == "LSTM":  # torch adds both biases; the IR keeps one
                weights += [w_ih, w_hh, _Const(b_ih.value + b_hh.value)]
            else:
                weights += [w_ih, w_hh, b_ih, b_hh]
        hx_nodes = node.args[1] if isinstance(node.args[1], (list, tuple)) else [node.args[1]]
        hx = list(a["hx"]) if isinstance(a["hx"], (list, tuple)) else [a["hx"]]
        init = [] if all(_is_zeros(c, n) for n in hx_nodes) else hx
        attrs = dict(hidden_size=int(c.meta(node)[1].shape[-1]), num_layers=layers, bidirectional=bidir, batch_first=batch_first)
        if op == "SimpleRNN":
            attrs["activation"] = "Relu" if _op_name(node.target) == "rnn_relu" else "Tanh"
        return tuple(c.b.node(op, [c.value(v) for v in [a["input"], *weights, *init]], n_outputs=1 + n_states, **attrs))

    return handler


def _is_zeros(c: _Converter, n: Any) -> bool:
    """True when the fx node ``n`` is a constant zero tensor or a ``full(shape, 0)`` (torch's default state)."""
    value = c.env.get(n)
    if isinstance(value, _Const):
        return bool((value.value == 0).all())
    return _op_name(n.target) in ("full", "zeros") and n.args[1:2] in ((), (0,), (0.0,))


_HANDLERS["lstm"] = _recurrent("LSTM", 2)
_HANDLERS["gru"] = _recurrent("GRU", 1)
_HANDLERS["rnn_tanh"] = _recurrent("SimpleRNN", 1)
_HANDLERS["rnn_relu"] = _recurrent("SimpleRNN", 1)

#: ATen ops kept whole by the decomposition (mapped directly to one IR op).
_KEEP = ("lstm.input", "gru.input", "rnn_tanh.input", "rnn_relu.input", "scaled_dot_product_attention.default")


def supported_ops() -> list[str]:
    """The ATen ops (overload packets) this exporter maps to IR ops."""
    return sorted(_HANDLERS)


def _export(model: Any, examples: list, names: list[str], seq_axes: list[list[int]]) -> Any:
    """``torch.export`` with a symbolic batch (axis 0 of every input) and symbolic ``seq_axes`` per input."""
    import torch
    from torch.export import Dim, default_decompositions, export

    tensors = tuple(torch.from_numpy(np.ascontiguousarray(e)) for e in examples)
    tensors = tuple(t.long() if not t.dtype.is_floating_point and t.dtype != torch.bool else t for t in tensors)
    batch = Dim("batch", min=1)
    dims = iter([{0: batch, **{a: Dim.DYNAMIC for a in axes}} for axes in seq_axes])
    dynamic: list = []
    for p in inspect.signature(model.forward).parameters.values():  # mirror forward's signature
        if p.kind == p.VAR_POSITIONAL:
            dynamic.append(tuple(next(dims) for _ in range(len(names) - len(dynamic))))
        elif len(dynamic) < len(names) and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            dynamic.append(next(dims))
    what = "a symbolic batch dimension" + (" and sequence length" if any(seq_axes) else "")
    try:
        with warnings.catch_warnings():  # torch's own notices: RNN flat weights, pytree deprecations
            warnings.filterwarnings("ignore", message=".*were assigned during export.*")
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            ep = export(model, tensors, dynamic_shapes=tuple(dynamic))
            table = default_decompositions()
            for name in _KEEP:
                packet, overload = name.split(".")
                table.pop(getattr(getattr(torch.ops.aten, packet), overload), None)
            return ep.run_decompositions(table)
    except Exception as exc:  # torch raises many kinds of errors; report them as one
        raise UnsupportedModelError(
            f"torch.export could not capture {type(model).__name__} with {what}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


class _TorchInputs(NetworkInputs):
    """:class:`NetworkInputs` plus the axes (beyond the batch) of each input that are variable-length."""

    seq_axes: list[list[int]]


def build_inputs(model: Any, sample_input: Any, input_shape: Any, builder: Any) -> NetworkInputs:
    """Graph inputs named after ``forward``'s arguments, shaped like ``sample_input`` or ``input_shape``.

    ``None`` in ``input_shape`` past the batch axis marks a variable-length
    axis (a sequence): the graph input gets ``None`` there and the model is
    exported with a symbolic size for it. With ``sample_input`` too, the sample
    gives the traced length; without, it is :data:`_TRACE_LENGTH`.
    """
    from ..format.graph import GraphBuilder

    names = positional_names(model.forward, input_count(sample_input, input_shape))
    shapes = None
    if input_shape is not None:
        shapes = [input_shape] if all(isinstance(d, (int, type(None))) for d in input_shape) else list(input_shape)
    seq_axes = [[i for i, d in enumerate(s) if i > 0 and d is None] for s in shapes] if shapes else [[] for _ in names]
    if len(seq_axes) != len(names):
        raise InputError(f"the model takes {len(names)} input(s) {list(names)}, but {len(seq_axes)} shape(s) were given")
    if not any(seq_axes):
        return _with_axes(build_network_inputs(builder, names, sample_input, input_shape), seq_axes)
    scratch = GraphBuilder()  # the specs at the traced length; the graph gets None on the variable axes
    if sample_input is not None:
        x = build_network_inputs(scratch, names, sample_input)
        for spec, axes, shape in zip(x.specs, seq_axes, shapes):
            if len(spec.shape) != len(shape) or any(spec.shape[i] < 2 for i in axes):
                raise InputError(f"input {spec.name!r}: sample shape {['batch', *spec.shape[1:]]} does not match input_shape "
                                 f"{list(shape)}, or is shorter than 2 on a variable-length axis")
    else:
        traced = [tuple(_TRACE_LENGTH if i > 0 and d is None else d for i, d in enumerate(s)) for s in shapes]
        x = build_network_inputs(scratch, names, None, traced)
    for spec, axes in zip(x.specs, seq_axes):
        builder.add_input(spec.name, spec.dtype, tuple(None if i in axes else d for i, d in enumerate(spec.shape)))
    return _with_axes(x, seq_axes)


def _with_axes(x: NetworkInputs, seq_axes: list[list[int]]) -> _TorchInputs:
    out = _TorchInputs(x.specs, x.samples)
    out.seq_axes = seq_axes
    return out


#: traced length of a variable-length axis when no sample_input is given (not 0 or 1, which torch.export specialises on).
_TRACE_LENGTH = 8


def convert_torch_module(model: Any, x: NetworkInputs, ctx: ExportContext) -> dict:
    """Convert an ``nn.Module`` (put in eval mode) applied to the graph inputs ``x``."""
    model.eval()
    seq_axes = getattr(x, "seq_axes", None) or [[] for _ in x]
    lengths = {s.shape[i] for s, axes in zip(x.specs, seq_axes) for i in axes}
    batch = next(b for b in (_TRACE_BATCH, 5, 7, 11) if b not in lengths)  # a batch size equal to a length could be unified with it
    examples = x.examples(batch)
    ep = _export(model, examples, list(x), seq_axes)
    conv = _Converter(ep, ctx, x)
    values = conv.run()
    fold_batch_norm(ctx.builder, values)
    spec = ep.call_spec.out_spec
    names = [str(k) for k in spec.context] if spec is not None and isinstance(spec.context, list) and len(spec.context) == len(values) else None
    outputs = network_outputs(values, names)
    if any(seq_axes):
        ctx.options["sequence"] = _sequence_info(model, conv, ep, outputs, examples, seq_axes)
    return outputs


def _sequence_info(model: Any, conv: _Converter, ep: Any, outputs: dict, examples: list, seq_axes: list[list[int]]) -> dict:
    """How the runtime may bucket the variable-length axes (``metadata["sequence"]``).

    ``axes``: ``[input, axis, max length or None, group]`` per variable axis (the
    max from torch.export's inferred range, e.g. the position-embedding table;
    axes torch.export found equal share a group);
    ``outputs``: ``[output, axis, input, input axis]`` for each output axis whose
    size is a variable length; ``pad``: whether zero-padding the variable axes
    at the end leaves every output exact after slicing those output axes back.
    ``pad`` is decided by running the model itself on the sample cut to half
    length, with and without zero padding back to the full length.
    """
    import torch

    ranges = ep.range_constraints
    seq_keys = [(name, axis) for name, in_axes in zip(conv.input_names, seq_axes) for axis in in_axes]
    axes = []
    for name, in_axes in zip(conv.input_names, seq_axes):
        for axis in in_axes:
            sym = conv.input_sizes[(name, axis)]
            upper = ranges[sym].upper if sym in ranges else None
            limit = int(upper) if getattr(upper, "is_Integer", False) else None  # torch's int_oo: unbounded
            group = next(i for i, g in enumerate(dict.fromkeys(conv.input_sizes[k] for k in seq_keys)) if g == sym)
            axes.append([name, axis, limit, group])
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    leaves = torch.utils._pytree.tree_leaves(out_node.args[0])
    out_names = [k for k in outputs if k != "__methods__"]
    follow, exact = [], True
    for out_name, leaf in zip(out_names, leaves):
        val = leaf.meta.get("val") if isinstance(leaf, torch.fx.Node) else None
        for axis, size in enumerate(getattr(val, "shape", ())):
            expr = _expr(size)
            if expr in conv.symbols and conv.symbols[expr] != (conv.ref, 0):
                follow.append([out_name, axis, *conv.symbols[expr]])
            elif not expr.is_Integer and expr.free_symbols - {conv.batch_symbol}:
                exact = False  # a size derived from a length (2*S, S-1): slicing back is not defined
    if exact:
        exact = _padding_is_exact(model, examples, conv.input_names, seq_axes, follow, out_names)
    return {"axes": axes, "outputs": follow, "pad": exact}


def _padding_is_exact(model: Any, examples: list, names: list[str], seq_axes: list[list[int]], follow: list, out_names: list[str]) -> bool:
    """Run ``model`` on the examples cut to half length, and on those zero-padded back: same outputs (sliced)?"""
    import torch

    short, padded = [], []
    for arr, axes in zip(examples, seq_axes):
        cut = tuple(slice(0, (arr.shape[i] + 1) // 2) if i in axes else slice(None) for i in range(arr.ndim))
        s = arr[cut]
        p = np.zeros_like(arr)
        p[tuple(slice(0, n) for n in s.shape)] = s
        short.append(s)
        padded.append(p)
    lengths = {(n, i): (a.shape[i] + 1) // 2 for n, a, axes in zip(names, examples, seq_axes) for i in axes}

    def run(arrays: list) -> list:
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        tensors = [t.long() if not t.dtype.is_floating_point and t.dtype != torch.bool else t for t in tensors]
        with torch.no_grad():
            return [t.detach().float().numpy() for t in torch.utils._pytree.tree_leaves(model(*tensors))]

    want, got = run(short), run(padded)
    for name, w, g in zip(out_names, want, got):
        cut = [slice(None)] * g.ndim
        for out_name, axis, in_name, in_axis in follow:
            if out_name == name:
                cut[axis] = slice(0, lengths[(in_name, in_axis)])
        g = g[tuple(cut)]
        if g.shape != w.shape or not np.allclose(g, w, rtol=0, atol=1e-5 * float(np.abs(w).max(initial=0)) + 1e-12):
            return False
    return True


def native_method(model: Any, method: str, inputs: list) -> np.ndarray:
    """``predict`` of a torch module: its first output for ``inputs``, as numpy (no grad, eval mode)."""
    import torch

    tensors = [torch.as_tensor(np.asarray(i)) for i in inputs]
    tensors = [t.long() if not t.dtype.is_floating_point and t.dtype != torch.bool else t for t in tensors]
    with torch.no_grad():
        out = model.eval()(*tensors)
    first = torch.utils._pytree.tree_leaves(out)[0]
    return first.detach().cpu().numpy()


convert_torch_module.build_inputs = build_inputs
convert_torch_module.native_method = native_method

register_converter("torch.Module", convert_torch_module)
