"""Inputs and outputs shared by the network exporters (PyTorch, Flax; usable by Keras).

``mlejax.export_model`` calls a converter's ``build_inputs(model, sample_input,
input_shape, builder)`` when it has one; network converters use
:func:`build_network_inputs` for it. The result is a list of graph input names
that also carries each input's :class:`InputSpec` and example arrays for
tracing, and is what the converter then receives as ``x``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..format.errors import InputError
from ..format.graph import GraphBuilder

__all__ = ["InputSpec", "NetworkInputs", "build_network_inputs", "network_outputs", "as_input_list", "input_count", "positional_names"]


@dataclass(frozen=True)
class InputSpec:
    """One network input: name, dtype (``float32``, ``int32`` or ``bool``) and shape (``None`` = batch)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


class NetworkInputs(list):
    """Graph input names (a ``list[str]``) with their specs and the user's sample arrays (or ``None``)."""

    def __init__(self, specs: Sequence[InputSpec], samples: Sequence[np.ndarray] | None) -> None:
        super().__init__(s.name for s in specs)
        self.specs = list(specs)
        self.samples = None if samples is None else list(samples)

    def examples(self, batch: int, seed: int = 0) -> list[np.ndarray]:
        """Arrays of ``batch`` rows for tracing: the sample rows (tiled as needed) or made-up values.

        Made-up floats are standard normal and integers are 0, so embedding ids stay in range.
        """
        if self.samples is not None:
            return [np.resize(a, (batch, *a.shape[1:])).astype(s.dtype) for a, s in zip(self.samples, self.specs)]
        rng = np.random.default_rng(seed)
        out = []
        for s in self.specs:
            shape = (batch, *s.shape[1:])
            out.append(rng.standard_normal(shape).astype(np.float32) if s.dtype == "float32" else np.zeros(shape, s.dtype))
        return out


def _numpy(x: Any) -> np.ndarray:
    if type(x).__module__.split(".")[0] == "torch":
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_input_list(sample_input: Any, names: Sequence[str]) -> list[Any]:
    """``sample_input`` as one entry per input: a single array, a list/tuple, or a dict keyed by input name."""
    if isinstance(sample_input, dict):
        missing = [n for n in names if n not in sample_input]
        if missing:
            raise InputError(f"sample_input has no entry for input(s) {missing}; the model takes {list(names)}")
        return [sample_input[n] for n in names]
    if isinstance(sample_input, (list, tuple)):
        return list(sample_input)
    return [sample_input]


def input_count(sample_input: Any, input_shape: Any) -> int:
    """How many inputs ``sample_input`` (array, list/tuple, dict) or ``input_shape`` (one or several shapes) describe."""
    if sample_input is not None:
        return len(sample_input) if isinstance(sample_input, (dict, list, tuple)) else 1
    if input_shape is not None and not all(isinstance(d, (int, type(None))) for d in input_shape):
        return len(input_shape)
    return 1


def positional_names(fn: Any, count: int) -> list[str]:
    """Names of ``fn``'s first ``count`` positional parameters (``*xs`` gives ``xs_0``, ``xs_1``, ...)."""
    names: list[str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names += [f"{p.name}_{i}" for i in range(max(count - len(names), 0))]
    if len(names) < count:
        raise InputError(f"{getattr(fn, '__qualname__', fn)} takes {len(names)} positional input(s), but {count} were given")
    return names[:count]


def _dtype_of(arr: np.ndarray) -> str:
    if arr.dtype.kind == "b":
        return "bool"
    if arr.dtype.kind in "iu":
        return "int32"
    if arr.dtype.kind == "f":
        return "float32"
    raise InputError(f"sample input of dtype {arr.dtype} is not supported; use floats, integers or booleans")


def build_network_inputs(
    builder: GraphBuilder,
    names: Sequence[str],
    sample_input: Any = None,
    input_shape: Any = None,
    dtypes: Sequence[str] | None = None,
) -> NetworkInputs:
    """Add one graph input per name, shaped like ``sample_input`` or ``input_shape`` with a symbolic batch.

    ``input_shape`` is one shape (with the batch dimension first, whose value is
    ignored) or a list of shapes, one per input. ``dtypes`` defaults to the
    sample's dtypes, else float32. Integer inputs are stored as int32.
    """
    samples = None
    if sample_input is not None:
        samples = [_numpy(a) for a in as_input_list(sample_input, names)]
        shapes = [a.shape for a in samples]
        dtypes = dtypes or [_dtype_of(a) for a in samples]
    elif input_shape is not None:
        shapes = [input_shape] if all(isinstance(d, (int, type(None))) for d in input_shape) else list(input_shape)
    else:
        raise InputError("cannot tell the network's input shape: pass sample_input= or input_shape=")
    if len(shapes) != len(names):
        raise InputError(f"the model takes {len(names)} input(s) {list(names)}, but {len(shapes)} shape(s) were given")
    dtypes = list(dtypes or ["float32"] * len(names))
    specs = []
    for name, shape, dtype in zip(names, shapes, dtypes):
        if len(shape) < 1:
            raise InputError(f"input {name!r}: a shape needs a batch dimension first, got {tuple(shape)}")
        spec = InputSpec(name, dtype, (None, *(int(d) for d in shape[1:])))
        builder.add_input(spec.name, spec.dtype, spec.shape)
        specs.append(spec)
    if samples is not None:
        samples = [a.astype(s.dtype) for a, s in zip(samples, specs)]
    return NetworkInputs(specs, samples)


def network_outputs(values: Sequence[str], names: Sequence[str] | None = None) -> dict:
    """Converter result for a network: the first output is ``"output"`` (``predict``), others ``"output:<name>"``."""
    names = list(names) if names is not None else [str(i) for i in range(len(values))]
    outputs: dict[str, Any] = {"output": values[0]}
    for name, value in zip(names[1:], values[1:]):
        outputs[f"output:{name}"] = value
    outputs["__methods__"] = {"predict"}
    return outputs
