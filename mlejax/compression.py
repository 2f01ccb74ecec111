"""Smaller ``.mle`` files: weight quantization (a graph rewrite) and ``CompressionUtils``.

``export_model(quantize=...)`` calls :func:`quantize_graph`, which replaces
eligible stored float32 tensors by smaller ones plus a node that restores
float32 inside the XLA program:

- ``"int8"``: per-channel symmetric int8, ``w ≈ q * scale`` with one float32
  scale per output channel (``scale = max|w| / 127`` over the other axes), via
  the ``Dequantize`` op (``lowering/ops_quant.py``);
- ``"fp16"`` / ``"bf16"``: the tensor stored in half precision behind a
  ``Cast`` to float32.

Eligible tensors (every use of the tensor must be one of these slots):

- weight matrices of neural networks (``MatMul``/``MatMulAdd``/``LinearFloat64`` input 1,
  ``[in, out]``, channel axis ``out``) and convolution kernels (``Conv``,
  ``ConvTranspose``, ``ConvGeneral``, channel axis = output channels);
- with ``quantize_leaves=True`` only: tree leaf values (``TreeEnsemble``
  ``values``, per output column) and the weights of linear models. A graph
  with a single weight matrix and no convolution is a linear model (linear
  and logistic regression, linear SVMs, ... also inside a pipeline).

Never quantized: tree thresholds, feature indices and child pointers
(decisions stay exact), biases, integer or boolean tensors, tensors with
non-finite values, and anything else. Compression (``compression="zstd"``)
is separate and lossless.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .format import read_mle
from .format.graph import Graph, Node

__all__ = ["CompressionUtils", "QUANTIZE_MODES", "quantize_graph", "quantization_error"]

QUANTIZE_MODES = ("fp16", "bf16", "int8")


def _last(node: Node, w: np.ndarray) -> int:
    return w.ndim - 1


def _conv_out_axis(node: Node, w: np.ndarray) -> int:
    return 0 if node.attrs.get("layout", "channels_first") == "channels_first" else w.ndim - 1


def _conv_transpose_out_axis(node: Node, w: np.ndarray) -> int:
    return 1 if node.attrs.get("layout", "channels_first") == "channels_first" else w.ndim - 2


def _conv_general_out_axis(node: Node, w: np.ndarray) -> int:
    return int(node.attrs["dimension_numbers"][1][0])


#: (op, input position) -> (role, function giving the output-channel axis of the stored tensor).
#: Roles: "matrix" (network weight, or linear-model weight if it is the graph's only one),
#: "kernel" (convolution), "leaf" (tree leaf values).
WEIGHT_SLOTS: dict[tuple[str, int], tuple[str, Callable[[Node, np.ndarray], int]]] = {
    ("MatMulAdd", 1): ("matrix", _last),
    ("MatMul", 1): ("matrix", _last),
    ("LinearFloat64", 1): ("matrix", _last),  # the float32 high part; the float32 remainder (input 2) stays
    ("Conv", 1): ("kernel", _conv_out_axis),
    ("ConvTranspose", 1): ("kernel", _conv_transpose_out_axis),
    ("ConvGeneral", 1): ("kernel", _conv_general_out_axis),
    ("TreeEnsemble", 6): ("leaf", _last),
}


def quantize_weights_int8(w: Any, axis: int | None = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric int8 quantization: ``w ≈ (q - zero_point) * scale``.

    One scale per index of ``axis`` (per channel; the scale keeps ``w``'s rank
    with size 1 elsewhere), or one for the whole tensor if ``axis`` is None or
    ``w`` is 0-d/1-d. ``q`` is in [-127, 127]; ``zero_point`` is all zeros
    (int8, shaped like ``scale``), returned for API compatibility.
    """
    w = np.asarray(w, dtype=np.float32)
    if not np.isfinite(w).all():
        raise ValueError("cannot quantize a tensor with NaN or infinite values")
    if axis is None or w.ndim < 2:
        amax = np.max(np.abs(w), keepdims=True) if w.size else np.zeros((1,) * w.ndim, np.float32)
    else:
        axis = axis % w.ndim
        others = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.max(np.abs(w), axis=others, keepdims=True) if w.size else np.zeros(
            [s if i == axis else 1 for i, s in enumerate(w.shape)], np.float32
        )
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale, np.zeros(scale.shape, np.int8)


def dequantize_weights_int8(q: Any, scale: Any, zero_point: Any = 0) -> np.ndarray:
    """Inverse of :func:`quantize_weights_int8`: ``(q - zero_point) * scale`` as float32."""
    return ((np.asarray(q, np.float32) - np.asarray(zero_point, np.float32)) * np.asarray(scale, np.float32)).astype(np.float32)


def _half(w: np.ndarray, mode: str) -> np.ndarray | None:
    if mode == "fp16":
        return w.astype(np.float16) if np.abs(w).max(initial=0) <= np.finfo(np.float16).max else None
    import ml_dtypes

    return w.astype(ml_dtypes.bfloat16)


