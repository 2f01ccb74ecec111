"""Keras 3 models (``keras`` and ``tf.keras`` of TensorFlow >= 2.16) → Graph IR.

Sequential and functional models are walked node by node through their
functional graph: every node records the layer (or ``keras.ops`` operation)
that was called and the tensors it was called on, so branches, shared layers,
nested models and several inputs keep their structure. Only the layers'
configuration and weights are read (``get_weights``, config attributes);
keras itself is never run, and loading the ``.mle`` never imports it.

Layers lower onto the shared network ops of ``lowering/ops_nn.py`` with the
``channels_last`` layout (Keras' default), plus ``lowering/ops_keras.py`` for
the Keras-only activations that cannot be composed exactly. The supported
layers are the keys of ``_LAYERS`` (and ``_OPS`` for ``keras.ops`` calls
recorded in functional graphs, e.g. ``x + y``); any other layer, a
``Lambda``, a custom layer or a subclassed model raises
:class:`UnsupportedModelError` naming the class and its path in the model.

Keras masks are followed as ``Layer.__call__`` follows them: a mask recorded
in the functional graph (Keras records the ``keras.ops`` that compute it) is an
ordinary value; a mask Keras attaches at run time (``compute_mask``) is emitted
lazily, only where a layer consumes it. Layers that use masks: LSTM, GRU,
SimpleRNN and Bidirectional (masked steps keep the state, ``ops_keras``
``MaskedRecurrent``), MultiHeadAttention and Attention, GlobalAveragePooling1D,
Softmax, BatchNormalization (inference ignores it), TimeDistributed (unless the
wrapped layer takes a mask). A mask reaching any other mask-taking layer is
refused by name. Stateful RNNs are not supported.
Graph inputs take the Keras input names and dtypes (integer inputs
become int32); dimensions left open in the model (``Input((None, 8))``) are
fixed from ``sample_input=`` or ``input_shape=`` at export.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..format.errors import InputError, UnsupportedModelError
from ..format.graph import GraphBuilder
from ._nn_common import InputSpec, NetworkInputs, build_network_inputs, network_outputs
from ._nn_fold import fold_batch_norm
from .registry import ExportContext, register_converter, register_file_loader

__all__ = ["convert_keras_model", "build_inputs", "native_method", "load_keras_file"]


@dataclass(frozen=True, eq=False)
class _Val:
    """A graph value with its static shape (batch dimension excluded) and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def ndim(self) -> int:
        """Rank including the batch dimension."""
        return len(self.shape) + 1


class _Emitter:
    """Adds nodes and tensors to the graph, tracking the static shape of each value."""

    def __init__(self, builder: GraphBuilder) -> None:
        self.b = builder

    def const(self, hint: str, array: Any, dtype: Any = np.float32) -> str:
        return self.b.tensor(_safe(hint), array, dtype)

    def op(self, op: str, inputs: Sequence[_Val | str], shape: Sequence[int], dtype: str = "float32", /, **attrs: Any) -> _Val:
        return _Val(self.b.op(op, *(_name(v) for v in inputs), **attrs), tuple(int(d) for d in shape), dtype)

    def nodes(self, op: str, inputs: Sequence[_Val | str], n_outputs: int, /, **attrs: Any) -> list[str]:
        return self.b.node(op, [_name(v) for v in inputs], n_outputs=n_outputs, **attrs)

    def same(self, op: str, x: _Val, /, *others: _Val | str, **attrs: Any) -> _Val:
        """An op whose output has the shape and dtype of ``x``."""
        return self.op(op, [x, *others], x.shape, x.dtype, **attrs)

    def binary(self, op: str, a: _Val, b: _Val) -> _Val:
        """A broadcasting binary op (Keras merge semantics: missing dims are inserted at axis 1)."""
        while a.ndim < b.ndim:
            a = self.op("Unsqueeze", [a], (1, *a.shape), a.dtype, axes=[1])
        while b.ndim < a.ndim:
            b = self.op("Unsqueeze", [b], (1, *b.shape), b.dtype, axes=[1])
        return self.op(op, [a, b], np.broadcast_shapes(a.shape, b.shape), a.dtype)

    def scalar_op(self, op: str, x: _Val, value: float) -> _Val:
        return self.same(op, x, self.const("scalar", value))

    def where(self, cond: _Val, a: _Val | str, b: _Val | str, like: _Val) -> _Val:
        """``cond ? a : b`` with the shape and dtype of ``like``."""
        return self.op("Where", [cond, a, b], like.shape, like.dtype)

    def compare(self, x: _Val, value: float, direction: str) -> _Val:
        return self.op("Compare", [x, self.const("bound", value)], x.shape, "bool", direction=direction)


def _name(v: _Val | str) -> str:
    return v.name if isinstance(v, _Val) else v


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:/-]", "_", text)[-150:] or "value"


# --- the functional graph walk ---------------------------------------------------------------

Handler = Callable[..., Any]
_LAYERS: dict[str, Handler] = {}
_OPS: dict[str, Handler] = {}


def _layer(*names: str, kwargs: Sequence[str] = ()) -> Callable[[Handler], Handler]:
    """Register ``handler(e, layer, path, *args, **kwargs)`` for the Keras layer classes ``names``.

    ``kwargs`` are the call arguments the handler understands, Keras masks
    (``mask``, ``query_mask``, ...) included: a layer given a mask it does not
    list is refused.
    """

    def deco(fn: Handler) -> Handler:
        fn.call_kwargs = frozenset(kwargs)
        for n in names:
            _LAYERS[n] = fn
        return fn

    return deco


def _keras_op(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``keras.ops`` operations recorded in functional graphs."""

    def deco(fn: Handler) -> Handler:
        fn.call_kwargs = frozenset()
        for n in names:
            _OPS[n] = fn
        return fn

    return deco


def _graph_of(model: Any, path: str) -> Any:
    """The Functional graph of a Sequential or functional model."""
    import keras

    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise UnsupportedModelError(
                f"{path}: this Sequential model is not built; start it with keras.Input(shape) "
                "or call model.build(input_shape) before exporting"
            )
        return graph
    if not _is_keras_class(model, "Functional") or not hasattr(model, "_nodes_by_depth"):
        raise UnsupportedModelError(
            f"{path}: {type(model).__qualname__} is a subclassed Keras model, which has no layer graph to export; "
            "build it as a Sequential or functional model (keras.Model(inputs, outputs))"
        )
    return model


def _is_keras_class(obj: Any, name: str) -> bool:
    return any(c.__name__ == name and c.__module__.split(".")[0] == "keras" for c in type(obj).__mro__)


def _walk(e: _Emitter, model: Any, inputs: Sequence[_Val], path: str,
          input_masks: Sequence[_Val | None] | None = None) -> tuple[list[_Val], list[_Val | None]]:
    """Convert every node of ``model``'s graph, deepest first; return the model's outputs and their Keras masks."""
    graph = _graph_of(model, path)
    env: dict[int, _Val] = {id(kt): v for kt, v in zip(graph.inputs, inputs)}
    masks: dict[int, _Val | None] = {id(kt): m for kt, m in zip(graph.inputs, input_masks or [None] * len(inputs))}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.is_input or node.operation is None:
                continue
            op = node.operation
            where = f"{path}/{op.name}"
            args, kwargs = node.arguments.fill_in(env)
            arg_masks, kwarg_masks = node.arguments.fill_in(masks)
            outs, out_masks = _call_node(e, op, where, args, kwargs, arg_masks, kwarg_masks)
            if len(outs) != len(node.outputs):
                raise UnsupportedModelError(f"{where}: produced {len(outs)} outputs, keras recorded {len(node.outputs)}")
            for kt, v, m in zip(node.outputs, outs, out_masks):
                _check_shape(kt, v, where)
                env[id(kt)] = v
                masks[id(kt)] = m
            if type(op).__name__ in _CLEARS_INPUT_MASKS:  # as Keras does, for the layers run after this one
                for kt in node.arguments.keras_tensors:
                    masks[id(kt)] = None
    return [env[id(kt)] for kt in graph.outputs], [masks[id(kt)] for kt in graph.outputs]


#: layers whose call removes the Keras masks of their input tensors (``set_keras_mask(query, None)``)
_CLEARS_INPUT_MASKS = frozenset({"MultiHeadAttention", "GroupQueryAttention"})


class _LazyMask:
    """A mask Keras attaches to a tensor at run time, emitted into the graph only when a layer consumes it.

    (Masks a layer is given in the recorded graph are ordinary values; these
    are the ones ``Layer.__call__`` fills in from ``compute_mask``.)
    """

    _UNSET = object()

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._value: Any = self._UNSET

    def get(self) -> Any:
        if self._value is self._UNSET:
            self._value = self._make()
        return self._value


def _force(masks: Any) -> Any:
    """``masks`` with every lazy mask emitted (same nesting)."""
    if isinstance(masks, (list, tuple)):
        return [_force(m) for m in masks]
    return masks.get() if isinstance(masks, _LazyMask) else masks


def _is_model(op: Any) -> bool:
    cls = type(op)
    return cls.__name__ in ("Sequential", "Functional") and cls.__module__.split(".")[0] == "keras"


def _call_node(e: _Emitter, op: Any, path: str, args: tuple, kwargs: dict, arg_masks: tuple,
               kwarg_masks: dict) -> tuple[list[_Val], list[_Val | None]]:
    """Convert one recorded call with Keras' mask handling: the outputs and their masks.

    As ``Layer.__call__`` does, the masks of the inputs are passed to the
    layer's ``mask`` (or ``<argument>_mask``) call argument, and the outputs
    get ``compute_mask`` of the layer (see ``_MASK_RULES``).
    """
    import keras

    if not isinstance(op, keras.layers.Layer):  # keras.ops calls drop masks
        outs = _flatten(_convert_call(e, op, path, args, kwargs))
        return outs, [None] * len(outs)
    if _is_model(op):
        flat = _flatten(args[0]) if len(args) == 1 else _flatten(list(args))
        flat_masks = _flatten(arg_masks[0]) if len(arg_masks) == 1 else _flatten(list(arg_masks))
        return _walk(e, op, flat, path, flat_masks)
    mask_kwargs, previous = _call_masks(op, args, kwargs, arg_masks, kwarg_masks)
    outs = _flatten(_convert_call(e, op, path, args, {**kwargs, **mask_kwargs}))
    return outs, _output_masks(e, op, path, args, previous, len(outs))


def _has_value(x: Any) -> bool:
    return any(isinstance(v, _Val) for v in _flatten(x))


def _call_masks(layer: Any, args: tuple, kwargs: dict, arg_masks: tuple, kwarg_masks: dict) -> tuple[dict, Any]:
    """(mask call arguments Keras fills in, the ``previous_mask`` its ``compute_mask`` gets)."""
    sig = inspect.signature(layer.call)
    try:
        bound = sig.bind_partial(*args, **kwargs).arguments
        bound_masks = sig.bind_partial(*arg_masks, **kwarg_masks).arguments
    except TypeError:
        return {}, None
    tensors = [n for n, v in bound.items() if _has_value(v)]
    fill: dict = {}
    if len(tensors) == 1 and "mask" in sig.parameters and bound.get("mask") is None:
        fill["mask"] = bound_masks.get(tensors[0])
    elif len(tensors) > 1:
        for n in tensors:
            if f"{n}_mask" in sig.parameters and bound.get(f"{n}_mask") is None:
                fill[f"{n}_mask"] = bound_masks.get(n)
    fill = {k: v for k, v in ((k, _force(v)) for k, v in fill.items()) if _has_value(v)}
    if bound.get("mask") is not None:
        previous = bound["mask"]
    elif "mask" in fill:
        previous = fill["mask"]
    else:
        previous = arg_masks[0] if arg_masks else None
    return fill, previous


def _output_masks(e: _Emitter, layer: Any, path: str, args: tuple, previous: Any, n_outputs: int) -> list[_Val | None]:
    """The Keras masks of a layer's outputs: ``compute_mask(inputs, previous_mask)`` zipped with the outputs (lazily)."""
    import keras

    if not layer.supports_masking:
        return [None] * n_outputs
    rule = _MASK_RULES.get(type(layer).__name__) if type(layer).__module__.split(".")[0] == "keras" else None
    if rule is None and type(layer).compute_mask is keras.layers.Layer.compute_mask:
        flat = _flatten(previous) if previous is not None else []
        return [flat[i] if i < len(flat) else None for i in range(n_outputs)]

    def make() -> list:
        before = _force(previous)
        if rule is not None:
            masks = rule(e, layer, path, args[0] if args else None, before)
        elif _has_value(before):
            raise UnsupportedModelError(
                f"{path}: the output mask of {type(layer).__name__} is not supported; layers that compute masks: "
                + ", ".join(sorted(_MASK_RULES))
            )
        else:
            masks = None
        return _flatten(masks) if masks is not None else []

    shared = _LazyMask(make)
    return [_LazyMask(lambda i=i: shared.get()[i] if i < len(shared.get()) else None) for i in range(n_outputs)]


def _flatten(x: Any) -> list[_Val]:
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in _flatten(item)]
    return [x]


