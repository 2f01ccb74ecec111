"""Flax modules (``flax.nnx`` and bound ``flax.linen``) → Graph IR, through their jaxpr.

The module is traced with ``jax.make_jaxpr`` on inputs whose batch dimension is
the symbolic size ``B`` (``jax.export.symbolic_shape``), so every shape that
depends on the batch is known as ``k*B`` and written as a shape spec. Each jaxpr
equation is mapped to one IR op (``lowering/ops_nn.py`` / ``ops_core.py``);
nested jaxprs (``jit``, ``custom_jvp_call``, ``custom_vjp_call``) are inlined,
and equations whose inputs are all constants are evaluated at export time.
The module's arrays (an nnx module's state, passed to the trace as arguments;
a bound linen module's variables, closed over) become stored tensors.
Control flow is unrolled at export: ``scan`` (``nn.scan``, ``nnx.RNN``) inlines
its body once per step, ``while_loop`` / ``fori_loop`` likewise when the loop
condition is a constant at export (a fixed trip count), and ``cond`` /
``switch`` keep the chosen branch when the index is a constant, else compute
every branch and select by the index. At most ``MAX_UNROLLED_STEPS`` steps in
all. Any Flax (or plain JAX) code made of the mapped primitives exports; other
primitives (sorting, scatter, data-dependent while loops) raise
UnsupportedModelError naming the primitive and the source line that produced it.

nnx modules are put in eval mode (``model.eval()``). A linen module must be
bound to its variables: ``module.bind({"params": params, ...})``, built with
inference flags (``use_running_average=True``, ``deterministic=True``).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from ..format.errors import UnsupportedModelError
from ._nn_common import NetworkInputs, build_network_inputs, input_count, network_outputs, positional_names
from .registry import ExportContext, register_converter

__all__ = ["convert_flax_module", "supported_primitives"]

_DIM = re.compile(r"^(?:(\d+)\*)?B(?:\*(\d+))?$")


def _np_dtype(dtype: Any) -> np.dtype:
    """float → float32, ints → int32, bool stays: the dtypes the IR computes in."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.dtype(np.float32)
    if dtype.kind in "iu":
        return np.dtype(np.int32)
    return dtype


class _Converter:
    """Emits IR for a closed jaxpr; values are IR names (str) or numpy constants."""

    def __init__(self, ctx: ExportContext, ref: str) -> None:
        self.b = ctx.builder
        self.ref = ref
        self.stored: dict[int, tuple[Any, str]] = {}
        self.outer: list[Any] = []  # call-like equations being inlined, for error locations
        self.steps = 0  # loop steps unrolled so far

    def value(self, v: Any) -> str:
        if isinstance(v, str):
            return v
        key = id(v)
        if key not in self.stored:  # keep v alive with its name, so its id stays unique
            arr = np.asarray(v)
            self.stored[key] = (v, self.b.tensor("const", arr.astype(_np_dtype(arr.dtype))))
        return self.stored[key][1]

    def op(self, op: str, *inputs: Any, **attrs: Any) -> str:
        return self.b.op(op, *(self.value(i) for i in inputs), **{k: _plain(v) for k, v in attrs.items()})

    def spec(self, shape: Any) -> list:
        """Shape spec of an aval shape: ints, and ``"B"``/``"B*k"`` for symbolic sizes."""
        out = []
        for d in shape:
            if isinstance(d, (int, np.integer)):
                out.append(int(d))
                continue
            m = _DIM.match(str(d).replace(" ", ""))
            if m is None:
                raise UnsupportedModelError(f"size {d} is not an integer multiple of the batch size")
            k = int(m.group(1) or m.group(2) or 1)
            out.append("B" if k == 1 else f"B*{k}")
        return out

    def source(self, eqn: Any) -> str:
        """The user source line of ``eqn``, or of the innermost call that has one."""
        for e in [eqn, *reversed(self.outer)]:
            where = _source(e)
            if where:
                return where
        return "an unknown location"

    def run(self, jaxpr: Any, consts: list, args: list) -> list:
        from jax.extend.core import Literal

        env: dict[Any, Any] = {}
        for var, val in zip(jaxpr.constvars, consts):
            env[var] = val if isinstance(val, str) else _constant(val)
        env.update(zip(jaxpr.invars, args))

        def read(v: Any) -> Any:
            if isinstance(v, Literal):
                return np.asarray(v.val, v.aval.dtype)  # exact, for constant folding; stored tensors narrow later
            return env[v]

        for eqn in jaxpr.eqns:
            ins = [read(v) for v in eqn.invars]
            outs = self.equation(eqn, ins)
            env.update(zip(eqn.outvars, outs))
        return [read(v) for v in jaxpr.outvars]

    def equation(self, eqn: Any, ins: list) -> list:
        name = eqn.primitive.name
        sub = _subjaxpr(eqn)
        if sub is not None:
            jaxpr, consts = sub
            self.outer.append(eqn)
            try:
                return self.run(jaxpr, consts, ins)
            finally:
                self.outer.pop()
        if name == "dim_as_value":  # the symbolic batch size used as a number: no constant to fold, no op for it
            raise UnsupportedModelError(
                f"the batch size used as a value (from {self.source(eqn)}) is not supported, e.g. x[0] or a mean "
                "over the batch axis"
            )
        if all(not isinstance(i, str) for i in ins) and all(_static(v.aval) for v in eqn.outvars):
            out = eqn.primitive.bind(*ins, **eqn.params)  # constant folding, at export time
            return [_constant(o) for o in (out if eqn.primitive.multiple_results else [out])]
        handler = _PRIMITIVES.get(name)
        if handler is None:
            raise UnsupportedModelError(
                f"JAX primitive {name!r} (from {self.source(eqn)}) is not supported; "
                f"{len(_PRIMITIVES)} primitives are (mlejax.exporters.nn_flax.supported_primitives())"
            )
        try:
            out = handler(self, eqn, ins)
        except UnsupportedModelError as exc:
            raise UnsupportedModelError(f"primitive {name!r} (from {self.source(eqn)}): {exc}") from None
        return list(out) if isinstance(out, (list, tuple)) else [out]


