"""Variable-length (sequence) axes: bucketing them like the batch.

A graph input may have ``None`` past the batch axis: a variable-length axis,
such as the tokens of a text model. Compiling once per length would recompile
for nearly every request, so the runtime pads those axes to a bucket, as it
pads the batch, when the exporter recorded that padding is exact.

``metadata["sequence"]`` (written by the PyTorch exporter, checked at load by
:func:`check_sequence`)::

    {"axes":    [[input name, axis, max length or null, group], ...],
     "outputs": [[output name, axis, input name, input axis], ...],
     "pad":     bool}

``axes`` lists every ``None`` axis of the graph inputs, with the longest
length the model accepts (a position-embedding table bounds it) and a group
number: axes of one group must have the same length in a call (the model
requires it, e.g. token ids and their attention mask). ``outputs``
lists the output axes whose size is the length of an input axis. ``pad``:
zero-padding every variable axis at its end leaves each output exact once
its ``outputs`` axes are cut back to the input's length (a model attends to
padding unless an attention mask, also zero-padded, or causal attention
keeps the real positions from seeing it). With ``pad`` the length is padded
to the next power of two (at most the max length); without it, every
distinct length compiles its own program (cached like any shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..format.errors import InputError, MLEFormatError, UnsupportedModelError
from ..format.graph import Graph

__all__ = ["SequenceSpec", "check_sequence", "pad_lengths", "cut_outputs", "refuse_variable_axes"]


@dataclass(frozen=True)
class SequenceSpec:
    """The validated ``metadata["sequence"]``: per graph input its variable axes and their max lengths."""

    axes: Mapping[str, Mapping[int, tuple[int | None, int]]]
    outputs: Mapping[str, tuple[tuple[int, str, int], ...]]
    pad: bool


def _bad(what: str, value: Any) -> MLEFormatError:
    return MLEFormatError(f"metadata.sequence: {what}, found {value!r:.200}")


def check_sequence(meta: Any, graph: Graph) -> SequenceSpec | None:
    """Validate ``metadata["sequence"]`` against the graph; ``None`` when no input has a variable axis.

    Every ``None`` axis past the batch must be listed, and nothing else.
    """
    variable = {(v.name, i) for v in graph.inputs for i, d in enumerate(v.shape) if i > 0 and d is None}
    if meta is None:
        if variable:
            raise MLEFormatError(f"graph inputs have variable-length axes {sorted(variable)} but metadata.sequence is missing")
        return None
    if not isinstance(meta, dict) or set(meta) != {"axes", "outputs", "pad"} or not isinstance(meta["pad"], bool):
        raise _bad("expected a map with axes, outputs and pad (a bool)", meta)
    axes: dict[str, dict[int, tuple[int | None, int]]] = {}
    entries = meta["axes"]
    if not isinstance(entries, list) or len(entries) > 64:
        raise _bad("axes must be a list of at most 64 entries", entries)
    for e in entries:
        ok = isinstance(e, list) and len(e) == 4 and isinstance(e[0], str) and type(e[1]) is int and (e[0], e[1]) in variable \
            and (e[2] is None or type(e[2]) is int and 1 <= e[2] < 2**31) and type(e[3]) is int and 0 <= e[3] < 64
        if not ok:
            raise _bad("each axes entry must be [input, axis, max length or null, group 0-63] naming a None axis of a graph input", e)
        axes.setdefault(e[0], {})[e[1]] = (e[2], e[3])
    if {(n, a) for n, d in axes.items() for a in d} != variable:
        raise _bad(f"axes must list every variable-length input axis {sorted(variable)}", entries)
    outputs: dict[str, list[tuple[int, str, int]]] = {}
    follow = meta["outputs"]
    if not isinstance(follow, list) or len(follow) > 256:
        raise _bad("outputs must be a list of at most 256 entries", follow)
    for e in follow:
        ok = isinstance(e, list) and len(e) == 4 and isinstance(e[0], str) and e[0] in graph.outputs \
            and type(e[1]) is int and 0 < e[1] < 64 and isinstance(e[2], str) and type(e[3]) is int and (e[2], e[3]) in variable
        if not ok:
            raise _bad("each outputs entry must be [output, axis >= 1, input, input axis] naming a graph output and a variable axis", e)
        outputs.setdefault(e[0], []).append((e[1], e[2], e[3]))
    return SequenceSpec(axes, {k: tuple(v) for k, v in outputs.items()}, meta["pad"])


def _bucket(n: int, limit: int | None) -> int:
    b = 1 << (n - 1).bit_length()
    return n if limit is None else max(n, min(b, limit))


def pad_lengths(spec: SequenceSpec, names: Sequence[str], arrays: Sequence[np.ndarray], bucket: bool) -> tuple[list[np.ndarray], dict[tuple[str, int], int]]:
    """Zero-pad the variable axes to their bucket (when ``bucket`` and ``spec.pad``); also return each axis' real length.

    A length past the axis' max length is an :class:`InputError`.
    """
    lengths: dict[tuple[str, int], int] = {}
    groups: dict[int, tuple[str, int, int]] = {}
    out = []
    for name, arr in zip(names, arrays):
        target = list(arr.shape)
        for axis, (limit, group) in spec.axes.get(name, {}).items():
            n = arr.shape[axis]
            if n == 0 or (limit is not None and n > limit):
                raise InputError(f"input {name!r}: length {n} on axis {axis}; this model takes lengths 1 to {limit or 'any'}")
            first = groups.setdefault(group, (name, axis, n))
            if first[2] != n:
                raise InputError(f"input {name!r} has length {n} on axis {axis}, but input {first[0]!r} has {first[2]} on axis {first[1]}; "
                                 "the model needs them equal")
            lengths[(name, axis)] = n
            if bucket and spec.pad:
                target[axis] = _bucket(n, limit)
        if tuple(target) != arr.shape:
            padded = np.zeros(target, arr.dtype)
            padded[tuple(slice(0, n) for n in arr.shape)] = arr
            arr = padded
        out.append(arr)
    return out, lengths


def cut_outputs(spec: SequenceSpec, outputs: Sequence[str], values: Sequence[np.ndarray], lengths: Mapping[tuple[str, int], int]) -> list[np.ndarray]:
    """Cut each output's variable axes back to the real lengths of the inputs they follow."""
    out = []
    for name, value in zip(outputs, values):
        cut = [slice(None)] * value.ndim
        for axis, in_name, in_axis in spec.outputs.get(name, ()):
            if axis < value.ndim:
                cut[axis] = slice(0, lengths[(in_name, in_axis)])
        out.append(value[tuple(cut)] if spec.outputs.get(name) else value)
    return out


def refuse_variable_axes(graph: Graph, job: str) -> None:
    """UnsupportedModelError when a graph input has a variable-length axis that ``job`` cannot take (none: return)."""
    axes = [f"{info.name}[{axis}]" for info in graph.inputs for axis, d in enumerate(info.shape) if axis and d is None]
    if axes:
        raise UnsupportedModelError(
            f"{job} takes inputs of fixed shape past the batch; this model has variable-length axes {axes}. "
            "Score it with Model.predict (which buckets the lengths), or export it with a fixed input_shape"
        )