def _check_shape(kt: Any, v: _Val, where: str) -> None:
    expected = tuple(kt.shape[1:])
    ok = len(expected) == len(v.shape) and all(d is None or d == g for d, g in zip(expected, v.shape))
    if not ok:
        raise UnsupportedModelError(
            f"{where}: the exported value has shape {list(v.shape)} where keras has {list(expected)} "
            "(batch excluded); this layer configuration is not supported"
        )


def _convert_call(e: _Emitter, op: Any, path: str, args: tuple, kwargs: dict) -> Any:
    """Dispatch one recorded call to its handler, after checking the call's keyword arguments."""
    import keras

    cls = type(op)
    name = cls.__name__
    is_layer = isinstance(op, keras.layers.Layer)
    if is_layer and _is_model(op):
        return _walk(e, op, _flatten(args[0]) if len(args) == 1 else _flatten(list(args)), path)[0]
    table = _LAYERS if is_layer else _OPS
    handler = table.get(name) if cls.__module__.split(".")[0] == "keras" else None
    if handler is None:
        what = "layer" if is_layer else "keras op"
        if name == "Lambda":
            hint = "Lambda layers hold arbitrary Python code; rewrite it with built-in layers"
        elif cls.__module__.split(".")[0] != "keras":
            hint = f"custom {what}s (defined in {cls.__module__}) are not supported"
        else:
            hint = "supported: " + ", ".join(sorted(table))
        raise UnsupportedModelError(f"{path}: {what} {cls.__qualname__} is not supported ({hint})")
    for key, value in kwargs.items():  # ``training=None/False`` is inference already; anything else must be understood
        if key not in handler.call_kwargs and key.endswith("mask") and _has_value(value):
            takes = sorted(n for n, h in _LAYERS.items() if any(k.endswith("mask") for k in h.call_kwargs))
            raise UnsupportedModelError(
                f"{path}: {name} is given a Keras mask ({key}), which it does not support; layers that use masks: "
                + ", ".join(takes)
            )
        if key not in handler.call_kwargs and value is not None and not (key == "training" and value is False):
            raise UnsupportedModelError(f"{path}: call argument {key}={value!r} is not supported")
    kwargs = {k: v for k, v in kwargs.items() if k in handler.call_kwargs}
    if is_layer:
        _check_plain_layer(op, path)
    return handler(e, op, path, *args, **kwargs)


def _check_plain_layer(layer: Any, path: str) -> None:
    if getattr(layer, "quantization_mode", None):
        raise UnsupportedModelError(f"{path}: quantized layers ({layer.quantization_mode}) are not supported")
    if getattr(layer, "lora_enabled", False):
        raise UnsupportedModelError(f"{path}: LoRA-enabled layers are not supported; merge the LoRA weights first")


def _weights(layer: Any) -> dict[str, np.ndarray]:
    """The layer's own weights by variable name (``kernel``, ``bias``, ...)."""
    return {v.name: np.asarray(w, dtype=np.float32) for v, w in zip(layer.weights, layer.get_weights())}


# --- activations -----------------------------------------------------------------------------

#: Keras activation name -> the single op computing it (parameters become attrs in ``_activation_op``).
_ACTIVATION_OPS: dict[str, str] = {
    "relu": "Relu",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "exponential": "Exp",
    "linear": "Identity",
    "elu": "Elu",
    "selu": "Selu",
    "celu": "Celu",
    "gelu": "Gelu",
    "silu": "Silu",
    "mish": "Mish",
    "softplus": "Softplus",
    "softsign": "Softsign",
    "relu6": "Relu6",
    "hard_sigmoid": "HardSigmoid",
    "hard_silu": "HardSwish",
    "hard_tanh": "HardTanh",
    "log_sigmoid": "LogSigmoid",
    "leaky_relu": "LeakyRelu",
    "softmax": "Softmax",
    "log_softmax": "LogSoftmax",
}
#: activations composed from several ops (see ``_emit_activation``)
_COMPOSED = (
    "tanh_shrink", "soft_shrink", "hard_shrink", "sparse_plus", "sparse_sigmoid", "squareplus", "sparsemax", "threshold",
)


@functools.lru_cache(maxsize=1)
def _activation_table() -> dict[int, str]:
    """id(function) -> activation name, for ``keras.activations`` and the same-named ``keras.ops``."""
    import keras

    table: dict[int, str] = {}
    for name in (*_ACTIVATION_OPS, *_COMPOSED):
        for fn in (getattr(keras.activations, name, None), getattr(keras.ops, name, None)):
            if fn is not None:
                table[id(fn)] = name
    for alias, name in (("swish", "silu"), ("hard_swish", "hard_silu")):
        table[id(keras.activations.get(alias))] = name
    return table


def _activation_spec(fn: Any, path: str) -> tuple[str, dict]:
    """(name, keyword arguments with defaults) of a built-in activation function or a partial of one."""
    if fn is None:
        return "linear", {}
    keywords: dict = {}
    base = fn
    if isinstance(fn, functools.partial) and not fn.args:
        base, keywords = fn.func, dict(fn.keywords)
    name = _activation_table().get(id(base))
    if name is None and getattr(base, "__name__", None) == "glu":
        raise UnsupportedModelError(
            f"{path}: activation 'glu' halves the feature axis, which Keras' own layer shape inference does not "
            "model; it is not supported as a layer activation"
        )
    if name is None:
        raise UnsupportedModelError(
            f"{path}: activation {getattr(fn, '__name__', fn)!r} is not a built-in Keras activation; "
            f"supported: {', '.join(sorted((*_ACTIVATION_OPS, *_COMPOSED, 'swish', 'hard_swish')))}"
        )
    after_x = list(inspect.signature(base).parameters.values())[1:]
    params = {p.name: p.default for p in after_x if p.default is not inspect.Parameter.empty}
    params.update(keywords)
    return name, params


def _activation_op(name: str, p: dict, path: str) -> tuple[str, dict] | None:
    """(op, attrs) for a single-op activation, or None when it needs several ops."""
    op = _ACTIVATION_OPS.get(name)
    if op is None:
        return None
    attrs: dict = {}
    if name in ("softmax", "log_softmax"):
        if p.get("axis", -1) is None:
            raise UnsupportedModelError(f"{path}: {name} over all axes (axis=None) is not supported")
        attrs["axis"] = p.get("axis", -1)
    elif name in ("elu", "celu"):
        attrs["alpha"] = float(p.get("alpha", 1.0))
    elif name == "leaky_relu":
        attrs["alpha"] = float(p["negative_slope"])
    elif name == "gelu":
        attrs["approximate"] = "tanh" if p.get("approximate") else "none"
    elif name == "relu" and (p.get("negative_slope", 0.0), p.get("max_value"), p.get("threshold", 0.0)) != (0.0, None, 0.0):
        return None
    return op, attrs