def _plain(v: Any) -> Any:
    """Attrs as plain Python data (jaxpr params hold numpy scalars and tuples)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _constant(v: Any) -> Any:
    """An export-time constant: numpy, except JAX's extended dtypes (PRNG keys), which numpy cannot hold."""
    import jax

    return v if jax.dtypes.issubdtype(getattr(v, "dtype", np.float32), jax.dtypes.extended) else np.asarray(v)


def _static(aval: Any) -> bool:
    return all(isinstance(d, (int, np.integer)) for d in getattr(aval, "shape", ()))


def _subjaxpr(eqn: Any) -> tuple[Any, list] | None:
    """The (jaxpr, consts) a call-like equation runs, to be inlined."""
    if eqn.primitive.name not in ("pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr", "remat", "checkpoint"):
        return None
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        j = eqn.params.get(key)
        if j is not None:
            return (j.jaxpr, list(j.consts)) if hasattr(j, "consts") else (j, [])
    return None


def _source(eqn: Any) -> str:
    try:
        from jax._src import source_info_util

        return source_info_util.summarize(eqn.source_info)
    except Exception:  # the location is a courtesy in an error message
        return ""


# --- primitive handlers: (converter, eqn, inputs) -> value(s) ------------------------

_PRIMITIVES: dict[str, Callable] = {}


def _simple(ir: str, **fixed: Any) -> Callable:
    def handler(c: _Converter, eqn: Any, ins: list) -> str:
        return c.op(ir, *ins, **fixed)

    return handler


for _prim, _ir in {
    "neg": "Neg", "exp": "Exp", "log": "Log", "tanh": "Tanh", "logistic": "Sigmoid", "sqrt": "Sqrt", "rsqrt": "Rsqrt",
    "abs": "Abs", "sign": "Sign", "floor": "Floor", "ceil": "Ceil", "erf": "Erf", "log1p": "Log1p", "expm1": "Expm1",
    "sin": "Sin", "cos": "Cos", "erfc": "Erfc", "square": "Square", "is_finite": "IsFinite",
    "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "max": "Max", "min": "Min", "pow": "Pow",
    "atan2": "Atan2", "rem": "Rem", "add_any": "Add",
}.items():
    _PRIMITIVES[_prim] = _simple(_ir)
for _prim in ("eq", "ne", "lt", "le", "gt", "ge"):
    _PRIMITIVES[_prim] = _simple("Compare", direction=_prim)