def quantize_graph(
    graph: Graph, tensors: Mapping[str, np.ndarray], mode: str, *, quantize_leaves: bool = False
) -> tuple[Graph, dict[str, np.ndarray], dict]:
    """Rewrite ``graph`` so eligible weights are stored in ``mode``; return (graph, tensors, report).

    The report has ``mode``, ``quantized`` (tensor names), ``bytes_before`` and
    ``bytes_after`` (of those tensors) and ``skipped`` (name -> reason, for
    weights left as float32).
    """
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize={mode!r} is not supported; use one of {QUANTIZE_MODES} or None")
    uses: dict[str, list[tuple[Node, int]]] = {}
    for node in graph.nodes:
        for i, name in enumerate(node.inputs):
            if name in tensors:
                uses.setdefault(name, []).append((node, i))
    n_weights = sum(
        1 for name, us in uses.items() for node, i in us if WEIGHT_SLOTS.get((node.op, i), ("",))[0] in ("matrix", "kernel")
    )
    allowed = {"kernel"} | ({"matrix"} if n_weights > 1 else set()) | ({"leaf", "matrix"} if quantize_leaves else set())
    known = set(tensors) | {v.name for v in graph.inputs} | {o for n in graph.nodes for o in n.outputs}
    new_tensors = dict(tensors)
    new_nodes: list[Node] = []
    renamed: dict[str, str] = {}
    report: dict[str, Any] = {"mode": mode, "quantized": [], "bytes_before": 0, "bytes_after": 0, "skipped": {}}
    counter = 0

    def fresh(stem: str) -> str:
        nonlocal counter
        while True:
            counter += 1
            name = f"quant.{counter}.{stem}"
            if name not in known:
                known.add(name)
                return name

    for name, us in uses.items():
        slots = [WEIGHT_SLOTS.get((node.op, i)) for node, i in us]
        if any(s is None for s in slots):
            continue
        w = np.asarray(tensors[name])
        roles = {s[0] for s in slots}  # type: ignore[index]
        if not roles <= allowed:
            report["skipped"][name] = "linear-model weights and leaf values need quantize_leaves=True"
            continue
        axes = {s[1](node, w) for s, (node, _) in zip(slots, us)}  # type: ignore[index]
        if w.dtype != np.float32 or len(axes) != 1 or name in graph.outputs.values():
            report["skipped"][name] = "not a float32 weight with one channel axis"
            continue
        if not np.isfinite(w).all():
            report["skipped"][name] = "holds NaN or infinite values"
            continue
        out = fresh("w")
        if mode == "int8":
            q, scale, _ = quantize_weights_int8(w, axis=axes.pop())
            qn, sn = fresh("q"), fresh("scale")
            new_tensors[qn], new_tensors[sn] = q, scale
            new_nodes.append(Node("Dequantize", 1, fresh("dequantize"), (qn, sn), (out,), {}))
            after = q.nbytes + scale.nbytes
        else:
            half = _half(w, mode)
            if half is None:
                report["skipped"][name] = "values beyond the float16 range"
                continue
            hn = fresh(mode)
            new_tensors[hn] = half
            new_nodes.append(Node("Cast", 1, fresh("cast"), (hn,), (out,), {"dtype": "float32"}))
            after = half.nbytes
        del new_tensors[name]
        renamed[name] = out
        report["quantized"].append(name)
        report["bytes_before"] += w.nbytes
        report["bytes_after"] += after
    if not renamed:
        return graph, dict(tensors), report
    nodes = tuple(new_nodes) + tuple(
        replace(n, inputs=tuple(renamed.get(i, i) for i in n.inputs)) for n in graph.nodes
    )
    new_graph = Graph(graph.inputs, nodes, dict(graph.outputs))
    Graph.from_dict(new_graph.to_dict(), set(new_tensors))  # the rewrite must stay a valid graph
    return new_graph, new_tensors, report


def quantization_error(loaded: Any, graph: Graph, tensors: Mapping[str, np.ndarray], methods: Mapping[str, str], inputs: Sequence[Any]) -> dict:
    """Worst difference per method between ``loaded`` (quantized) and the unquantized ``graph`` on ``inputs``."""
    from .lowering import Program

    arrays = loaded._prepare_all(list(inputs))
    kinds = sorted(set(methods.values()))
    reference = dict(zip(kinds, Program(graph, tensors, options=loaded.program.options).run(kinds, arrays)))  # same options: an encrypted model stays out of the compilation cache
    ours = dict(zip(kinds, loaded.program.run(kinds, arrays)))
    report: dict[str, Any] = {}
    for method, kind in methods.items():
        ref, got = np.asarray(reference[kind]), np.asarray(ours[kind])
        if kind in ("label", "leaf_index"):
            report[method] = {"mismatches": int(np.sum(ref != got))}
            continue
        ref, got = ref.astype(np.float64), got.astype(np.float64)
        same = (ref == got) | (np.isnan(ref) & np.isnan(got))
        with np.errstate(invalid="ignore"):
            err = np.where(same, 0.0, np.abs(got - ref))
        report[method] = {
            "max_abs_error": float(np.max(err, initial=0.0)),
            "max_rel_error": float(np.max(err / (1 + np.abs(ref)), initial=0.0)),
        }
    return report


class CompressionUtils:
    """Static helpers for smaller models (names as in the mle-runtime seed)."""

    quantize_weights_int8 = staticmethod(quantize_weights_int8)
    dequantize_weights_int8 = staticmethod(dequantize_weights_int8)

    @staticmethod
    def quantize_weights_fp16(w: Any) -> np.ndarray:
        """``w`` as float16 (raises if a value is beyond float16's range)."""
        w = np.asarray(w, np.float32)
        half = _half(w, "fp16")
        if half is None:
            raise ValueError("values beyond the float16 range (65504); use bf16")
        return half

    @staticmethod
    def quantize_weights_bf16(w: Any) -> np.ndarray:
        """``w`` as bfloat16 (float32's range, 8 bits of mantissa)."""
        return _half(np.asarray(w, np.float32), "bf16")  # type: ignore[return-value]

    @staticmethod
    def compression_ratio(path: str | os.PathLike, **read_kwargs: Any) -> float:
        """Tensor bytes (decoded) divided by the file size of a ``.mle`` file (``key=``/``password=`` if encrypted)."""
        with read_mle(path, **read_kwargs) as f:
            return sum(a.nbytes for a in f.tensors.values()) / f.file_size