def _emit_activation(e: _Emitter, fn: Any, x: _Val, path: str) -> _Val:
    """Apply a Keras activation function (as stored on a layer) to ``x``."""
    name, p = _activation_spec(fn, path)
    if name == "linear":
        return x
    single = _activation_op(name, p, path)
    if single is not None:
        return e.same(single[0], x, **single[1])
    if name == "relu":
        return _keras_relu(e, x, p["negative_slope"], p["max_value"], p["threshold"])
    return _composed_activation(e, name, p, x, path)


def _composed_activation(e: _Emitter, name: str, p: dict, x: _Val, path: str) -> _Val:
    """Keras activations without a single shared op, written exactly as Keras' TensorFlow backend computes them."""
    if name == "tanh_shrink":
        return e.same("Sub", x, e.same("Tanh", x))
    if name == "soft_shrink":  # x - clip(x, -t, t) is exactly x -+ t outside [-t, t] and 0 inside
        t = float(p["threshold"])
        return e.same("Sub", x, e.same("Clip", x, min=-t, max=t))
    if name in ("hard_shrink", "threshold"):
        t = float(p["threshold"])
        keep = e.compare(e.same("Abs", x) if name == "hard_shrink" else x, t, "gt")
        return e.where(keep, x, e.const("fill", 0.0 if name == "hard_shrink" else float(p["default_value"])), x)
    if name == "sparse_sigmoid":  # clip(0.5 * (x + 1), 0, 1) equals Keras' piecewise form exactly
        return e.same("Clip", e.scalar_op("Mul", e.scalar_op("Add", x, 1.0), 0.5), min=0.0, max=1.0)
    if name == "sparse_plus":
        sq = e.scalar_op("Mul", e.same("Square", e.scalar_op("Add", x, 1.0)), 0.25)
        inner = e.where(e.compare(x, 1.0, "lt"), sq, x, x)
        return e.where(e.compare(x, -1.0, "le"), e.const("zero", 0.0), inner, x)
    if name == "squareplus":
        root = e.same("Sqrt", e.scalar_op("Add", e.same("Square", x), float(p["b"])))
        return e.scalar_op("Div", e.same("Add", x, root), 2.0)
    if name == "sparsemax":
        return e.same("Sparsemax", x, axis=p.get("axis", -1))
    raise AssertionError(name)


def _keras_relu(e: _Emitter, x: _Val, negative_slope: float, max_value: float | None, threshold: float) -> _Val:
    """Keras' general ReLU (``keras.activations.relu`` / ``layers.ReLU``), term by term as Keras computes it."""
    negative_slope, threshold = float(negative_slope), float(threshold)
    if negative_slope != 0.0 and max_value is None and threshold == 0.0:
        return e.same("LeakyRelu", x, alpha=negative_slope)
    if threshold != 0.0:
        y = e.where(e.compare(x, threshold, "gt"), x, e.const("zero", 0.0), x)
    elif max_value == 6:
        y, max_value = e.same("Relu6", x), None
    else:
        y = e.same("Relu", x)
    if max_value is not None:
        y = e.same("Clip", y, min=0.0, max=float(max_value))
    if negative_slope != 0.0:  # Keras: relu(-x + threshold), and -x + t == t - x exactly
        shifted = e.op("Sub", [e.const("threshold", threshold), x], x.shape) if threshold else e.same("Neg", x)
        negative = e.same("Relu", shifted)
        y = e.same("Sub", y, e.scalar_op("Mul", negative, negative_slope))
    return y


#: attrs of the unary ops that recurrent cells apply with their defaults
_OP_DEFAULTS = {"Elu": {"alpha": 1.0}, "Celu": {"alpha": 1.0}, "Gelu": {"approximate": "none"}}


def _rnn_activation(fn: Any, path: str) -> str:
    """Op name of an activation used inside a recurrent cell (cells apply ops with default attrs only)."""
    name, params = _activation_spec(fn, path)
    single = _activation_op(name, params, path)
    if single is None or name in ("softmax", "log_softmax") or single[1] not in ({}, _OP_DEFAULTS.get(single[0])):
        raise UnsupportedModelError(f"{path}: activation {name!r} with {params} is not supported inside recurrent layers")
    return single[0]


# --- core layers -----------------------------------------------------------------------------