for _prim in ("copy", "copy_p", "stop_gradient", "reduce_precision", "sharding_constraint", "optimization_barrier"):
    _PRIMITIVES[_prim] = lambda c, eqn, ins: ins


def _logical(ir: str) -> Callable:
    def handler(c: _Converter, eqn: Any, ins: list) -> str:
        if np.dtype(eqn.outvars[0].aval.dtype) != np.bool_:
            raise UnsupportedModelError("bitwise ops on integers are not supported; booleans are")
        return c.op(ir, *ins)

    return handler


for _prim, _ir in {"and": "And", "or": "Or", "xor": "Xor", "not": "Not"}.items():
    _PRIMITIVES[_prim] = _logical(_ir)


def _handles(*names: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        for n in names:
            _PRIMITIVES[n] = fn
        return fn

    return deco


@_handles("round")
def _round(c: _Converter, eqn: Any, ins: list) -> str:
    if int(eqn.params.get("rounding_method", 0)) != 1:
        raise UnsupportedModelError("lax.round away from zero is not supported; jnp.round (half to even) is")
    return c.op("Round", *ins)


@_handles("integer_pow")
def _integer_pow(c: _Converter, eqn: Any, ins: list) -> str:
    return c.op("IntPow", *ins, exponent=int(eqn.params["y"]))


@_handles("clamp")
def _clamp(c: _Converter, eqn: Any, ins: list) -> str:
    lo, x, hi = ins
    return c.op("Min", c.op("Max", x, lo), hi)


@_handles("dot_general")
def _dot_general(c: _Converter, eqn: Any, ins: list) -> str:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    return c.op("DotGeneral", *ins, contracting=[list(lc), list(rc)], batch=[list(lb), list(rb)])


@_handles("conv_general_dilated")
def _conv(c: _Converter, eqn: Any, ins: list) -> str:
    p = eqn.params
    dn = p["dimension_numbers"]
    return c.op(
        "ConvGeneral", *ins,
        window_strides=list(p["window_strides"]), padding=[list(q) for q in p["padding"]],
        lhs_dilation=list(p["lhs_dilation"]), rhs_dilation=list(p["rhs_dilation"]),
        dimension_numbers=[list(dn.lhs_spec), list(dn.rhs_spec), list(dn.out_spec)],
        feature_group_count=int(p["feature_group_count"]), batch_group_count=int(p["batch_group_count"]),
    )


for _prim, _red in {
    "reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min", "reduce_prod": "prod", "reduce_and": "all", "reduce_or": "any",
}.items():
    _PRIMITIVES[_prim] = lambda c, eqn, ins, _r=_red: c.op("Reduce", *ins, reduction=_r, axes=list(eqn.params["axes"]))


@_handles("argmax", "argmin")
def _argmax(c: _Converter, eqn: Any, ins: list) -> str:
    (axis,) = eqn.params["axes"]
    out = c.op("ReduceArg", *ins, reduction=eqn.primitive.name[3:], axis=int(axis))
    return out if np.dtype(eqn.params["index_dtype"]).itemsize == 4 else c.op("Cast", out, dtype="int32")


@_handles("broadcast_in_dim")
def _broadcast_in_dim(c: _Converter, eqn: Any, ins: list) -> str:
    p = eqn.params
    return c.op("BroadcastInDim", ins[0], c.ref, shape=c.spec(p["shape"]), broadcast_dimensions=list(p["broadcast_dimensions"]))


@_handles("reshape")
def _reshape(c: _Converter, eqn: Any, ins: list) -> str:
    if eqn.params.get("dimensions") is not None:
        raise UnsupportedModelError("reshape with a dimensions permutation is not supported")
    return c.op("ReshapeDims", ins[0], c.ref, shape=c.spec(eqn.params["new_sizes"]))


@_handles("transpose")
def _transpose(c: _Converter, eqn: Any, ins: list) -> str:
    return c.op("Transpose", *ins, perm=list(eqn.params["permutation"]))


@_handles("rev")
def _rev(c: _Converter, eqn: Any, ins: list) -> str:
    return c.op("Reverse", *ins, axes=list(eqn.params["dimensions"]))


@_handles("squeeze")
def _squeeze(c: _Converter, eqn: Any, ins: list) -> str:
    return c.op("SqueezeAxes", *ins, axes=list(eqn.params["dimensions"]))


@_handles("expand_dims")
def _expand_dims(c: _Converter, eqn: Any, ins: list) -> str:
    return c.op("Unsqueeze", *ins, axes=list(eqn.params["dimensions"]))


@_handles("convert_element_type")
def _convert(c: _Converter, eqn: Any, ins: list) -> str:
    return c.op("Cast", *ins, dtype=_np_dtype(eqn.params["new_dtype"]).name)


@_handles("select_n")
def _select_n(c: _Converter, eqn: Any, ins: list) -> str:
    pred, *cases = ins
    if len(cases) != 2:
        raise UnsupportedModelError(f"select_n with {len(cases)} cases is not supported; 2 are")
    if np.dtype(eqn.invars[0].aval.dtype) != np.bool_:
        pred = c.op("Cast", pred, dtype="bool")
    return c.op("Where", pred, cases[1], cases[0])


@_handles("concatenate")
def _concatenate(c: _Converter, eqn: Any, ins: list) -> str:
    return c.op("Concat", *ins, axis=int(eqn.params["dimension"]))


@_handles("split")
def _split(c: _Converter, eqn: Any, ins: list) -> list:
    sizes = [int(s) for s in eqn.params["sizes"]]
    return c.b.node("Split", [c.value(ins[0])], n_outputs=len(sizes), axis=int(eqn.params["axis"]), sizes=sizes)


@_handles("slice")
def _slice(c: _Converter, eqn: Any, ins: list) -> str:
    p = eqn.params
    n = len(p["start_indices"])
    steps = list(p["strides"]) if p.get("strides") else [1] * n
    starts, stops = c.spec(p["start_indices"]), c.spec(p["limit_indices"])
    axes = [i for i in range(n) if not (starts[i] == 0 and stops[i] == c.spec(eqn.invars[0].aval.shape)[i] and steps[i] == 1)]
    if any(isinstance(starts[i], str) or isinstance(stops[i], str) for i in axes):
        raise UnsupportedModelError("slicing at a batch-dependent position is not supported")
    if not axes:
        return c.value(ins[0])
    return c.op("Slice", ins[0], axes=axes, starts=[starts[i] for i in axes], stops=[stops[i] for i in axes], steps=[steps[i] for i in axes])


@_handles("pad")
def _pad(c: _Converter, eqn: Any, ins: list) -> str:
    x, value = ins
    config = eqn.params["padding_config"]
    if any(interior for _, _, interior in config):
        raise UnsupportedModelError("interior padding is not supported")
    if isinstance(value, str):
        raise UnsupportedModelError("padding with a computed value is not supported")
    return c.op("Pad", x, pads=[[int(lo), int(hi)] for lo, hi, _ in config], value=float(np.asarray(value)), mode="constant")


@_handles("reduce_window_sum", "reduce_window_max", "reduce_window_min")
def _reduce_window(c: _Converter, eqn: Any, ins: list) -> str:
    p = eqn.params
    return c.op(
        "ReduceWindow", *ins, reduction=eqn.primitive.name.rsplit("_", 1)[-1],
        window_dimensions=list(p["window_dimensions"]), window_strides=list(p["window_strides"]),
        padding=[list(q) for q in p["padding"]], base_dilation=list(p["base_dilation"]), window_dilation=list(p["window_dilation"]),
    )


@_handles("iota")
def _iota(c: _Converter, eqn: Any, ins: list) -> str:
    p = eqn.params
    return c.op("Iota", c.ref, shape=c.spec(p["shape"]), axis=int(p["dimension"]), dtype=_np_dtype(p["dtype"]).name)


@_handles("cumsum")
def _cumsum(c: _Converter, eqn: Any, ins: list) -> str:
    return c.op("CumSum", *ins, axis=int(eqn.params["axis"]), reverse=bool(eqn.params["reverse"]))


@_handles("gather")
def _gather(c: _Converter, eqn: Any, ins: list) -> str:
    """Row lookups (``jnp.take(table, ids, axis=0)``, ``table[ids]``); other gathers are unsupported."""
    table, indices = ins
    p = eqn.params
    dn = p["dimension_numbers"]
    t_shape = eqn.invars[0].aval.shape
    i_shape = eqn.invars[1].aval.shape
    row_lookup = (
        len(t_shape) == 2 and tuple(dn.collapsed_slice_dims) == (0,) and tuple(dn.start_index_map) == (0,)
        and tuple(p["slice_sizes"]) == (1, t_shape[1]) and i_shape[-1] == 1
        and tuple(dn.offset_dims) == (len(i_shape) - 1,) and not getattr(dn, "operand_batching_dims", ())
    )
    if not row_lookup:
        raise UnsupportedModelError("only row lookups (jnp.take(table, ids, axis=0)) are supported among gathers")
    ids = c.op("SqueezeAxes", indices, axes=[len(i_shape) - 1])
    if "FILL" in str(p["mode"]):  # out-of-range rows are NaN, as jnp.take's default fill
        return c.op("Embedding", ids, table)
    return c.op("Gather", table, ids, axis=0)


# --- control flow: unrolled at export ---------------------------------------------------

#: most loop iterations (scan steps and while iterations) one export may unroll
MAX_UNROLLED_STEPS = 4096


def _count_steps(c: _Converter, n: int) -> None:
    c.steps += n
    if c.steps > MAX_UNROLLED_STEPS:
        raise UnsupportedModelError(
            f"loops unroll to more than {MAX_UNROLLED_STEPS} steps in all (mlejax.exporters.nn_flax.MAX_UNROLLED_STEPS); "
            "shorten the sequence or the loop"
        )


def _step_slice(c: _Converter, x: Any, i: int) -> Any:
    """``x[i]`` along the scanned (leading) axis."""
    return x[i] if not isinstance(x, str) else c.op("Index", x, axis=0, index=i)


def _stack(c: _Converter, parts: list, aval: Any) -> Any:
    """The per-step values stacked on a new leading axis."""
    if not parts:
        if not _static(aval):
            raise UnsupportedModelError("an empty scan over a batch-dependent shape is not supported")
        return np.zeros(aval.shape, _np_dtype(aval.dtype))
    if all(not isinstance(v, str) for v in parts):
        return np.stack([np.asarray(v) for v in parts])
    return c.op("Concat", *(c.op("Unsqueeze", v, axes=[0]) for v in parts), axis=0)


@_handles("scan")
def _scan(c: _Converter, eqn: Any, ins: list) -> list:
    """``lax.scan`` (``nn.scan``, ``nnx.scan``, ``nnx.RNN``): the body inlined once per step."""
    p = eqn.params
    length = p["length"]
    if not isinstance(length, (int, np.integer)):
        raise UnsupportedModelError("scanning over the batch axis is not supported; scan over a fixed-size axis")
    length = int(length)
    _count_steps(c, length)
    n_consts, n_carry = int(p["num_consts"]), int(p["num_carry"])
    consts, carry, xs = ins[:n_consts], list(ins[n_consts:n_consts + n_carry]), ins[n_consts + n_carry:]
    body = p["jaxpr"]
    steps: list[list] = []
    for i in (reversed(range(length)) if p["reverse"] else range(length)):
        out = c.run(body.jaxpr, list(body.consts), [*consts, *carry, *(_step_slice(c, x, i) for x in xs)])
        carry = out[:n_carry]
        steps.append(out[n_carry:])
    if p["reverse"]:
        steps.reverse()
    ys = [_stack(c, [s[j] for s in steps], v.aval) for j, v in enumerate(eqn.outvars[n_carry:])]
    return [*carry, *ys]


@_handles("while")
def _while(c: _Converter, eqn: Any, ins: list) -> list:
    """``lax.while_loop`` / ``fori_loop`` whose condition is known at export (a constant trip count): unrolled."""
    p = eqn.params
    cond, body = p["cond_jaxpr"], p["body_jaxpr"]
    n_cond, n_body = int(p["cond_nconsts"]), int(p["body_nconsts"])
    cond_consts, body_consts, carry = ins[:n_cond], ins[n_cond:n_cond + n_body], list(ins[n_cond + n_body:])
    while True:
        (go,) = c.run(cond.jaxpr, list(cond.consts), [*cond_consts, *carry])
        if isinstance(go, str):
            raise UnsupportedModelError(
                "a while loop whose condition depends on the inputs is not supported; loops with a trip count "
                "known at export (fori_loop with constant bounds, scan) are"
            )
        if not bool(np.asarray(go)):
            return carry
        _count_steps(c, 1)
        carry = c.run(body.jaxpr, list(body.consts), [*body_consts, *carry])


@_handles("cond")
def _cond(c: _Converter, eqn: Any, ins: list) -> list:
    """``lax.cond`` / ``lax.switch``: the chosen branch when the index is known at export, else every branch
    computed and the results selected by the index (clamped to the branches, as lax does)."""
    branches = eqn.params["branches"]
    index, operands = ins[0], ins[1:]
    if not isinstance(index, str):
        k = int(np.clip(np.asarray(index), 0, len(branches) - 1))
        return c.run(branches[k].jaxpr, list(branches[k].consts), operands)
    results = [c.run(b.jaxpr, list(b.consts), operands) for b in branches]
    out = results[0]
    for k in range(1, len(branches)):
        take = c.op("Compare", index, np.asarray(k, np.int32), direction="ge")
        out = [c.op("Where", take, new, old) for new, old in zip(results[k], out)]
    return out


def supported_primitives() -> list[str]:
    """The JAX primitives this exporter maps to IR ops (call-like primitives are inlined)."""
    return sorted(_PRIMITIVES)


# --- the converter -------------------------------------------------------------------


def _callable(model: Any) -> tuple[Callable, list]:
    """A pure function of (state leaves..., inputs...) and the state leaves.

    An nnx module (in eval mode) is split into its graph and state, and the
    state is passed in as arguments, so nnx transforms inside the module
    (``nnx.scan`` in ``nnx.RNN``) trace at the same level as the module. A
    bound linen module closes over its variables and has no state leaves.
    """
    import jax
    from flax import linen, nnx

    if isinstance(model, nnx.Module):
        if hasattr(model, "eval"):
            model.eval()
        graphdef, state = nnx.split(model)
        leaves, tree = jax.tree_util.tree_flatten(state)
        n = len(leaves)
        return (lambda *args: nnx.merge(graphdef, jax.tree_util.tree_unflatten(tree, args[:n]))(*args[n:])), leaves
    if isinstance(model, linen.Module):
        if model.scope is None:
            raise UnsupportedModelError(
                f"linen module {type(model).__name__} has no variables: export module.bind({{'params': params, ...}})"
            )
        return model, []
    raise UnsupportedModelError(f"{type(model).__name__} is neither a flax.nnx nor a bound flax.linen module")


def _call_target(model: Any) -> Callable:
    from flax import linen

    return model.__call__ if not isinstance(model, linen.Module) else type(model).__call__.__get__(model)


def build_inputs(model: Any, sample_input: Any, input_shape: Any, builder: Any) -> NetworkInputs:
    """Graph inputs named after ``__call__``'s arguments, shaped like ``sample_input`` or ``input_shape``."""
    names = positional_names(_call_target(model), input_count(sample_input, input_shape))
    return build_network_inputs(builder, names, sample_input, input_shape)


def convert_flax_module(model: Any, x: NetworkInputs, ctx: ExportContext) -> dict:
    """Trace a Flax module with a symbolic batch and convert its jaxpr."""
    import jax

    fn, state = _callable(model)
    (batch,) = jax.export.symbolic_shape("B")
    specs = [jax.ShapeDtypeStruct((batch, *s.shape[1:]), s.dtype) for s in x.specs]
    try:
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*state, *specs)
    except Exception as exc:  # tracing can fail in many ways; report them as one
        raise UnsupportedModelError(
            f"could not trace {type(model).__name__} with a symbolic batch dimension: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    conv = _Converter(ctx, x[0])
    values = [conv.value(o) for o in conv.run(closed.jaxpr, list(closed.consts), [*map(_constant, state), *x])]
    leaves, tree = jax.tree_util.tree_flatten_with_path(out_shape)
    names = [jax.tree_util.keystr(path, simple=True, separator=".") or str(i) for i, (path, _) in enumerate(leaves)]
    return network_outputs(values, names)


def native_method(model: Any, method: str, inputs: list) -> np.ndarray:
    """``predict`` of a Flax module: its first output for ``inputs``, as numpy."""
    import jax

    fn, state = _callable(model)
    out = fn(*state, *(jax.numpy.asarray(i) for i in inputs))
    return np.asarray(jax.tree_util.tree_leaves(out)[0])


convert_flax_module.build_inputs = build_inputs
convert_flax_module.native_method = native_method

register_converter("flax.Module", convert_flax_module)
