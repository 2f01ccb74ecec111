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

from ..format.errors import UnsupportedModelError
from ._nn_common import NetworkInputs, build_network_inputs, input_count, network_outputs, positional_names
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
        expr = d.node.expr if hasattr(d, "node") else d
        import sympy

        expr = sympy.expand(expr)
        if expr.is_Integer:
            return int(expr)
        syms = expr.free_symbols
        if len(syms) == 1:
            (s,) = syms
            coeff = sympy.Poly(expr, s)
            if coeff.degree() == 1 and coeff.coeff_monomial(1) == 0:
                k = int(coeff.coeff_monomial(s))
                return "B" if k == 1 else f"B*{k}"
        raise UnsupportedModelError(f"shape entry {expr} is not an integer multiple of the batch size")

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
    return c.op("ReshapeDims", a["self"], c.ref, shape=c.shape_spec(a.get("size", a.get("shape"))))


@_handles("expand")
def _expand(c: _Converter, node, a):
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
    end = None if end is None or (isinstance(end, int) and end >= 2**62) else c.dim(end)
    start = 0 if start is None else c.dim(start)
    if isinstance(start, str) or isinstance(end, str):
        raise UnsupportedModelError("slicing at a batch-dependent position is not supported")
    return c.op("Slice", a["self"], axes=[int(a["dim"])], starts=[start], stops=[end], steps=[step])


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


def _export(model: Any, examples: list, names: list[str]) -> Any:
    import torch
    from torch.export import Dim, default_decompositions, export

    tensors = tuple(torch.from_numpy(np.ascontiguousarray(e)) for e in examples)
    tensors = tuple(t.long() if not t.dtype.is_floating_point and t.dtype != torch.bool else t for t in tensors)
    batch = Dim("batch", min=1)
    dynamic: list = []
    for p in inspect.signature(model.forward).parameters.values():  # mirror forward's signature
        if p.kind == p.VAR_POSITIONAL:
            dynamic.append(tuple({0: batch} for _ in range(len(names) - len(dynamic))))
        elif len(dynamic) < len(names) and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            dynamic.append({0: batch})
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
            f"torch.export could not capture {type(model).__name__} with a symbolic batch dimension: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


def build_inputs(model: Any, sample_input: Any, input_shape: Any, builder: Any) -> NetworkInputs:
    """Graph inputs named after ``forward``'s arguments, shaped like ``sample_input`` or ``input_shape``."""
    names = positional_names(model.forward, input_count(sample_input, input_shape))
    return build_network_inputs(builder, names, sample_input, input_shape)


def convert_torch_module(model: Any, x: NetworkInputs, ctx: ExportContext) -> dict:
    """Convert an ``nn.Module`` (put in eval mode) applied to the graph inputs ``x``."""
    model.eval()
    ep = _export(model, x.examples(_TRACE_BATCH), list(x))
    values = _Converter(ep, ctx, x).run()
    spec = ep.call_spec.out_spec
    names = [str(k) for k in spec.context] if spec is not None and isinstance(spec.context, list) and len(spec.context) == len(values) else None
    return network_outputs(values, names)


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
