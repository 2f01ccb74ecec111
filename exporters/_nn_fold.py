"""Export-time graph pass: fold inference batch norms into the convolution or dense layer before them.

A ``BatchNorm`` node computes ``(y - mean) * f + beta`` per channel with
``f = gamma / sqrt(var + eps)``. When ``y`` is the output of a ``Conv`` (or a
``MatMulAdd``/``MatMul`` with a stored ``[in, out]`` weight) that nothing else
reads, the pair is one layer with weight ``w * f`` (scaled along the output
channel) and bias ``(b - mean) * f + beta``. The folded layer saves a pass
over the activation at every call. The new tensors are computed in float64 and
stored in the weight's dtype, so the result differs from the unfolded graph by
float32 rounding only (about 1e-7 relative).

The pass edits a :class:`~mlejax.format.graph.GraphBuilder` in place before
it is built; the folded layer takes over the batch norm's output name, so
every value name the converter returned stays valid.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np

from ..format.graph import GraphBuilder, Node

_LAYERS = ("Conv", "MatMulAdd", "MatMul")


def fold_batch_norm(builder: GraphBuilder, keep: Iterable[str] = ()) -> int:
    """Fold every foldable ``BatchNorm`` into the layer that produces its input; return how many were folded.

    ``keep``: value names that must survive (the converter's outputs, which
    are not graph outputs yet); a layer whose output is kept is not folded.
    """
    nodes: list[Node] = builder._nodes  # the builder's node list, edited in place
    tensors = builder.tensors
    kept = set(keep) | set(builder.outputs.values())
    uses = Counter(name for node in nodes for name in node.inputs)
    producer = {out: i for i, node in enumerate(nodes) for out in node.outputs}
    dropped: set[int] = set()
    touched: set[str] = set()
    for i, bn in enumerate(nodes):
        if bn.op != "BatchNorm" or bn.version != 1:
            continue
        j = producer.get(bn.inputs[0])
        if j is None or j in dropped or uses[bn.inputs[0]] != 1 or bn.inputs[0] in kept:
            continue
        folded = _fold(nodes[j], bn, tensors, builder)
        if folded is None:
            continue
        touched.update(nodes[j].inputs[1:])
        touched.update(bn.inputs[1:])
        nodes[j] = folded
        dropped.add(i)
    if dropped:
        nodes[:] = [n for k, n in enumerate(nodes) if k not in dropped]
        still = {name for node in nodes for name in node.inputs} | kept
        for name in touched - still:
            tensors.pop(name, None)
    return len(dropped)


def _stored(tensors: dict, names: Iterable[str]) -> list[np.ndarray] | None:
    out = []
    for name in names:
        if name not in tensors:
            return None
        out.append(np.asarray(tensors[name]))
    return out


def _fold(layer: Node, bn: Node, tensors: dict, builder: GraphBuilder) -> Node | None:
    """The layer with ``bn`` folded in, or None when the pair does not fold."""
    if layer.op not in _LAYERS or layer.version != 1 or len(layer.outputs) != 1:
        return None
    params = _stored(tensors, layer.inputs[1:])
    stats = _stored(tensors, bn.inputs[1:])
    if params is None or stats is None or not params or len(stats) < 2:
        return None
    w, b = params[0], (params[1] if len(params) > 1 else None)
    if layer.op == "Conv":
        if w.ndim < 3:
            return None
        first = layer.attrs.get("layout", "channels_first") == "channels_first"
        channel_axis, out_axis = (1, 0) if first else (w.ndim - 1, w.ndim - 1)
        ndim = w.ndim  # the activation has as many dims as the weight
    else:
        if w.ndim != 2 or (layer.op == "MatMul" and len(params) != 1):
            return None
        channel_axis, out_axis, ndim = -1, 1, None
    if not _same_axis(bn.attrs.get("axis", 1), channel_axis, ndim):
        return None
    channels = w.shape[out_axis]
    mean, var, *affine = (np.asarray(s, np.float64).reshape(-1) for s in stats)
    scale = affine[0] if affine else np.ones(channels)
    shift = affine[1] if len(affine) > 1 else np.zeros(channels)
    bias = np.zeros(channels) if b is None else np.asarray(b, np.float64).reshape(-1)
    if any(v.shape != (channels,) for v in (mean, var, scale, shift, bias)) or not np.issubdtype(w.dtype, np.floating):
        return None
    factor = scale / np.sqrt(var + float(bn.attrs.get("eps", 1e-5)))
    shape = [1] * w.ndim
    shape[out_axis] = channels
    new_w = builder.tensor("folded_weight", (w.astype(np.float64) * factor.reshape(shape)).astype(w.dtype))
    new_b = builder.tensor("folded_bias", ((bias - mean) * factor + shift).astype(w.dtype))
    op = "MatMulAdd" if layer.op == "MatMul" else layer.op
    return Node(op, 1, layer.name, (layer.inputs[0], new_w, new_b), bn.outputs, layer.attrs)


def _same_axis(axis: int, channel_axis: int, ndim: int | None) -> bool:
    """Whether the batch norm's ``axis`` is the layer's output-channel axis (``ndim`` None: only -1 is sure)."""
    axis = int(axis)
    if ndim is None:
        return axis == -1
    return axis % ndim == channel_axis % ndim