@_layer("Dense")
def _dense(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """``x @ kernel + bias`` on the last axis, then the activation."""
    w = _weights(layer)
    inputs = [x, e.const(f"{path}/kernel", w["kernel"])]
    if layer.use_bias:
        inputs.append(e.const(f"{path}/bias", w["bias"]))
    y = e.op("MatMulAdd", inputs, (*x.shape[:-1], layer.units))
    return _emit_activation(e, layer.activation, y, path)


@_layer("EinsumDense")
def _einsum_dense(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """``einsum(equation, x, kernel) + bias``, then the activation."""
    w = _weights(layer)
    shape = np.einsum(layer.equation, np.zeros((1, *x.shape), np.float32), w["kernel"]).shape[1:]
    y = e.op("Einsum", [x, e.const(f"{path}/kernel", w["kernel"])], shape, equation=layer.equation)
    if "bias" in w:
        y = e.same("Add", y, e.const(f"{path}/bias", w["bias"]))
    return _emit_activation(e, layer.activation, y, path)


@_layer("Activation")
def _activation_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    return _emit_activation(e, layer.activation, x, path)


@_layer("ReLU")
def _relu_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    return _keras_relu(e, x, layer.negative_slope, layer.max_value, layer.threshold)


@_layer("LeakyReLU")
def _leaky_relu_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    return e.same("LeakyRelu", x, alpha=float(layer.negative_slope))


@_layer("ELU")
def _elu_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    return e.same("Elu", x, alpha=float(layer.alpha))


@_layer("Softmax", kwargs=("mask",))
def _softmax_layer(e: _Emitter, layer: Any, path: str, x: _Val, mask: _Val | None = None) -> _Val:
    """Softmax; with a mask (of the input's rank) Keras sets masked inputs to -1e9 and masked outputs to 0."""
    axis = layer.axis
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise UnsupportedModelError(f"{path}: Softmax over several axes {list(axis)} is not supported")
        axis = axis[0]
    if mask is None:
        return e.same("Softmax", x, axis=int(axis))
    if mask.ndim != x.ndim:
        raise UnsupportedModelError(f"{path}: a Softmax mask of shape {list(mask.shape)} for inputs {list(x.shape)}")
    if mask.dtype != "bool":
        mask = e.op("Compare", [mask, e.const("half", 0.5)], mask.shape, "bool", direction="gt")
    y = e.same("Softmax", e.where(mask, x, e.const("large_negative", -1e9), x), axis=int(axis))
    return e.where(mask, y, e.const("zero", 0.0), x)


@_layer("PReLU")
def _prelu_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """relu(x) - alpha * relu(-x), with ``alpha`` broadcast over the shared axes (Keras' formula)."""
    alpha = e.const(f"{path}/alpha", _weights(layer)["alpha"])
    neg = e.same("Mul", e.same("Relu", e.same("Neg", x)), alpha)
    return e.same("Sub", e.same("Relu", x), neg)


@_layer("LayerScale")
def _layer_scale(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """``x * gamma`` (keras.applications' ConvNeXt)."""
    import keras

    return e.same("Mul", x, e.const(f"{path}/gamma", np.asarray(keras.ops.convert_to_numpy(layer.gamma), np.float32)))


@_layer("StochasticDepth", kwargs=("training",))
def _stochastic_depth(e: _Emitter, layer: Any, path: str, x: _Val, training: Any = None) -> _Val:
    """Inference-time identity (keras.applications' ConvNeXt drop path)."""
    if training:
        raise UnsupportedModelError(f"{path}: StochasticDepth in training mode is not supported")
    return x


@_layer("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "GaussianNoise",
        "AlphaDropout", "ActivityRegularization", "Identity")
def _identity(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """Inference-time identity (dropout and noise layers)."""
    return x


@_layer("Rescaling")
def _rescaling(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """``x * scale + offset`` (channels_last scale/offset vectors broadcast on the last axis)."""
    scale, offset = np.asarray(layer.scale, np.float32), np.asarray(layer.offset, np.float32)
    if scale.ndim or offset.ndim:
        import keras

        if keras.config.image_data_format() == "channels_first":
            raise UnsupportedModelError(f"{path}: per-channel Rescaling with channels_first images is not supported")
    y = e.same("Mul", _as_float(e, x), e.const(f"{path}/scale", scale))
    return e.same("Add", y, e.const(f"{path}/offset", offset))


def _as_float(e: _Emitter, x: _Val) -> _Val:
    return x if x.dtype == "float32" else e.op("Cast", [x], x.shape, "float32", dtype="float32")


@_layer("Normalization")
def _normalization(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """``(x - mean) / max(sqrt(variance), epsilon)`` (``invert``: ``mean + x * max(...)``), as Keras computes it."""
    import keras

    if layer.mean is None:
        raise UnsupportedModelError(f"{path}: this Normalization layer is neither adapted nor given mean and variance")
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), np.float32)
    variance = np.asarray(keras.ops.convert_to_numpy(layer.variance), np.float32)
    scale = np.maximum(np.sqrt(variance), np.float32(keras.config.epsilon())).astype(np.float32)
    if mean.ndim == x.ndim:  # Keras keeps them in the input's broadcast shape, batch axis (1) included
        mean, scale = mean[0], scale[0]
    x = _as_float(e, x)
    if layer.invert:
        return e.same("Add", e.same("Mul", x, e.const(f"{path}/scale", scale)), e.const(f"{path}/mean", mean))
    return e.same("Div", e.same("Sub", x, e.const(f"{path}/mean", mean)), e.const(f"{path}/scale", scale))


def _image_axes(layer: Any, x: _Val, path: str) -> tuple[str, list[int]]:
    """(layout, height/width axes including batch) of a 4-D image batch."""
    layout = _layout(layer, path)
    if x.ndim != 4:
        raise UnsupportedModelError(f"{path}: only batches of images [batch, height, width, channels] are supported")
    return layout, ([2, 3] if layout == "channels_first" else [1, 2])


def _resize(e: _Emitter, x: _Val, size: Sequence[int], method: str, antialias: bool, layout: str) -> _Val:
    axes = [2, 3] if layout == "channels_first" else [1, 2]
    shape = list(x.shape)
    for a, n in zip(axes, size):
        shape[a - 1] = int(n)
    return e.op("Resize", [x], shape, size=[int(n) for n in size], method=method, antialias=bool(antialias), layout=layout)


#: Keras interpolation name -> Resize method
_RESIZE_METHODS = {"bilinear": "linear", "nearest": "nearest"}


@_layer("Resizing", kwargs=("training",))
def _resizing(e: _Emitter, layer: Any, path: str, x: _Val, training: Any = None) -> _Val:
    """Keras ``Resizing`` (the same in training and inference); ``crop_to_aspect_ratio`` /
    ``pad_to_aspect_ratio`` crop or pad centrally first."""
    layout, axes = _image_axes(layer, x, path)
    method = _RESIZE_METHODS.get(layer.interpolation)
    if method is None:
        raise UnsupportedModelError(
            f"{path}: interpolation {layer.interpolation!r} is not supported (bilinear and nearest are)"
        )
    x = _as_float(e, x)
    target = (int(layer.height), int(layer.width))
    h, w = (x.shape[a - 1] for a in axes)
    if layer.crop_to_aspect_ratio or layer.pad_to_aspect_ratio:  # the float32 arithmetic of Keras' TF backend
        th, tw = target
        ch = int(np.float32(w * th) / np.float32(tw))
        cw = int(np.float32(h * tw) / np.float32(th))
        if layer.crop_to_aspect_ratio:
            ch, cw = max(min(h, ch), 1), max(min(w, cw), 1)
            h0, w0 = int(np.float32(h - ch) / 2), int(np.float32(w - cw) / 2)
            pads = [[-h0, -(h - ch - h0)], [-w0, -(w - cw - w0)]]
        else:
            ch, cw = max(h, ch), max(w, cw)
            h0, w0 = int(np.float32(ch - h) / 2), int(np.float32(cw - w) / 2)
            pads = [[h0, h0], [w0, w0]]
        full = [[0, 0], [0, 0], *pads] if layout == "channels_first" else [[0, 0], *pads, [0, 0]]
        shape = [d + lo + hi for d, (lo, hi) in zip(x.shape, full[1:])]
        x = e.op("Pad", [x], shape, x.dtype, pads=full, value=float(layer.fill_value))
    return _resize(e, x, target, method, layer.antialias, layout)


@_layer("CenterCrop", kwargs=("training",))
def _center_crop(e: _Emitter, layer: Any, path: str, x: _Val, training: Any = None) -> _Val:
    """The central ``height`` x ``width`` window (offsets ``(size - target) // 2``), in training and inference."""
    layout, axes = _image_axes(layer, x, path)
    h, w = (x.shape[a - 1] for a in axes)
    th, tw = int(layer.height), int(layer.width)
    if h < th or w < tw:
        raise UnsupportedModelError(
            f"{path}: CenterCrop to {th}x{tw} of a smaller {h}x{w} image (Keras resizes it instead) is not supported"
        )
    h0, w0 = (h - th) // 2, (w - tw) // 2
    shape = list(x.shape)
    shape[axes[0] - 1], shape[axes[1] - 1] = th, tw
    return e.op("Slice", [_as_float(e, x)], shape, axes=axes, starts=[h0, w0], stops=[h0 + th, w0 + tw])


def _repeat(e: _Emitter, x: _Val, axis: int, times: int) -> _Val:
    """``ops.repeat(x, times, axis)``: every cell ``times`` times in a row."""
    if times == 1:
        return x
    index = e.const("repeat_index", np.arange(x.shape[axis - 1] * times) // times, np.int32)
    shape = list(x.shape)
    shape[axis - 1] *= times
    return e.op("Gather", [x, index], shape, x.dtype, axis=axis)


@_layer("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsampling(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """Nearest upsampling repeats cells; UpSampling2D(interpolation='bilinear') resizes."""
    size = [int(layer.size)] if type(layer).__name__ == "UpSampling1D" else [int(s) for s in layer.size]
    layout = "channels_last" if len(size) == 1 else _layout(layer, path)
    axes = list(range(2, 2 + len(size))) if layout == "channels_first" else list(range(1, 1 + len(size)))
    interpolation = getattr(layer, "interpolation", "nearest")
    if interpolation != "nearest":
        method = _RESIZE_METHODS.get(interpolation)
        if method is None:
            raise UnsupportedModelError(f"{path}: interpolation {interpolation!r} is not supported (bilinear and nearest are)")
        return _resize(e, x, [x.shape[a - 1] * s for a, s in zip(axes, size)], method, False, layout)
    for a, s in zip(axes, size):
        x = _repeat(e, x, a, s)
    return x


@_layer("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
def _conv_transpose(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """Transposed convolution with TensorFlow's output size and padding (crop ``lo`` = the forward conv's)."""
    w = _weights(layer)
    kernel = w["kernel"]  # [*K, filters, in]
    rank = kernel.ndim - 2
    layout = _layout(layer, path)
    sizes, _ = _spatial(x, layout)
    out_shape = tuple(layer.compute_output_shape((None, *x.shape))[1:])
    out_sizes, _ = _spatial(_Val("", out_shape), layout)
    strides, dilation = list(layer.strides)[:rank], list(layer.dilation_rate)[:rank]
    pads, extra = [], []
    for n, o, k, s, d in zip(sizes, out_sizes, kernel.shape[:rank], strides, dilation):
        span = (k - 1) * d + 1
        lo = max((n - 1) * s + span - o, 0) // 2 if layer.padding == "same" else 0
        hi = (n - 1) * s + span - lo - o
        pads.append([lo, max(hi, 0)])
        extra.append(max(-hi, 0))
    if layout == "channels_first":  # the op takes torch's [in, out, *K] there
        kernel = np.transpose(kernel, (rank + 1, rank, *range(rank)))
    inputs = [x, e.const(f"{path}/kernel", kernel)]
    if "bias" in w:
        inputs.append(e.const(f"{path}/bias", w["bias"]))
    y = e.op("ConvTranspose", inputs, out_shape, strides=strides, padding=pads, dilation=dilation, groups=1,
             layout=layout, output_padding=extra)
    return _emit_activation(e, layer.activation, y, path)


@_layer("TimeDistributed", kwargs=("mask",))
def _time_distributed(e: _Emitter, layer: Any, path: str, x: _Val, mask: Any = None) -> _Val:
    """The wrapped layer on [batch * time, ...], then the time axis split back out.

    Keras hands the wrapped layer the mask of each step only if its ``call``
    takes one; that case is not supported, any other ignores the mask.
    """
    if mask is not None and layer.layer._call_has_mask_arg:
        raise UnsupportedModelError(f"{path}: TimeDistributed of {type(layer.layer).__name__} with a mask is not supported")
    steps, rest = x.shape[0], x.shape[1:]
    merged = e.op("ReshapeDims", [x, x], rest, x.dtype, shape=[f"B*{steps}", *rest])
    outs = _flatten(_convert_call(e, layer.layer, f"{path}/{layer.layer.name}", (merged,), {}))
    if len(outs) != 1:
        raise UnsupportedModelError(f"{path}: TimeDistributed of a layer with {len(outs)} outputs is not supported")
    y = outs[0]
    return e.op("ReshapeDims", [y, x], (steps, *y.shape), y.dtype, shape=["B", steps, *y.shape])


# --- shape layers ----------------------------------------------------------------------------


@_layer("Flatten")
def _flatten_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    if getattr(layer, "data_format", "channels_last") == "channels_first" and x.ndim > 2:
        x = e.op("Transpose", [x], (*x.shape[1:], x.shape[0]), x.dtype, perm=[0, *range(2, x.ndim), 1])
    return e.op("Flatten", [x], (math.prod(x.shape),), x.dtype, start=1)


@_layer("Reshape")
def _reshape_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    target = list(layer.target_shape)
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(x.shape) // known
    if math.prod(target) != math.prod(x.shape):
        raise UnsupportedModelError(f"{path}: cannot reshape {list(x.shape)} to {list(layer.target_shape)}")
    return e.op("Reshape", [x], target, x.dtype, shape=target)


@_layer("Permute")
def _permute(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    dims = list(layer.dims)
    return e.op("Transpose", [x], [x.shape[d - 1] for d in dims], x.dtype, perm=[0, *dims])


@_layer("RepeatVector")
def _repeat_vector(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    y = e.op("Unsqueeze", [x], (1, *x.shape), x.dtype, axes=[1])
    return e.op("BroadcastTo", [y, x], (layer.n, *x.shape), x.dtype, shape=["B", layer.n, *x.shape])  # x gives B


@_layer("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def _zero_padding(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    rank = x.ndim - 2
    pads = [list(p) for p in layer.padding] if rank > 1 else [list(layer.padding)]
    full = _spatial_pairs(layer, x, pads, [0, 0])
    shape = [d + lo + hi for d, (lo, hi) in zip(x.shape, full[1:])]
    return e.op("Pad", [x], shape, x.dtype, pads=full, value=0.0)


@_layer("Cropping1D", "Cropping2D", "Cropping3D")
def _cropping(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    rank = x.ndim - 2
    crops = [list(c) for c in layer.cropping] if rank > 1 else [list(layer.cropping)]
    full = _spatial_pairs(layer, x, [[-lo, -hi] for lo, hi in crops], [0, 0])
    shape = [d + lo + hi for d, (lo, hi) in zip(x.shape, full[1:])]
    return e.op("Pad", [x], shape, x.dtype, pads=full, value=0.0)


def _spatial_pairs(layer: Any, x: _Val, spatial: list, other: list) -> list:
    """Per-dim pairs (batch included) with ``spatial`` on the spatial dims of ``layer``'s data format."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return [other, other, *spatial]
    return [other, *spatial, other]


# --- merge layers and keras.ops arithmetic ---------------------------------------------------

#: Keras merge layers and ``keras.ops`` arithmetic → IR op (Average is a sum, then divided)
_BINARY = {
    "Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Maximum": "Max", "Minimum": "Min", "Average": "Add",
    "Divide": "Div", "TrueDivide": "Div",
}


@_layer("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average")
def _merge(e: _Emitter, layer: Any, path: str, inputs: list) -> _Val:
    """Left fold of the inputs with the layer's op (Average divides the sum by the count)."""
    name = type(layer).__name__
    y = inputs[0]
    for v in inputs[1:]:
        y = e.binary(_BINARY[name], y, v)
    return e.scalar_op("Div", y, float(len(inputs))) if name == "Average" else y


@_layer("Concatenate")
def _concatenate(e: _Emitter, layer: Any, path: str, inputs: list) -> _Val:
    axis = layer.axis % inputs[0].ndim
    shape = list(inputs[0].shape)
    shape[axis - 1] = sum(v.shape[axis - 1] for v in inputs)
    return e.op("Concat", inputs, shape, inputs[0].dtype, axis=axis)


@_keras_op("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum")
def _binary_op(e: _Emitter, op: Any, path: str, a: Any, b: Any) -> _Val:
    """``x + y`` and friends between tensors and Python numbers in a functional graph."""
    ir_op = _BINARY[type(op).__name__]
    if isinstance(a, _Val) and isinstance(b, _Val):
        if a.ndim != b.ndim:
            raise UnsupportedModelError(f"{path}: {ir_op} of tensors of different ranks is not supported")
        return e.op(ir_op, [a, b], np.broadcast_shapes(a.shape, b.shape), a.dtype)
    x, c = (a, b) if isinstance(a, _Val) else (b, a)
    c = np.asarray(c, np.float32)
    if c.ndim > len(x.shape):
        raise UnsupportedModelError(f"{path}: a constant of rank {c.ndim} cannot broadcast against {list(x.shape)}")
    const = e.const(f"{path}/constant", c)
    inputs = [x, const] if isinstance(a, _Val) else [const, x]
    return e.op(ir_op, inputs, np.broadcast_shapes(x.shape, c.shape), x.dtype)


@_keras_op("NotEqual", "Equal", "Greater", "GreaterEqual", "Less", "LessEqual")
def _compare_op(e: _Emitter, op: Any, path: str, a: Any, b: Any) -> _Val:
    """Comparisons (Keras records ``x != 0`` for ``Embedding(mask_zero=True)`` and ``Masking`` masks)."""
    direction = {"NotEqual": "ne", "Equal": "eq", "Greater": "gt", "GreaterEqual": "ge", "Less": "lt", "LessEqual": "le"}
    if not isinstance(a, _Val):
        raise UnsupportedModelError(f"{path}: comparisons with a constant on the left are not supported")
    if isinstance(b, _Val):
        if a.ndim != b.ndim:
            raise UnsupportedModelError(f"{path}: comparing tensors of different ranks is not supported")
        other, shape = b, np.broadcast_shapes(a.shape, b.shape)
    else:
        c = np.asarray(b)
        if c.ndim:
            raise UnsupportedModelError(f"{path}: comparing with a constant array is not supported")
        other, shape = e.const(f"{path}/constant", c, np.int32 if a.dtype == "int32" else np.float32), a.shape
    return e.op("Compare", [a, other], shape, "bool", direction=direction[type(op).__name__])


@_keras_op("Any", "All")
def _any_op(e: _Emitter, op: Any, path: str, x: _Val) -> _Val:
    """``ops.any`` / ``ops.all`` over axes of a boolean tensor (not the batch axis)."""
    axes = list(range(1, x.ndim)) if op.axis is None else sorted(a % x.ndim for a in op.axis)
    if 0 in axes:
        raise UnsupportedModelError(f"{path}: reducing over the batch axis is not supported")
    shape = [1 if i + 1 in axes else d for i, d in enumerate(x.shape)] if op.keepdims else \
        [d for i, d in enumerate(x.shape) if i + 1 not in axes]
    return e.op("Reduce", [_as_bool(e, x)], shape, "bool", reduction=type(op).__name__.lower(), axes=axes,
                keepdims=bool(op.keepdims))


@_keras_op("LogicalOr", "LogicalAnd")
def _logical_op(e: _Emitter, op: Any, path: str, a: _Val, b: _Val) -> _Val:
    if not (isinstance(a, _Val) and isinstance(b, _Val)) or a.ndim != b.ndim:
        raise UnsupportedModelError(f"{path}: {type(op).__name__} of tensors of the same rank only")
    return e.op("Or" if type(op).__name__ == "LogicalOr" else "And", [_as_bool(e, a), _as_bool(e, b)],
                np.broadcast_shapes(a.shape, b.shape), "bool")


@_keras_op("LogicalNot")
def _logical_not_op(e: _Emitter, op: Any, path: str, x: _Val) -> _Val:
    return e.op("Not", [_as_bool(e, x)], x.shape, "bool")


@_keras_op("ZerosLike", "OnesLike")
def _fill_like_op(e: _Emitter, op: Any, path: str, x: _Val) -> _Val:
    """``zeros_like`` / ``ones_like`` (Keras builds ``Concatenate`` masks with them)."""
    dtype = x.dtype if getattr(op, "dtype", None) is None else _input_dtype(op.dtype)
    value = 0 if type(op).__name__ == "ZerosLike" else 1
    fill = e.const("fill", value, {"bool": np.bool_, "int32": np.int32}.get(dtype, np.float32))
    return e.op("BroadcastTo", [fill, x], x.shape, dtype, shape=["B", *x.shape])


@_keras_op("Concatenate")
def _concatenate_op(e: _Emitter, op: Any, path: str, xs: list) -> _Val:
    axis = op.axis % xs[0].ndim
    if axis == 0:
        raise UnsupportedModelError(f"{path}: concatenating along the batch axis is not supported")
    shape = list(xs[0].shape)
    shape[axis - 1] = sum(v.shape[axis - 1] for v in xs)
    return e.op("Concat", xs, shape, xs[0].dtype, axis=axis)


@_keras_op("ConvertToTensor")
def _convert_to_tensor_op(e: _Emitter, op: Any, path: str, x: Any) -> _Val:
    if not isinstance(x, _Val) or getattr(op, "dtype", None) not in (None, x.dtype):
        raise UnsupportedModelError(f"{path}: convert_to_tensor of a constant or to another dtype is not supported")
    return x


@_keras_op("ExpandDims")
def _expand_dims_op(e: _Emitter, op: Any, path: str, x: _Val) -> _Val:
    axes = sorted(a % (x.ndim + 1) for a in (op.axis if isinstance(op.axis, (list, tuple)) else [op.axis]))
    if 0 in axes:
        raise UnsupportedModelError(f"{path}: a new leading axis before the batch is not supported")
    shape = list(x.shape)
    for a in axes:
        shape.insert(a - 1, 1)
    return e.op("Unsqueeze", [x], shape, x.dtype, axes=axes)


@_keras_op("Cast")
def _cast_op(e: _Emitter, op: Any, path: str, x: _Val) -> _Val:
    dtype = _input_dtype(op.dtype)
    return x if dtype == x.dtype else e.op("Cast", [x], x.shape, dtype, dtype=dtype)


@_keras_op("GetItem")
def _get_item(e: _Emitter, op: Any, path: str, x: _Val, key: Any) -> _Val:
    """``x[...]`` with ints and slices after a full batch slice (``x[:, 0]``, ``x[:, 1:-1, ::2]``)."""
    key = key if isinstance(key, tuple) else (key,)
    if not key or key[0] != slice(None) or len(key) > x.ndim or not all(isinstance(k, (int, slice)) for k in key):
        raise UnsupportedModelError(f"{path}: only x[:, i] / x[:, a:b:c] style indexing is supported, got {key!r}")
    axes, starts, stops, steps, dropped, shape = [], [], [], [], [], list(x.shape)
    for axis, k in enumerate(key[1:], start=1):
        if isinstance(k, int):
            dropped.append(axis)
            k = slice(k, k + 1 or None)
        start, stop, step = k.indices(x.shape[axis - 1])
        axes.append(axis)
        starts.append(start)
        stops.append(stop if stop >= 0 else None)  # a negative step runs past index 0
        steps.append(step)
        shape[axis - 1] = len(range(start, stop, step))
    y = e.op("Slice", [x], shape, x.dtype, axes=axes, starts=starts, stops=stops, steps=steps)
    if dropped:
        y = e.op("SqueezeAxes", [y], [d for i, d in enumerate(shape, start=1) if i not in dropped], x.dtype, axes=dropped)
    return y


# --- convolution and pooling -----------------------------------------------------------------


def _layout(layer: Any, path: str) -> str:
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt not in ("channels_last", "channels_first"):
        raise UnsupportedModelError(f"{path}: data_format {fmt!r} is not supported")
    return fmt


def _spatial(x: _Val, layout: str) -> tuple[list[int], int]:
    """(spatial sizes, channels) of ``x``."""
    if layout == "channels_first":
        return list(x.shape[1:]), x.shape[0]
    return list(x.shape[:-1]), x.shape[-1]


def _window(padding: str, sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dilation: Sequence[int],
            path: str) -> tuple[list[list[int]], list[int]]:
    """Explicit [[lo, hi]] padding and output sizes of a Keras window op (``valid``, ``same``, ``causal``)."""
    pads, out = [], []
    for n, k, s, d in zip(sizes, kernel, strides, dilation):
        span = (k - 1) * d + 1
        if padding == "valid":
            lo = hi = 0
        elif padding == "same":
            total = max((-(-n // s) - 1) * s + span - n, 0)
            lo, hi = total // 2, total - total // 2
        elif padding == "causal":
            lo, hi = span - 1, 0
        else:
            raise UnsupportedModelError(f"{path}: padding {padding!r} is not supported (valid, same, causal)")
        size = (n + lo + hi - span) // s + 1
        if size <= 0:
            raise UnsupportedModelError(f"{path}: the window does not fit the input ({n} cells, window {span})")
        pads.append([lo, hi])
        out.append(size)
    return pads, out


def _with_channels(spatial: Sequence[int], channels: int, layout: str) -> tuple[int, ...]:
    return (channels, *spatial) if layout == "channels_first" else (*spatial, channels)


def _conv(e: _Emitter, x: _Val, kernel: np.ndarray, bias: np.ndarray | None, *, strides, padding, dilation, groups: int,
          layout: str, path: str, hint: str = "kernel") -> _Val:
    """A Keras-layout convolution (kernel [*K, I/groups, O])."""
    rank = kernel.ndim - 2
    sizes, _ = _spatial(x, layout)
    pads, out = _window(padding, sizes, kernel.shape[:rank], strides, dilation, path)
    if layout == "channels_first":  # the op takes torch's weight layout [O, I/groups, *K] there
        kernel = np.transpose(kernel, (rank + 1, rank, *range(rank)))
    inputs = [x, e.const(f"{path}/{hint}", kernel)]
    if bias is not None:
        inputs.append(e.const(f"{path}/bias", bias))
    channels = kernel.shape[0] if layout == "channels_first" else kernel.shape[-1]
    return e.op("Conv", inputs, _with_channels(out, channels, layout),
                strides=list(strides), padding=pads, dilation=list(dilation), groups=int(groups), layout=layout)


def _conv_options(layer: Any, rank: int, path: str) -> dict:
    return {
        "strides": list(layer.strides)[:rank],
        "padding": layer.padding,
        "dilation": list(layer.dilation_rate)[:rank],
        "layout": _layout(layer, path),
    }


@_layer("Conv1D", "Conv2D", "Conv3D")
def _conv_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    w = _weights(layer)
    rank = w["kernel"].ndim - 2
    y = _conv(e, x, w["kernel"], w.get("bias"), groups=layer.groups, path=path, **_conv_options(layer, rank, path))
    return _emit_activation(e, layer.activation, y, path)


def _depthwise_kernel(kernel: np.ndarray) -> np.ndarray:
    """[*K, C, M] depthwise kernel → grouped-conv kernel [*K, 1, C*M] (output channel c*M + m, as Keras)."""
    *k, c, m = kernel.shape
    return kernel.reshape(*k, 1, c * m)


@_layer("DepthwiseConv1D", "DepthwiseConv2D")
def _depthwise_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    w = _weights(layer)
    kernel = w["kernel"]
    rank = kernel.ndim - 2
    opts = _conv_options(layer, rank, path)
    y = _conv(e, x, _depthwise_kernel(kernel), w.get("bias"), groups=kernel.shape[-2], path=path, **opts)
    return _emit_activation(e, layer.activation, y, path)


@_layer("SeparableConv1D", "SeparableConv2D")
def _separable_layer(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """Depthwise conv (strides, padding, dilation) then a 1x1 pointwise conv with the bias."""
    w = _weights(layer)
    depth = w["depthwise_kernel"]
    rank = depth.ndim - 2
    opts = _conv_options(layer, rank, path)
    y = _conv(e, x, _depthwise_kernel(depth), None, groups=depth.shape[-2], path=path, hint="depthwise_kernel", **opts)
    y = _conv(e, y, w["pointwise_kernel"], w.get("bias"), strides=[1] * rank, padding="valid", dilation=[1] * rank,
              groups=1, layout=opts["layout"], path=path, hint="pointwise_kernel")
    return _emit_activation(e, layer.activation, y, path)


@_layer("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D")
def _pooling(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """Max / average pooling; Keras' ``same`` average pooling divides by the count of real cells."""
    layout = _layout(layer, path)
    kernel, strides = list(layer.pool_size), list(layer.strides)
    sizes, channels = _spatial(x, layout)
    pads, out = _window(layer.padding, sizes, kernel, strides, [1] * len(kernel), path)
    shape = _with_channels(out, channels, layout)
    if type(layer).__name__.startswith("Max"):
        return e.op("MaxPool", [x], shape, kernel=kernel, strides=strides, padding=pads, layout=layout)
    return e.op("AvgPool", [x], shape, kernel=kernel, strides=strides, padding=pads, count_include_pad=False, layout=layout)


@_layer("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", kwargs=("mask",))
def _global_pooling(e: _Emitter, layer: Any, path: str, x: _Val, mask: _Val | None = None) -> _Val:
    """Global pooling; GlobalAveragePooling1D with a mask averages the kept steps only (sum / count)."""
    layout = _layout(layer, path)
    sizes, channels = _spatial(x, layout)
    axes = list(range(2, x.ndim)) if layout == "channels_first" else list(range(1, x.ndim - 1))
    keep = bool(layer.keepdims)
    shape = _with_channels([1] * len(sizes), channels, layout) if keep else (channels,)
    kind = "max" if "Max" in type(layer).__name__ else "mean"
    if mask is None:
        return e.op("Reduce", [x], shape, reduction=kind, axes=axes, keepdims=keep)
    mask_axis = 1 if layout == "channels_first" else 2  # Keras: where(mask, x, 0).sum / mask.sum over the steps
    m = e.op("Unsqueeze", [mask], (*mask.shape[:mask_axis - 1], 1, *mask.shape[mask_axis - 1:]), "bool", axes=[mask_axis])
    kept = e.where(m, x, e.const("zero", 0.0), x)
    total = e.op("Reduce", [kept], shape, reduction="sum", axes=axes, keepdims=keep)
    count = e.op("Reduce", [e.op("Cast", [m], m.shape, dtype="float32")], shape if keep else (1,), reduction="sum",
                 axes=axes, keepdims=keep)
    return e.op("Div", [total, count], shape)


# --- normalisation and embedding ------------------------------------------------------------


@_layer("BatchNormalization", kwargs=("mask",))
def _batch_norm(e: _Emitter, layer: Any, path: str, x: _Val, mask: Any = None) -> _Val:
    """Inference batch norm with the moving statistics (a mask only matters to training statistics)."""
    if getattr(layer, "renorm", False):
        raise UnsupportedModelError(f"{path}: BatchNormalization(renorm=True) is not supported")
    w = _weights(layer)
    c = w["moving_mean"].shape[0]
    inputs = [x, e.const(f"{path}/moving_mean", w["moving_mean"]), e.const(f"{path}/moving_variance", w["moving_variance"])]
    if layer.scale or layer.center:
        inputs.append(e.const(f"{path}/gamma", w["gamma"] if layer.scale else np.ones(c)))
    if layer.center:
        inputs.append(e.const(f"{path}/beta", w["beta"]))
    return e.same("BatchNorm", *inputs, eps=float(layer.epsilon), axis=int(layer.axis))


@_layer("LayerNormalization", "RMSNormalization")
def _layer_norm(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """LayerNorm over ``axis``; RMSNormalization is the uncentred form."""
    rms = type(layer).__name__ == "RMSNormalization"
    if getattr(layer, "rms_scaling", False):
        raise UnsupportedModelError(
            f"{path}: LayerNormalization(rms_scaling=True) is deprecated in Keras and not supported; use RMSNormalization"
        )
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    axes = sorted(a % x.ndim for a in axis)
    w = _weights(layer)
    param_shape = [x.shape[a - 1] for a in axes]
    inputs: list = [x]
    scale = w.get("scale" if rms else "gamma")
    bias = None if rms else w.get("beta")
    if scale is not None or bias is not None:
        inputs.append(e.const(f"{path}/scale", np.ones(param_shape) if scale is None else scale.reshape(param_shape)))
    if bias is not None:
        inputs.append(e.const(f"{path}/beta", bias.reshape(param_shape)))
    return e.same("LayerNorm", *inputs, axes=axes, eps=float(layer.epsilon), rms=rms)


@_layer("Embedding")
def _embedding(e: _Emitter, layer: Any, path: str, ids: _Val) -> _Val:
    """Row lookup (``mask_zero=True`` adds the mask ``ids != 0``, see ``_MASK_RULES``)."""
    table = _weights(layer)["embeddings"]
    return e.op("Embedding", [ids, e.const(f"{path}/embeddings", table)], (*ids.shape, table.shape[1]))


def _keep_mask(e: _Emitter, x: _Val, value: float) -> _Val:
    """``any(x != value, axis=-1, keepdims=True)``: the steps ``Masking`` keeps."""
    differs = e.op("Compare", [x, e.const("mask_value", value)], x.shape, "bool", direction="ne")
    return e.op("Reduce", [differs], (*x.shape[:-1], 1), "bool", reduction="any", axes=[-1], keepdims=True)


@_layer("Masking")
def _masking(e: _Emitter, layer: Any, path: str, x: _Val) -> _Val:
    """Steps whose features all equal ``mask_value`` become zeros (and are masked downstream)."""
    return e.where(_keep_mask(e, x, float(layer.mask_value)), x, e.const("zero", 0.0), x)


# --- recurrent layers ------------------------------------------------------------------------


def _gru_gates(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Keras GRU gate blocks z, r, h → the op's order r, z, n."""
    z, r, h = np.split(a, 3, axis=axis)
    return np.concatenate([r, z, h], axis=axis)


def _rnn_weights(layer: Any, kind: str) -> tuple[list[np.ndarray], dict]:
    """The op's weights (torch layout) and attrs for one Keras LSTM/GRU/SimpleRNN layer."""
    cell = layer.cell
    w = _weights(cell)
    units = int(layer.units)
    kernel, recurrent = w["kernel"], w["recurrent_kernel"]
    bias = w.get("bias")
    attrs: dict = {"hidden_size": units, "num_layers": 1, "batch_first": True}
    if kind == "GRU":
        kernel, recurrent = _gru_gates(kernel), _gru_gates(recurrent)
        attrs["linear_before_reset"] = bool(cell.reset_after)
        if bias is None:
            b_in = b_rec = np.zeros(3 * units)
        elif cell.reset_after:
            b_in, b_rec = _gru_gates(bias[0]), _gru_gates(bias[1])
        else:  # one bias, added to the input projection
            b_in, b_rec = _gru_gates(bias), np.zeros(3 * units)
        biases = [b_in, b_rec]
    elif kind == "LSTM":  # Keras gate order i, f, c, o is the op's i, f, g, o
        biases = [np.zeros(4 * units) if bias is None else bias]
    else:
        biases = [np.zeros(units) if bias is None else bias, np.zeros(units)]
    return [kernel.T, recurrent.T, *biases], attrs


@_layer("LSTM", "GRU", "SimpleRNN", kwargs=("initial_state", "mask"))
def _rnn_layer(e: _Emitter, layer: Any, path: str, x: _Val, initial_state: Any = None, mask: Any = None) -> Any:
    """One Keras recurrent layer: the shared op with one layer and direction.

    ``go_backwards`` reverses the input and, like Keras, returns the sequence
    in processing order. Returns ``output`` or ``[output, *states]``. With a
    mask it is the ``MaskedRecurrent`` op of ``ops_keras`` (masked steps keep
    the states and repeat the previous output).
    """
    kind = type(layer).__name__
    if layer.stateful:
        raise UnsupportedModelError(f"{path}: stateful recurrent layers are not supported")
    weights, attrs = _rnn_weights(layer, kind)
    attrs["activation"] = _rnn_activation(layer.cell.activation, path)
    if kind != "SimpleRNN":
        attrs["recurrent_activation"] = _rnn_activation(layer.cell.recurrent_activation, path)
    steps, units = x.shape[0], int(layer.units)
    if mask is not None:
        return _masked_rnn(e, layer, path, kind, x, mask, weights, attrs, initial_state)
    if layer.go_backwards:
        x = e.same("Reverse", x, axes=[1])
    inputs: list = [x, *(e.const(f"{path}/{n}", a) for n, a in zip(("kernel", "recurrent_kernel", "bias", "bias"), weights))]
    n_states = 2 if kind == "LSTM" else 1
    if initial_state is not None:
        states = _flatten(initial_state)
        if len(states) != n_states:
            raise UnsupportedModelError(f"{path}: expected {n_states} initial state tensor(s), got {len(states)}")
        inputs += [e.b.op("Unsqueeze", s.name, axes=[0]) for s in states]  # [1, B, H]: one layer, one direction
    y, *finals = e.nodes(kind, inputs, 1 + n_states, **attrs)
    seq = _Val(y, (steps, units))
    last = e.op("Index", [seq], (units,), axis=1, index=-1)
    output = seq if layer.return_sequences else last
    if not layer.return_state:
        return output
    states = [last]
    if kind == "LSTM":
        states.append(e.op("Index", [finals[1]], (units,), axis=0, index=0))
    return [output, *states]


def _masked_rnn(e: _Emitter, layer: Any, path: str, kind: str, x: _Val, mask: Any, weights: list, attrs: dict,
                initial_state: Any) -> Any:
    """A recurrent layer with a [B, T] step mask (Keras' masked ``rnn`` loop)."""
    mask = _flatten(mask)[0]
    if mask.shape != x.shape[:1]:
        raise UnsupportedModelError(f"{path}: a mask of shape {list(mask.shape)} for a sequence of {x.shape[0]} steps")
    if mask.dtype != "bool":
        mask = e.op("Cast", [mask], mask.shape, "bool", dtype="bool")
    steps, units = x.shape[0], int(layer.units)
    n_states = 2 if kind == "LSTM" else 1
    inputs: list = [x, mask, *(e.const(f"{path}/{n}", a) for n, a in zip(("kernel", "recurrent_kernel", "bias", "bias"), weights))]
    if initial_state is not None:
        states = _flatten(initial_state)
        if len(states) != n_states:
            raise UnsupportedModelError(f"{path}: expected {n_states} initial state tensor(s), got {len(states)}")
        inputs += states
    attrs = {k: v for k, v in attrs.items() if k not in ("num_layers", "batch_first")}
    y, *finals = e.nodes("MaskedRecurrent", inputs, 1 + n_states, cell=kind, reverse=bool(layer.go_backwards),
                         zero_output_for_mask=bool(layer.zero_output_for_mask), **attrs)
    seq = _Val(y, (steps, units))
    output = seq if layer.return_sequences else e.op("Index", [seq], (units,), axis=1, index=-1)
    if not layer.return_state:
        return output
    return [output, *(_Val(f, (units,)) for f in finals)]


@_layer("Bidirectional", kwargs=("initial_state", "mask"))
def _bidirectional(e: _Emitter, layer: Any, path: str, x: _Val, initial_state: Any = None, mask: Any = None) -> Any:
    """Forward and backward layers on the same input; the backward sequence is flipped back, then merged."""
    states = None if initial_state is None else _flatten(initial_state)
    half = 0 if states is None else len(states) // 2
    results = []
    parts = (("forward", layer.forward_layer, states and states[:half]), ("backward", layer.backward_layer, states and states[half:]))
    for part, sub, init in parts:
        results.append(_flatten(_convert_call(e, sub, f"{path}/{part}", (x,), {"initial_state": init or None, "mask": mask})))
    (y, *fwd_states), (y_rev, *bwd_states) = results
    if layer.return_sequences:
        y_rev = e.same("Reverse", y_rev, axes=[1])
    mode = layer.merge_mode
    if mode == "concat":
        output: Any = e.op("Concat", [y, y_rev], (*y.shape[:-1], y.shape[-1] + y_rev.shape[-1]), axis=-1)
    elif mode in ("sum", "ave"):
        output = e.same("Add", y, y_rev)
        if mode == "ave":
            output = e.scalar_op("Div", output, 2.0)
    elif mode == "mul":
        output = e.same("Mul", y, y_rev)
    elif mode is None:
        output = [y, y_rev]
    else:
        raise UnsupportedModelError(f"{path}: merge_mode {mode!r} is not supported")
    if layer.return_state:
        return [*_flatten(output), *fwd_states, *bwd_states]
    return output


# --- attention -------------------------------------------------------------------------------


@_layer("MultiHeadAttention", kwargs=("query", "value", "key", "attention_mask", "use_causal_mask", "query_mask", "value_mask", "key_mask"))
def _multi_head_attention(e: _Emitter, layer: Any, path: str, query: _Val, value: _Val, key: _Val | None = None,
                          query_mask: Any = None, value_mask: Any = None, key_mask: Any = None,
                          attention_mask: _Val | None = None, return_attention_scores: bool = False,
                          use_causal_mask: bool = False) -> _Val:
    """Keras MultiHeadAttention over the sequence axis of [B, T, D] inputs (dropout is inference identity).

    Keras masks of the query, value and key and ``attention_mask`` combine into
    one [B, T, S] mask, as in Keras; masked scores get -1e9 added (a query with
    no key left attends uniformly, as Keras' large negative fill does).
    """
    if key is None:
        key, key_mask = value, None
    if return_attention_scores:
        raise UnsupportedModelError(f"{path}: return_attention_scores is not supported")
    if getattr(layer, "_use_gate", False) or getattr(layer, "_sliding_window", None) is not None:
        raise UnsupportedModelError(f"{path}: MultiHeadAttention with use_gate or sliding_window is not supported")
    axes = getattr(layer, "_attention_axes", None)
    if query.ndim != 3 or value.ndim != 3 or key.ndim != 3 or axes not in (None, (1,), [1]):
        raise UnsupportedModelError(f"{path}: only [batch, sequence, features] inputs attended over the sequence are supported")
    heads = int(layer.num_heads)
    dense = {n: _weights(getattr(layer, f"{n}_dense")) for n in ("query", "key", "value", "output")}
    params = []
    for n in ("query", "key", "value"):
        kernel = dense[n]["kernel"]
        params += [kernel.reshape(kernel.shape[0], -1), dense[n].get("bias", np.zeros(kernel.shape[1:])).reshape(-1)]
    out_kernel = dense["output"]["kernel"]
    if out_kernel.ndim != 3:
        raise UnsupportedModelError(f"{path}: output_shape {list(out_kernel.shape[2:])} is not supported (one feature axis only)")
    out_dim = out_kernel.shape[-1]
    params += [out_kernel.reshape(-1, out_dim), dense["output"].get("bias", np.zeros(out_dim))]
    names = [f"{n}_{w}" for n in ("query", "key", "value", "output") for w in ("kernel", "bias")]
    inputs = [query, key, value, *(e.const(f"{path}/{n}", a) for n, a in zip(names, params))]
    steps = (query.shape[0], key.shape[0])
    mask = _attention_mask(e, steps, _flatten(query_mask)[0], _flatten(value_mask)[0], _flatten(key_mask)[0],
                           attention_mask, use_causal_mask, path)
    causal = bool(use_causal_mask) and mask is None
    if mask is not None:  # [B, T, S] → additive [B, 1, T, S], broadcast over heads
        bias = e.where(mask, e.const("zero", 0.0), e.const("large_negative", -1e9), _Val("", steps))
        inputs.append(e.op("Unsqueeze", [bias], (1, *steps), axes=[1]))
    return e.op("MultiHeadAttention", inputs, (query.shape[0], out_dim), num_heads=heads,
                scale=1.0 / math.sqrt(float(layer.key_dim)), is_causal=causal, mask_kind="additive")


def _as_bool(e: _Emitter, m: _Val) -> _Val:
    return m if m.dtype == "bool" else e.op("Cast", [m], m.shape, "bool", dtype="bool")


def _attention_mask(e: _Emitter, steps: tuple[int, int], query_mask: _Val | None, value_mask: _Val | None,
                    key_mask: _Val | None, attention_mask: _Val | None, causal: bool, path: str) -> _Val | None:
    """Keras' combined [B, T, S] attention mask: query[:, :, None] & value[:, None, :] & key[:, None, :] & causal & explicit."""
    t, s = steps
    parts = []
    if query_mask is not None:
        parts.append(e.op("Unsqueeze", [_as_bool(e, query_mask)], (t, 1), "bool", axes=[2]))
    for m in (value_mask, key_mask):
        if m is not None:
            parts.append(e.op("Unsqueeze", [_as_bool(e, m)], (1, s), "bool", axes=[1]))
    if not parts and attention_mask is None:
        return None  # causal alone is the op's own causal mask
    if causal:
        parts.append(_Val(e.const("causal_mask", np.tril(np.ones((t, s), bool)), np.bool_), (t, s), "bool"))
    if attention_mask is not None:
        parts.append(_as_bool(e, attention_mask))
    mask = parts[0]
    for m in parts[1:]:
        mask = e.op("And", [mask, m], np.broadcast_shapes(mask.shape, m.shape), "bool")
    if mask.shape != (t, s):
        mask = e.op("BroadcastTo", [mask, mask], (t, s), "bool", shape=["B", t, s])
    return mask


@_layer("Attention", kwargs=("mask", "use_causal_mask"))
def _dot_attention(e: _Emitter, layer: Any, path: str, inputs: list, mask: Any = None, return_attention_scores: bool = False,
                   use_causal_mask: bool = False) -> _Val:
    """Keras (Luong) ``Attention`` with ``score_mode="dot"``: softmax(scale * q kᵀ, masked) v, masked queries zeroed."""
    if layer.score_mode != "dot" or return_attention_scores:
        raise UnsupportedModelError(f"{path}: only Attention(score_mode='dot') without returned scores is supported")
    q, v = inputs[0], inputs[1]
    k = inputs[2] if len(inputs) > 2 else v
    masks = list(_flatten(mask)) + [None, None] if mask is not None else [None, None]
    q_mask, v_mask = masks[0], masks[1]
    t, s = q.shape[0], k.shape[0]
    scores = e.op("Einsum", [q, k], (t, s), equation="btd,bsd->bts")
    if layer.use_scale:
        scores = e.same("Mul", scores, e.const(f"{path}/scale", _weights(layer)["scale"]))
    keep = _attention_mask(e, (t, s), None, v_mask, None, None, use_causal_mask, path) if (v_mask is not None) else None
    if keep is None and use_causal_mask:
        keep = _Val(e.const("causal_mask", np.tril(np.ones((t, s), bool)), np.bool_), (t, s), "bool")
    if keep is not None:  # Keras: where(~mask, scores - 1e9, scores)
        scores = e.where(keep, scores, e.scalar_op("Sub", scores, 1e9), scores)
    weights = e.same("Softmax", scores, axis=-1)
    out = e.op("Einsum", [weights, v], (t, v.shape[-1]), equation="bts,bsd->btd")
    if q_mask is not None:
        qm = e.op("Unsqueeze", [_as_bool(e, q_mask)], (t, 1), "bool", axes=[2])
        out = e.where(qm, out, e.const("zero", 0.0), out)
    return out


# --- output masks (``compute_mask``) -----------------------------------------------------------

MaskRule = Callable[[_Emitter, Any, str, Any, Any], Any]
#: Keras layers whose ``compute_mask`` is not the identity → their output masks (layers whose
#: ``compute_mask`` is Keras' default pass ``previous_mask`` on, see ``_output_masks``)
_MASK_RULES: dict[str, MaskRule] = {}


def _mask_rule(*names: str) -> Callable[[MaskRule], MaskRule]:
    def deco(fn: MaskRule) -> MaskRule:
        for n in names:
            _MASK_RULES[n] = fn
        return fn

    return deco


@_mask_rule("Embedding")
def _embedding_mask(e: _Emitter, layer: Any, path: str, ids: _Val, previous: Any) -> Any:
    if not layer.mask_zero:
        return None
    return e.op("Compare", [ids, e.const("zero", 0, np.int32 if ids.dtype == "int32" else np.float32)], ids.shape, "bool",
                direction="ne")


@_mask_rule("Masking")
def _masking_mask(e: _Emitter, layer: Any, path: str, x: _Val, previous: Any) -> Any:
    keep = _keep_mask(e, x, float(layer.mask_value))
    return e.op("SqueezeAxes", [keep], x.shape[:-1], "bool", axes=[x.ndim - 1])


@_mask_rule("LSTM", "GRU", "SimpleRNN")
def _rnn_mask(e: _Emitter, layer: Any, path: str, x: Any, previous: Any) -> Any:
    mask = _flatten(previous)[0] if previous is not None else None
    out = mask if layer.return_sequences else None
    return [out, *([None] * (2 if type(layer).__name__ == "LSTM" else 1))] if layer.return_state else out


@_mask_rule("Bidirectional")
def _bidirectional_mask(e: _Emitter, layer: Any, path: str, x: Any, previous: Any) -> Any:
    mask = _flatten(previous)[0] if previous is not None else None
    out = mask if layer.return_sequences else None
    return [out, out] if layer.merge_mode is None else out  # the states get no mask


@_mask_rule("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def _merge_mask(e: _Emitter, layer: Any, path: str, inputs: Any, previous: Any) -> Any:
    """The OR of the inputs' masks, or none when one input has none."""
    masks = _flatten(previous) if previous is not None else [None]
    if any(m is None for m in masks):
        return None
    out = _as_bool(e, masks[0])
    for m in masks[1:]:
        out = e.op("Or", [out, _as_bool(e, m)], np.broadcast_shapes(out.shape, m.shape), "bool")
    return out


@_mask_rule("Dot")
def _unsupported_mask(e: _Emitter, layer: Any, path: str, inputs: Any, previous: Any) -> Any:
    if previous is not None and _has_value(previous):
        raise UnsupportedModelError(f"{path}: masked inputs to {type(layer).__name__} are not supported")
    return None


@_mask_rule("GlobalAveragePooling1D")
def _no_mask(e: _Emitter, layer: Any, path: str, x: Any, previous: Any) -> Any:
    return None


@_mask_rule("Attention")
def _attention_output_mask(e: _Emitter, layer: Any, path: str, inputs: Any, previous: Any) -> Any:
    return _flatten(previous)[0] if previous is not None else None


# --- entry points ----------------------------------------------------------------------------


def _input_dtype(dtype: Any) -> str:
    text = str(dtype)
    if text == "bool":
        return "bool"
    return "int32" if text.startswith(("int", "uint")) else "float32"


def build_inputs(model: Any, sample_input: Any, input_shape: Any, builder: GraphBuilder) -> NetworkInputs:
    """One graph input per Keras input, named and typed as in the model.

    Shapes come from the model; ``sample_input`` (one array, a list, or a dict by
    input name) or ``input_shape`` are needed only where the model leaves a
    non-batch dimension open.
    """
    graph = _graph_of(model, _safe(model.name))
    names, dtypes, shapes = [], [], []
    for kt in graph.inputs:
        name = _safe(kt.name)
        while name in names:
            name += "_"
        names.append(name)
        dtypes.append(_input_dtype(kt.dtype))
        shapes.append((None, *kt.shape[1:]))
    if sample_input is None and input_shape is None:
        open_dims = [n for n, s in zip(names, shapes) if None in s[1:]]
        if open_dims:
            raise InputError(f"input(s) {open_dims} of this Keras model have open dimensions; pass sample_input= or input_shape=")
        input_shape = shapes if len(shapes) > 1 else shapes[0]
    return build_network_inputs(builder, names, sample_input, input_shape, dtypes)


def convert_keras_model(model: Any, x: NetworkInputs, ctx: ExportContext) -> dict:
    """Convert a Sequential or functional Keras model applied to the graph inputs ``x``."""
    if isinstance(x, str):  # called without build_inputs: one 2-D float input
        x = NetworkInputs([InputSpec(x, "float32", (None, int(_graph_of(model, model.name).inputs[0].shape[-1])))], None)
    inputs = [_Val(spec.name, tuple(spec.shape[1:]), spec.dtype) for spec in x.specs]
    outputs, _ = _walk(_Emitter(ctx.builder), model, inputs, _safe(model.name))
    fold_batch_norm(ctx.builder, [v.name for v in outputs])
    names: list[str] = []
    for n in getattr(_graph_of(model, model.name), "output_names", None) or []:
        n = _safe(n)
        while n in names:  # the same layer's output returned twice
            n += "_"
        names.append(n)
    return network_outputs([v.name for v in outputs], names if len(names) == len(outputs) else None)


def native_method(model: Any, method: str, inputs: list) -> np.ndarray:
    """``predict`` of a Keras model: its first output for ``inputs`` in inference mode, as numpy."""
    import keras

    out = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return np.asarray(keras.ops.convert_to_numpy(keras.tree.flatten(out)[0]))


def load_keras_file(path: str) -> Any:
    """Load a ``.keras`` file: its config is checked first, then ``keras.saving.load_model(safe_mode=True)``.

    A Lambda layer or a class that is not Keras' own is refused before anything
    is deserialized, naming the layer's path.
    """
    import keras

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        config = None  # not a Keras 3 archive: keras.saving reports what it is
    if config is not None:
        _scan_config(config, "", os.fspath(path))
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def _scan_config(cfg: Any, where: str, file: str) -> None:
    """Refuse Lambda layers and non-Keras classes anywhere in a saved model's config."""
    if isinstance(cfg, list):
        for item in cfg:
            _scan_config(item, where, file)
        return
    if not isinstance(cfg, dict):
        return
    cls = cfg.get("class_name")
    if isinstance(cls, str) and "config" in cfg and cls != "__keras_tensor__":
        inner = cfg["config"]
        name = inner.get("name") if isinstance(inner, dict) else None
        here = (f"{where}/{name}" if where else name) if isinstance(name, str) else where
        module = cfg.get("module")
        if cls == "Lambda":
            raise UnsupportedModelError(f"{file}: {here}: Lambda layers hold arbitrary Python code and are not supported")
        if not (isinstance(module, str) and module.split(".")[0] == "keras"):
            raise UnsupportedModelError(f"{file}: {here}: custom class {cls!r} is not supported (only Keras' own layers)")
        _scan_config(inner, here, file)
        return
    for value in cfg.values():
        _scan_config(value, where, file)


convert_keras_model.build_inputs = build_inputs
convert_keras_model.native_method = native_method

for _key in ("keras.Sequential", "keras.Functional", "keras.Model"):
    register_converter(_key, convert_keras_model)
register_file_loader(".keras", load_keras_file)
