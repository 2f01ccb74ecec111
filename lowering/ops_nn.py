"""Neural-network ops: convolution, pooling, norms, activations, shape ops, RNNs, attention.

Shared by every network exporter (PyTorch, Keras, Flax). Each rule is pure
``jax.numpy``/``lax``, computes in float32 and is traceable with static shapes
(the batch is padded to a bucket before tracing, so rules may read
``x.shape``). Ops from ``ops_core`` are reused, not redefined: ``MatMulAdd``
(``x @ w + b``, ``w`` is [in, out]), ``MatMul`` (``jnp.matmul``: broadcasting
batched matmul, so also bmm), ``Add Sub Mul Div Max Min Pow`` (numpy
broadcasting), ``Relu Tanh Sigmoid Exp Log Sqrt Abs Neg Identity``,
``Softmax``/``LogSoftmax`` (attr ``axis``), ``Concat`` (attr ``axis``),
``Squeeze`` (attr ``axis``: one int), ``Cast`` (attr ``dtype``),
``Reshape`` (attr ``shape`` *without* the batch dim).

Conventions
-----------
* ``layout``: ``"channels_first"`` (PyTorch: x is [N, C, *spatial], conv
  weight [O, I/groups, *K]) or ``"channels_last"`` (Keras/Flax: x is
  [N, *spatial, C], conv weight [*K, I/groups, O]). Spatial rank is taken
  from the weight (conv) or from ``len(kernel)`` (pooling): 1, 2 or 3.
* ``padding``: explicit ``[[lo, hi], ...]``, one pair per spatial dim.
  Exporters resolve ``"same"``/``"valid"`` (Keras "same" for stride s,
  kernel k, dilation d, input n: total = max((ceil(n/s)-1)*s + (k-1)*d + 1 - n, 0),
  lo = total // 2, hi = total - lo).
* Shape specs (``ReshapeDims``, ``BroadcastTo``, ``BroadcastInDim``, ``Iota``):
  a list whose entries are a static int >= 0, ``-1`` (infer; ReshapeDims only,
  at most one), ``"B"`` (the runtime batch size) or ``"B*k"`` (k times the batch
  size, e.g. after folding batch and time together). This keeps the batch
  symbolic in the file. These ops take an optional trailing ``ref`` input:
  ``B = ref.shape[ref_axis]`` (attr ``ref_axis``, default 0; exporters pass a
  graph input). Without ``ref``, ReshapeDims infers B from ``x.size`` (the spec
  must then have one symbolic entry and no -1).
* Activation attrs of the recurrent ops name a unary activation op of this
  table or ops_core (``"Tanh"``, ``"Sigmoid"``, ``"Relu"``, ``"HardSigmoid"``,
  ``"Identity"``, ...), applied with its default attrs.
* Axes are ints into the full shape (batch included, axis 0); negative axes
  count from the end.
* Optional inputs are trailing; omit them rather than passing placeholders.
* Stored tensors are at least 1-d (a scalar is stored as [1]); rules
  broadcast them, and BroadcastTo/BroadcastInDim treat a one-element input
  as a scalar.
* Dense layers use core ``MatMulAdd`` with the kernel as [in, out] (Keras'
  layout; torch weights are transposed at export).

Op table (all version 1)
------------------------
Convolution and pooling
  Conv(x, w, [b]) attrs strides[k], padding[[lo,hi]]*k, dilation[k], groups, layout.
      Cross-correlation as torch ``convNd``/Keras ``ConvND``. Bias [O].
      Depthwise/few-channel, small-map and 1x1 shapes are lowered without
      ``lax.conv`` (``conv_paths.py``: chosen from the static shapes).
      Keras DepthwiseConv2D: weight [kh,kw,C,M] -> reshape to [kh,kw,1,C*M], groups=C.
      SeparableConv2D = depthwise Conv then 1x1 Conv.
  ConvTranspose(x, w, [b]) attrs strides, padding[[lo,hi]], output_padding[k],
      dilation, groups, layout. Weight: channels_first [I, O/groups, *K]
      (torch), channels_last [*K, O, I] (Keras Conv2DTranspose, groups=1).
      Output size per dim: (n-1)*s - lo - hi + d*(k-1) + 1 + output_padding
      (torch's formula; torch ``padding=p`` is [p, p]).
  ConvGeneral(x, w) attrs window_strides, padding, lhs_dilation, rhs_dilation,
      dimension_numbers [lhs_spec, rhs_spec, out_spec] (int lists as in
      ``lax.ConvDimensionNumbers``), feature_group_count, batch_group_count.
      Exactly ``lax.conv_general_dilated`` (used by the jaxpr path).
  MaxPool(x) attrs kernel[k], strides[k], padding[[lo,hi]], dilation[k] (default 1),
      ceil_mode (default False), layout. Padding is -inf. ceil_mode follows torch:
      extra windows only if they start inside the input or left padding.
  AvgPool(x) attrs kernel, strides, padding, ceil_mode, count_include_pad
      (default True), divisor_override (default null), layout. As torch
      ``avg_poolNd``: with count_include_pad the divisor counts explicit padding
      but never the extra ceil_mode cells. Keras "same" average pooling is
      count_include_pad=False.
  ReduceWindow(x) attrs reduction "sum"|"max"|"min", window_dimensions,
      window_strides, padding [[lo,hi]] (all per dim, batch included),
      base_dilation, window_dilation: exactly ``lax.reduce_window`` with the
      identity of the reduction as padding value (jaxpr path).
  AdaptiveAvgPool(x) attrs output_size[k], layout. torch bins:
      start = floor(i*n/out), end = ceil((i+1)*n/out).
  AdaptiveMaxPool(x) attrs output_size[k], layout. Same bins, max.

Normalisation (inference)
  BatchNorm(x, mean, var, [scale], [bias]) attrs eps, axis (channel axis, default 1).
      y = (x - mean) / sqrt(var + eps) * scale + bias; params are [C].
  LayerNorm(x, [scale], [bias]) attrs axes (normalised axes, default [-1]), eps,
      rms (default False: subtract the mean; True: RMSNorm, no centering).
      Variance is the biased mean of squares (torch, Keras, Flax). scale/bias
      have the shape of x at ``axes`` (in axis order). With only a bias, pass
      a ones scale.
  GroupNorm(x, [scale], [bias]) attrs groups, eps, layout. Channels split into
      ``groups`` contiguous groups; statistics over (group channels, spatial);
      scale/bias are [C].

Activations (x) -> y, elementwise
  LeakyRelu(alpha=0.01)  Elu(alpha=1.0)  Selu  Celu(alpha=1.0)
  Gelu(approximate="none"|"tanh")  Silu (= swish, x*sigmoid(x))  Mish
  Softplus(beta=1.0, threshold=null: torch returns x where beta*x > threshold)
  Softsign  Relu6  HardSigmoid(alpha=1/6, beta=0.5: clip(alpha*x+beta, 0, 1);
  Keras 3 and torch use the defaults)  HardSwish (x*relu6(x+3)/6)
  HardTanh(min=-1, max=1)  Clip(min=null, max=null)  Erf  Erfc  Floor  Ceil  Round
  (half to even)  Sign  Sin  Cos  Reciprocal  Rsqrt  Square  Log1p  Expm1
  Not  IsInf  IsFinite.  Keras "exponential" is core ``Exp``; "linear" is ``Identity``;
  ``LogSigmoid`` is registered by ops_kernels (same semantics).
  IntPow(exponent) x**n for a static int n by repeated multiplication (lax.integer_pow).
  PRelu(x, slope) attr axis (channel axis, default 1): max(0,x) + slope*min(0,x),
      slope [C] or [1].

Elementwise binary / logic (numpy broadcasting)
  Compare(a, b) attr direction "lt"|"le"|"gt"|"ge"|"eq"|"ne" -> bool.
  And(a, b)  Or(a, b)  Xor(a, b) (bool)  Where(cond, a, b)  Rem(a, b) (fmod:
  sign of a, as lax.rem / torch.fmod)  FloorDiv(a, b)  Atan2(a, b)  Pow (core).

Shape and indexing
  ReshapeDims(x) attr shape (shape spec incl. batch; see conventions).
  BroadcastTo(x) attr shape (shape spec): numpy broadcasting of x to shape
      (a one-element x counts as a scalar: stored tensors are at least 1-d).
  BroadcastInDim(x) attrs shape (spec), broadcast_dimensions (lax semantics).
  Flatten(x) attrs start (default 1), end (default -1): merges dims start..end.
  Unsqueeze(x) attr axes (positions in the output).
  SqueezeAxes(x) attr axes (list; each must be size 1).
  Transpose(x) attr perm (full permutation, batch included; exporters keep
      the batch first on graph outputs).
  Slice(x) attrs axes, starts, stops, steps (python slice semantics, clamped;
      stop null = to the end).
  Split(x) attrs axis, sizes -> len(sizes) outputs.
  Index(x) attrs axis, index: ``x.take(index, axis)`` with a static int
      (negative counts from the end); drops the axis.
  Gather(x, indices) attr axis: ``jnp.take`` with runtime int indices,
      out-of-range clamped (jnp's "clip" mode).
  Pad(x) attrs pads [[lo,hi]] per dim (batch included, may be negative), value,
      mode "constant"|"reflect"|"edge"|"wrap" (circular). Value only for constant.
  Reverse(x) attr axes.
  Tile(x) attr reps (per dim, batch included).
  Reduce(x) attrs reduction "sum"|"mean"|"max"|"min"|"prod"|"any"|"all"|"logsumexp",
      axes, keepdims (default False). Also ReduceArg(x) attrs reduction "max"|"min",
      axis, keepdims -> int32 index (first occurrence).
  CumSum(x) attrs axis, reverse (default False).
  Iota(ref) attrs shape (spec), axis, dtype (default "int32"), ref_axis:
      index along ``axis`` (ref only supplies the batch size).
  DotGeneral(a, b) attrs contracting [[lhs], [rhs]], batch [[lhs], [rhs]]:
      ``lax.dot_general`` at HIGHEST precision.
  Einsum(*xs) attr equation.

Embedding
  Embedding(ids, table) -> table[ids] with shape ids.shape + [D]. ids may be
      any int dtype, or float holding integers (Keras feeds float32). A row
      whose id is out of range ([0, V)), non-integral or NaN gives NaN in all
      D outputs instead of crashing or clamping silently.

Recurrent (lowered with ``lax.scan``; sequence length static per trace)
  Inputs: x, then for each layer l = 0..L-1 and direction d = 0 (forward),
  1 (backward, only if bidirectional): the weights of that cell, in this order
      LSTM:      W [4H, I_l], R [4H, H], b [4H]            gates in order i, f, g, o
      GRU:       W [3H, I_l], R [3H, H], b_w [3H], b_r [3H] gates in order r, z, n
      SimpleRNN: W [H, I_l],  R [H, H],  b_w [H], b_r [H]
  (torch layout: I_0 = input size, I_l = D*H for l > 0. Keras kernels are
  [I, G*H]: transpose; Keras LSTM order i, f, c, o already matches; Keras GRU
  order z, r, h must be reordered to r, z, n). Then optional initial states:
  h0 [L*D, B, H] (and c0 [L*D, B, H] for LSTM) — omitted means zeros.
  attrs hidden_size, num_layers (1), bidirectional (False), batch_first
  (True: x [B, T, I], else [T, B, I]), activation ("Tanh"; any unary
  activation op name), recurrent_activation ("Sigmoid"; LSTM/GRU gates), and for GRU
  linear_before_reset (True = torch and Keras reset_after=True:
  n = act(W_n x + b_wn + r * (R_n h + b_rn)); False = Keras reset_after=False:
  n = act(W_n x + b_wn + R_n (r * h) + b_rn)).
      LSTM:  c' = f*c + i*g; h' = o*act(c'); i,f,o = ract(.), g = act(.)
      GRU:   h' = (1 - z) * n + z * h
      RNN:   h' = act(W x + b_w + R h + b_r)
  Outputs: y (all steps, [B, T, D*H] or [T, B, D*H]; backward half is in
  input time order), h_n [L*D, B, H], and for LSTM c_n [L*D, B, H] (torch's
  outputs). Keras return_sequences=False on a forward layer is
  ``Index(y, axis=1, index=-1)``; its Bidirectional concat is
  [h_n[-2], h_n[-1]] on axis -1.

Attention
  ScaledDotProductAttention(q, k, v, [mask]) attrs scale (null = 1/sqrt(E)),
      is_causal (False), mask_kind ("bool": True = attend, torch's convention;
      or "additive": added to the scores). q [..., L, E], k [..., S, E],
      v [..., S, Ev] -> [..., L, Ev]; mask broadcastable to [..., L, S].
      Causal is top-left aligned (query i sees keys j <= i), as torch.
      A query row whose scores are all -inf (nothing to attend) gives zeros,
      as torch's SDPA (>= 2.5). Keras masks with a large finite negative
      instead (uniform weights): use mask_kind "additive" with that value.
  MultiHeadAttention(query, key, value, wq, bq, wk, bk, wv, bv, wo, bo, [mask])
      attrs num_heads, scale, is_causal, mask_kind. Batch-first: query [B, L, Dq],
      key [B, S, Dk], value [B, S, Dv]; wq [Dq, H*E], wk [Dk, H*E], wv [Dv, H*Ev],
      wo [H*Ev, Do] (``x @ w`` layout, heads contiguous: head h uses columns
      h*E:(h+1)*E); biases [H*E], [H*E], [H*Ev], [Do] (zeros if absent). mask
      broadcastable to [B, H, L, S] (a key padding mask [B, S] must be passed
      as [B, 1, 1, S]). Output [B, L, Do].
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..format.errors import UnsupportedModelError
from ..format.graph import Node
from .conv_paths import fast_conv
from .ops_core import binary_rule
from .registry import ABSENT, Attr, register_rule, shape_spec_elements

# --- attribute declarations ----------------------------------------------------------
_LAYOUT = Attr("str", "channels_first", choices=("channels_first", "channels_last"))
#: Window sizes, strides and dilations: positive and small enough that no window arithmetic overflows.
_STEPS = Attr("ints", ABSENT, lo=1, hi=1 << 16, nullable=True)
_PADDING = Attr("int_pairs", ABSENT, lo=-(1 << 16), hi=1 << 16, nullable=True)
_AXES = Attr("ints", lo=-64, hi=63)
_CONV = {"strides": Attr("ints", ABSENT, lo=1, hi=1 << 16), "padding": Attr("int_pairs", ABSENT, lo=-(1 << 16), hi=1 << 16),
         "dilation": Attr("ints", ABSENT, lo=1, hi=1 << 16), "groups": Attr("int", 1, lo=1), "layout": _LAYOUT}
_EPS = Attr("number", 1e-5)
_SHAPE = {"shape": Attr("shape", lo=-1, hi=1 << 30), "ref_axis": Attr("int", 0, lo=-64, hi=63)}
_POOL = {"kernel": Attr("ints", lo=1, hi=1 << 16), "strides": _STEPS, "padding": _PADDING, "dilation": _STEPS,
         "ceil_mode": Attr("bool", False), "layout": _LAYOUT}
_ADAPTIVE = {"output_size": Attr("ints", lo=1, hi=1 << 12), "layout": _LAYOUT}
_SDPA = {"scale": Attr("number", None, nullable=True), "is_causal": Attr("bool", False),
         "mask_kind": Attr("str", "bool", choices=("bool", "additive"))}


def _within(elements: int, budget: int, what: str) -> None:
    """ValueError if a node would produce more than ``budget`` elements per batch row."""
    if elements > budget:
        raise ValueError(f"{what} makes {elements} elements per batch row, over this model's bound of {budget}")


def _check_shape_spec(node: Node, shapes: Sequence[tuple | None], budget: int) -> None:
    _within(shape_spec_elements(node.attrs["shape"]), budget, f"shape {node.attrs['shape']}")


def _check_tile(node: Node, shapes: Sequence[tuple | None], budget: int) -> None:
    _within(math.prod(node.attrs["reps"]), budget, f"reps {node.attrs['reps']}")


def _check_pad(node: Node, shapes: Sequence[tuple | None], budget: int) -> None:
    _within(math.prod(max(1, lo + hi) for lo, hi in node.attrs["pads"][1:]), budget, "pads")


def _check_slice(node: Node, shapes: Sequence[tuple | None], budget: int) -> None:
    a = node.attrs
    n = len(a["axes"])
    if len(a["starts"]) != n or len(a["stops"]) != n or (a.get("steps") and len(a["steps"]) != n):
        raise ValueError("axes, starts, stops and steps must have the same length")
    if 0 in (a.get("steps") or ()):
        raise ValueError("a slice step cannot be 0")

_HIGHEST = lax.Precision.HIGHEST

# --- shared helpers ------------------------------------------------------------------


def _spatial_specs(rank: int, layout: str) -> tuple[str, str, str]:
    """``lax`` dimension-number strings (input, weight, output) for ``rank`` spatial dims."""
    sp = "DHW"[3 - rank :]
    if layout == "channels_first":
        return f"NC{sp}", f"OI{sp}", f"NC{sp}"
    if layout == "channels_last":
        return f"N{sp}C", f"{sp}IO", f"N{sp}C"
    raise UnsupportedModelError(f"layout {layout!r} is not supported; use 'channels_first' or 'channels_last'")


def _pairs(padding: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    return [(int(lo), int(hi)) for lo, hi in padding]


def _channel_shape(ndim: int, axis: int) -> list[int]:
    """Shape that broadcasts a [C] vector along ``axis`` of an ``ndim``-d array."""
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return shape


def _add_bias(y, b, layout: str):
    if b is None:
        return y
    return y + (b.reshape(_channel_shape(y.ndim, 1)) if layout == "channels_first" else b)


def _spatial_axes(rank: int, layout: str) -> list[int]:
    return list(range(2, 2 + rank)) if layout == "channels_first" else list(range(1, 1 + rank))


def _resolve_shape(spec: Sequence[Any], batch: int | None) -> tuple[int, ...]:
    """Concrete shape from a shape spec (ints, -1, ``"B"``, ``"B*k"``); see the module docstring.

    Without ``batch`` the single symbolic entry becomes -1 (inferred by reshape).
    """
    if batch is None and (sum(isinstance(d, str) for d in spec) != 1 or -1 in spec):
        raise UnsupportedModelError(f"shape spec {list(spec)} needs a ref input to resolve the batch size")
    out = []
    for d in spec:
        if isinstance(d, str):
            head, _, k = d.partition("*")
            if head != "B":
                raise UnsupportedModelError(f"shape spec entry {d!r}: expected an int, 'B' or 'B*k'")
            out.append(-1 if batch is None else batch * (int(k) if k else 1))
        else:
            out.append(int(d))
    return tuple(out)


def _batch_of(node: Node, ref) -> int | None:
    return None if ref is None else ref.shape[node.attrs["ref_axis"]]


# --- convolution ---------------------------------------------------------------------


@register_rule("Conv", attrs=_CONV)
def _conv(node: Node, x, w, b=None):
    """N-d cross-correlation (torch ``convNd`` / Keras ``ConvND``); see the op table for layouts."""
    a = node.attrs
    rank = w.ndim - 2
    layout = a["layout"]
    _spatial_specs(rank, layout)  # rejects an unknown layout
    strides = tuple(a.get("strides", [1] * rank))
    padding = _pairs(a.get("padding", [[0, 0]] * rank))
    dilation = tuple(a.get("dilation", [1] * rank))
    y = fast_conv(x, w, strides, padding, dilation, int(a["groups"]), layout)  # small maps, depthwise, 1x1
    if y is None:
        y = lax.conv_general_dilated(
            x, w, window_strides=strides, padding=padding, rhs_dilation=dilation,
            dimension_numbers=_spatial_specs(rank, layout), feature_group_count=int(a["groups"]), precision=_HIGHEST,
        )
    return _add_bias(y, b, layout)


@register_rule("ConvTranspose", attrs={**_CONV, "output_padding": Attr("ints", ABSENT, lo=0, hi=1 << 16)})
def _conv_transpose(node: Node, x, w, b=None):
    """Transposed convolution (torch ``conv_transposeNd``; Keras ``ConvNDTranspose`` with groups=1)."""
    a = node.attrs
    rank = w.ndim - 2
    layout = a["layout"]
    groups = int(a["groups"])
    spatial = list(range(2, 2 + rank)) if layout == "channels_first" else list(range(rank))
    if layout == "channels_first":  # [I, O/g, *K] -> [O, I/g, *K]
        i, og, *k = w.shape
        w = w.reshape(groups, i // groups, og, *k).swapaxes(1, 2).reshape(groups * og, i // groups, *k)
    else:  # [*K, O, I] -> [*K, I, O]
        if groups != 1:
            raise UnsupportedModelError("ConvTranspose with channels_last layout supports groups=1 only")
        w = w.swapaxes(-1, -2)
    w = jnp.flip(w, axis=spatial)
    kernel = [w.shape[d] for d in spatial]
    dilation = a.get("dilation", [1] * rank)
    out_pad = a.get("output_padding", [0] * rank)
    padding = [
        (d * (k - 1) - lo, d * (k - 1) - hi + op)
        for (lo, hi), k, d, op in zip(_pairs(a.get("padding", [[0, 0]] * rank)), kernel, dilation, out_pad)
    ]
    y = lax.conv_general_dilated(
        x, w,
        window_strides=(1,) * rank,
        padding=padding,
        lhs_dilation=tuple(a.get("strides", [1] * rank)),
        rhs_dilation=tuple(dilation),
        dimension_numbers=_spatial_specs(rank, layout),
        feature_group_count=groups,
        precision=_HIGHEST,
    )
    return _add_bias(y, b, layout)


@register_rule("ConvGeneral", attrs={"dimension_numbers": Attr("int_lists", length=3, lo=0, hi=63), "window_strides": Attr("ints", lo=1, hi=1 << 16), "padding": Attr("int_pairs", lo=-(1 << 16), hi=1 << 16), "lhs_dilation": _STEPS, "rhs_dilation": _STEPS, "feature_group_count": Attr("int", 1, lo=1), "batch_group_count": Attr("int", 1, lo=1)})
def _conv_general(node: Node, x, w):
    """Exactly ``lax.conv_general_dilated`` with the node's attrs (HIGHEST precision)."""
    a = node.attrs
    lhs, rhs, out = a["dimension_numbers"]
    return lax.conv_general_dilated(
        x, w,
        window_strides=tuple(a["window_strides"]),
        padding=_pairs(a["padding"]),
        lhs_dilation=tuple(a.get("lhs_dilation") or [1] * (x.ndim - 2)),
        rhs_dilation=tuple(a.get("rhs_dilation") or [1] * (x.ndim - 2)),
        dimension_numbers=lax.ConvDimensionNumbers(tuple(lhs), tuple(rhs), tuple(out)),
        feature_group_count=int(a["feature_group_count"]),
        batch_group_count=int(a["batch_group_count"]),
        precision=_HIGHEST,
    )


# --- pooling -------------------------------------------------------------------------


def _pool_geometry(x, a: dict):
    """Window dims, strides, dilation, explicit padding and ceil_mode extra padding for every dim of ``x``."""
    kernel = list(a["kernel"])
    rank = len(kernel)
    layout = a["layout"]
    axes = _spatial_axes(rank, layout)
    strides = list(a.get("strides") or kernel)
    dilation = list(a.get("dilation") or [1] * rank)
    padding = _pairs(a.get("padding") or [[0, 0]] * rank)
    win, st, dil = [1] * x.ndim, [1] * x.ndim, [1] * x.ndim
    pad, extra = [(0, 0)] * x.ndim, [0] * x.ndim
    for ax, k, s, d, (lo, hi) in zip(axes, kernel, strides, dilation, padding):
        n = x.shape[ax]
        span = d * (k - 1) + 1
        if a["ceil_mode"]:
            out = -(-(n + lo + hi - span) // s) + 1
            if (out - 1) * s >= n + lo:  # torch: the last window must start inside input or left padding
                out -= 1
            extra[ax] = max(0, (out - 1) * s + span - (n + lo + hi))
        win[ax], st[ax], dil[ax], pad[ax] = k, s, d, (lo, hi)
    return win, st, dil, pad, extra


@register_rule("MaxPool", attrs=_POOL)
def _max_pool(node: Node, x):
    """Max pooling as torch ``max_poolNd`` (padding is -inf; ceil_mode as torch)."""
    win, st, dil, pad, extra = _pool_geometry(x, node.attrs)
    full = [(lo, hi + e) for (lo, hi), e in zip(pad, extra)]
    return lax.reduce_window(x, -jnp.inf, lax.max, win, st, full, window_dilation=dil)


@register_rule("AvgPool", attrs={**_POOL, "count_include_pad": Attr("bool", True), "divisor_override": Attr("number", None, nullable=True)})
def _avg_pool(node: Node, x):
    """Average pooling as torch ``avg_poolNd`` (count_include_pad, ceil_mode, divisor_override)."""
    a = node.attrs
    win, st, dil, pad, extra = _pool_geometry(x, a)
    full = [(lo, hi + e) for (lo, hi), e in zip(pad, extra)]
    total = lax.reduce_window(x, 0.0, lax.add, win, st, full, window_dilation=dil)
    if a.get("divisor_override"):
        return total / float(a["divisor_override"])
    ones_shape = [n if w > 1 or p != (0, 0) or e else 1 for n, w, p, e in zip(x.shape, win, pad, extra)]
    ones = np.ones(ones_shape, np.float32)
    if a["count_include_pad"]:  # explicit padding counts, ceil_mode cells do not
        ones = np.pad(ones, pad, constant_values=1.0)
        count_pad = [(0, e) for e in extra]
    else:
        count_pad = full
    count = lax.reduce_window(jnp.asarray(ones), 0.0, lax.add, win, st, count_pad, window_dilation=dil)
    return total / count.astype(x.dtype)


_WINDOW = {"sum": (0.0, lax.add), "max": (-jnp.inf, lax.max), "min": (jnp.inf, lax.min)}


@register_rule("ReduceWindow", attrs={"reduction": Attr("str", choices=tuple(_WINDOW)), "window_dimensions": Attr("ints", lo=1, hi=1 << 16), "window_strides": _STEPS, "padding": _PADDING, "base_dilation": _STEPS, "window_dilation": _STEPS})
def _reduce_window(node: Node, x):
    """``lax.reduce_window`` with ``reduction`` sum/max/min and its identity as the padding value."""
    a = node.attrs
    init, fn = _WINDOW[a["reduction"]]
    if not jnp.issubdtype(x.dtype, jnp.floating):
        info = jnp.iinfo(x.dtype)
        init = {"sum": 0, "max": info.min, "min": info.max}[a["reduction"]]
    ones = [1] * x.ndim
    return lax.reduce_window(
        x, jnp.asarray(init, x.dtype), fn, tuple(a["window_dimensions"]), tuple(a.get("window_strides") or ones),
        _pairs(a.get("padding") or [[0, 0]] * x.ndim), base_dilation=tuple(a.get("base_dilation") or ones),
        window_dilation=tuple(a.get("window_dilation") or ones),
    )


def _adaptive_bins(n: int, out: int) -> list[tuple[int, int]]:
    return [((i * n) // out, -(-((i + 1) * n) // out)) for i in range(out)]


@register_rule("AdaptiveAvgPool", attrs=_ADAPTIVE)
def _adaptive_avg_pool(node: Node, x):
    """torch ``adaptive_avg_poolNd``: bin i of n covers [floor(i*n/out), ceil((i+1)*n/out))."""
    a = node.attrs
    size = list(a["output_size"])
    for ax, out in zip(_spatial_axes(len(size), a["layout"]), size):
        n = x.shape[ax]
        m = np.zeros((out, n), np.float32)
        for i, (s, e) in enumerate(_adaptive_bins(n, out)):
            m[i, s:e] = 1.0 / (e - s)
        x = jnp.moveaxis(jnp.tensordot(x, jnp.asarray(m), axes=[[ax], [1]], precision=_HIGHEST), -1, ax)
    return x


@register_rule("AdaptiveMaxPool", attrs=_ADAPTIVE)
def _adaptive_max_pool(node: Node, x):
    """torch ``adaptive_max_poolNd`` (values only), same bins as AdaptiveAvgPool."""
    a = node.attrs
    size = list(a["output_size"])
    for ax, out in zip(_spatial_axes(len(size), a["layout"]), size):
        parts = [jnp.max(lax.slice_in_dim(x, s, e, axis=ax), axis=ax, keepdims=True) for s, e in _adaptive_bins(x.shape[ax], out)]
        x = jnp.concatenate(parts, axis=ax)
    return x


# --- normalisation -------------------------------------------------------------------


@register_rule("BatchNorm", attrs={"axis": Attr("int", 1, lo=-64, hi=63), "eps": _EPS})
def _batch_norm(node: Node, x, mean, var, scale=None, bias=None):
    """Inference batch norm: (x - mean) / sqrt(var + eps) * scale + bias along ``axis``."""
    shape = _channel_shape(x.ndim, node.attrs["axis"])
    factor = lax.rsqrt(var + node.attrs["eps"])
    if scale is not None:
        factor = factor * scale
    y = (x - mean.reshape(shape)) * factor.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


@register_rule("LayerNorm", attrs={"axes": Attr("ints", [-1], lo=-64, hi=63), "eps": _EPS, "rms": Attr("bool", False)})
def _layer_norm(node: Node, x, scale=None, bias=None):
    """Normalise over ``axes`` (biased variance), then scale and shift; ``rms=True`` is RMSNorm."""
    a = node.attrs
    axes = tuple(sorted(ax % x.ndim for ax in a["axes"]))
    eps = a["eps"]
    if a["rms"]:
        y = x * lax.rsqrt(jnp.mean(jnp.square(x), axis=axes, keepdims=True) + eps)
    else:
        mean = jnp.mean(x, axis=axes, keepdims=True)
        centred = x - mean
        y = centred * lax.rsqrt(jnp.mean(jnp.square(centred), axis=axes, keepdims=True) + eps)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    if scale is not None:
        y = y * scale.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


@register_rule("GroupNorm", attrs={"groups": Attr("int", lo=1), "eps": _EPS, "layout": _LAYOUT})
def _group_norm(node: Node, x, scale=None, bias=None):
    """torch ``group_norm``: statistics per sample over each group of contiguous channels and all positions."""
    a = node.attrs
    g = int(a["groups"])
    first = a["layout"] == "channels_first"
    c = x.shape[1] if first else x.shape[-1]
    if first:
        xg = x.reshape(x.shape[0], g, c // g, *x.shape[2:])
        axes = tuple(range(2, xg.ndim))
    else:
        xg = x.reshape(*x.shape[:-1], g, c // g)
        axes = tuple(range(1, xg.ndim - 2)) + (xg.ndim - 1,)
    mean = jnp.mean(xg, axis=axes, keepdims=True)
    centred = xg - mean
    y = (centred * lax.rsqrt(jnp.mean(jnp.square(centred), axis=axes, keepdims=True) + a["eps"])).reshape(x.shape)
    shape = _channel_shape(x.ndim, 1 if first else -1)
    if scale is not None:
        y = y * scale.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


# --- activations and elementwise -----------------------------------------------------


def _softplus(x, beta: float = 1.0, threshold: float | None = None):
    y = jax.nn.softplus(beta * x) / beta
    return y if threshold is None else jnp.where(beta * x > threshold, x, y)


def _clip(x, min: float | None = None, max: float | None = None):
    return jnp.clip(x, min, max)


#: unary ops: name -> (fn(x, **attrs)); attrs are passed by keyword.
_UNARY: dict[str, Callable] = {
    "LeakyRelu": lambda x, alpha=0.01: jnp.where(x >= 0, x, alpha * x),
    "Elu": lambda x, alpha=1.0: jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0.0))),
    "Selu": jax.nn.selu,
    "Celu": lambda x, alpha=1.0: jax.nn.celu(x, alpha),
    "Gelu": lambda x, approximate="none": jax.nn.gelu(x, approximate=approximate == "tanh"),
    "Silu": jax.nn.silu,
    "Mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
    "Softplus": _softplus,
    "Softsign": jax.nn.soft_sign,
    "Relu6": jax.nn.relu6,
    "HardSigmoid": lambda x, alpha=1.0 / 6.0, beta=0.5: jnp.clip(alpha * x + beta, 0.0, 1.0),
    "HardSwish": lambda x: x * jax.nn.relu6(x + 3.0) / 6.0,
    "HardTanh": lambda x, min=-1.0, max=1.0: jnp.clip(x, min, max),
    "Clip": _clip,
    "Erf": lax.erf,
    "Erfc": lax.erfc,
    "Floor": jnp.floor,
    "Ceil": jnp.ceil,
    "Round": jnp.round,
    "Sign": jnp.sign,
    "Sin": jnp.sin,
    "Cos": jnp.cos,
    "Reciprocal": jnp.reciprocal,
    "Rsqrt": lax.rsqrt,
    "Square": jnp.square,
    "Log1p": jnp.log1p,
    "Expm1": jnp.expm1,
    "Not": jnp.logical_not,
    "IsInf": jnp.isinf,
    "IsFinite": jnp.isfinite,
}

#: activations usable by name in RNN attrs: the unary ops above and ops_core's.
_ACTIVATIONS: dict[str, Callable] = {
    **_UNARY,
    "Identity": lambda x: x,
    "Relu": jax.nn.relu,
    "Tanh": jnp.tanh,
    "Sigmoid": jax.nn.sigmoid,
    "Exp": jnp.exp,
    "LogSigmoid": jax.nn.log_sigmoid,
}


#: the attributes of the unary ops that have any (the keyword arguments of their function)
_UNARY_ATTRS: dict[str, dict[str, Attr]] = {
    "LeakyRelu": {"alpha": Attr("number", 0.01)},
    "Elu": {"alpha": Attr("number", 1.0)},
    "Celu": {"alpha": Attr("number", 1.0)},
    "Gelu": {"approximate": Attr("str", "none", choices=("none", "tanh"))},
    "Softplus": {"beta": Attr("number", 1.0), "threshold": Attr("number", None, nullable=True)},
    "HardSigmoid": {"alpha": Attr("number", 1.0 / 6.0), "beta": Attr("number", 0.5)},
    "HardTanh": {"min": Attr("number", -1.0), "max": Attr("number", 1.0)},
    "Clip": {"min": Attr("number", None, nullable=True), "max": Attr("number", None, nullable=True)},
}


def _unary_rule(name: str, fn: Callable):
    def rule(node: Node, x):
        return fn(x, **node.attrs)

    rule.__doc__ = f"Elementwise {name} (attrs as keyword arguments); see the op table."
    return rule


for _name, _fn in _UNARY.items():
    register_rule(_name, attrs=_UNARY_ATTRS.get(_name))(_unary_rule(_name, _fn))


@register_rule("IntPow", attrs={"exponent": Attr("int", lo=-(1 << 16), hi=1 << 16)})
def _int_pow(node: Node, x):
    """``x ** exponent`` for a static int exponent, by repeated multiplication (``lax.integer_pow``)."""
    return lax.integer_pow(x, int(node.attrs["exponent"]))


@register_rule("PRelu", attrs={"axis": Attr("int", 1, lo=-64, hi=63)})
def _prelu(node: Node, x, slope):
    """max(0, x) + slope * min(0, x), ``slope`` [C] along ``axis`` (or [1])."""
    s = slope.reshape(_channel_shape(x.ndim, node.attrs["axis"])) if slope.size > 1 else slope.reshape(())
    return jnp.where(x >= 0, x, s * x)


_COMPARE = {"lt": jnp.less, "le": jnp.less_equal, "gt": jnp.greater, "ge": jnp.greater_equal, "eq": jnp.equal, "ne": jnp.not_equal}


@register_rule("Compare", attrs={"direction": Attr("str", choices=tuple(_COMPARE))})
def _compare(node: Node, a, b):
    """Elementwise comparison (``direction`` lt/le/gt/ge/eq/ne) with broadcasting → bool."""
    return _COMPARE[node.attrs["direction"]](a, b)


for _name, _fn in {
    "And": jnp.logical_and,
    "Or": jnp.logical_or,
    "Xor": jnp.logical_xor,
    "Rem": jnp.fmod,
    "FloorDiv": jnp.floor_divide,
    "Atan2": jnp.arctan2,
}.items():
    register_rule(_name)(binary_rule(_fn))


@register_rule("Where")
def _where(node: Node, cond, a, b):
    """``cond ? a : b`` with broadcasting."""
    return jnp.where(cond, a, b)


# --- shape and indexing --------------------------------------------------------------


@register_rule("ReshapeDims", attrs=_SHAPE, check=_check_shape_spec)
def _reshape_dims(node: Node, x, ref=None):
    """Reshape to a shape spec that includes the batch dimension (see conventions)."""
    return x.reshape(_resolve_shape(node.attrs["shape"], _batch_of(node, ref)))


@register_rule("BroadcastTo", attrs=_SHAPE, check=_check_shape_spec)
def _broadcast_to(node: Node, x, ref=None):
    """numpy broadcasting of ``x`` to a shape spec; a one-element ``x`` counts as a scalar."""
    if x.size == 1:
        x = x.reshape(())
    return jnp.broadcast_to(x, _resolve_shape(node.attrs["shape"], _batch_of(node, ref)))


@register_rule("BroadcastInDim", attrs={**_SHAPE, "broadcast_dimensions": Attr("ints", lo=0, hi=63)}, check=_check_shape_spec)
def _broadcast_in_dim(node: Node, x, ref=None):
    """``lax.broadcast_in_dim`` to a shape spec; a one-element ``x`` with no broadcast dims counts as a scalar."""
    if not node.attrs["broadcast_dimensions"] and x.ndim:
        x = x.reshape(())
    shape = _resolve_shape(node.attrs["shape"], _batch_of(node, ref))
    return lax.broadcast_in_dim(x, shape, tuple(node.attrs["broadcast_dimensions"]))


@register_rule("Flatten", attrs={"start": Attr("int", 1, lo=-64, hi=63), "end": Attr("int", -1, lo=-64, hi=63)})
def _flatten(node: Node, x):
    """Merge dims ``start``..``end`` (inclusive) into one."""
    start = node.attrs["start"] % x.ndim
    end = node.attrs["end"] % x.ndim
    return x.reshape(*x.shape[:start], math.prod(x.shape[start : end + 1]), *x.shape[end + 1 :])


@register_rule("Unsqueeze", attrs={"axes": _AXES})
def _unsqueeze(node: Node, x):
    """Insert size-1 dims at ``axes`` (positions in the output)."""
    return jnp.expand_dims(x, tuple(node.attrs["axes"]))


@register_rule("SqueezeAxes", attrs={"axes": _AXES})
def _squeeze_axes(node: Node, x):
    """Drop the size-1 dims at ``axes``."""
    return jnp.squeeze(x, tuple(node.attrs["axes"]))


@register_rule("Transpose", attrs={"perm": _AXES})
def _transpose(node: Node, x):
    """Permute dims by ``perm`` (batch included)."""
    return jnp.transpose(x, tuple(node.attrs["perm"]))


@register_rule("Slice", attrs={"axes": _AXES, "starts": Attr("opt_ints"), "stops": Attr("opt_ints"), "steps": Attr("ints", ABSENT, nullable=True)}, check=_check_slice)
def _slice(node: Node, x):
    """Python slicing ``x[start:stop:step]`` on each of ``axes``."""
    a = node.attrs
    index = [slice(None)] * x.ndim
    steps = a.get("steps") or [1] * len(a["axes"])
    for ax, start, stop, step in zip(a["axes"], a["starts"], a["stops"], steps):
        index[ax] = slice(start, stop, step)
    return x[tuple(index)]


@register_rule("Split", attrs={"axis": Attr("int", lo=-64, hi=63), "sizes": Attr("ints", lo=0)}, outputs=lambda a: len(a["sizes"]))
def _split(node: Node, x):
    """Split along ``axis`` into pieces of ``sizes``."""
    cuts = np.cumsum(node.attrs["sizes"])[:-1].tolist()
    return tuple(jnp.split(x, cuts, axis=node.attrs["axis"]))


@register_rule("Index", attrs={"axis": Attr("int", lo=-64, hi=63), "index": Attr("int")})
def _index(node: Node, x):
    """``x.take(index, axis)`` for a static int ``index`` (negative from the end); drops ``axis``."""
    axis = node.attrs["axis"] % x.ndim
    return lax.index_in_dim(x, node.attrs["index"] % x.shape[axis], axis, keepdims=False)


@register_rule("Gather", attrs={"axis": Attr("int", 0, lo=-64, hi=63)})
def _gather(node: Node, x, indices):
    """``jnp.take(x, indices, axis)`` with runtime integer indices; out of range is clamped."""
    return jnp.take(x, indices.astype(jnp.int32), axis=node.attrs["axis"], mode="clip")


@register_rule("Pad", attrs={"pads": Attr("int_pairs", lo=-(1 << 30), hi=1 << 30), "value": Attr("number", 0.0), "mode": Attr("str", "constant", choices=("constant", "reflect", "edge", "wrap"))}, check=_check_pad)
def _pad(node: Node, x):
    """Pad every dim by ``pads`` [[lo, hi]] (negative crops, constant mode); modes constant/reflect/edge/wrap."""
    a = node.attrs
    pads = _pairs(a["pads"])
    mode = a["mode"]
    if mode == "constant":
        return lax.pad(x, jnp.asarray(a["value"], x.dtype), [(lo, hi, 0) for lo, hi in pads])
    return jnp.pad(x, pads, mode=mode)


@register_rule("Reverse", attrs={"axes": _AXES})
def _reverse(node: Node, x):
    """Reverse the order along ``axes``."""
    return jnp.flip(x, tuple(node.attrs["axes"]))


@register_rule("Tile", attrs={"reps": Attr("ints", lo=0, hi=1 << 30)}, check=_check_tile)
def _tile(node: Node, x):
    """Repeat ``x`` ``reps[i]`` times along each dim."""
    return jnp.tile(x, tuple(node.attrs["reps"]))


_REDUCE = {
    "sum": jnp.sum, "mean": jnp.mean, "max": jnp.max, "min": jnp.min, "prod": jnp.prod,
    "any": jnp.any, "all": jnp.all, "logsumexp": jax.nn.logsumexp,
}


@register_rule("Reduce", attrs={"reduction": Attr("str", choices=tuple(_REDUCE)), "axes": _AXES, "keepdims": Attr("bool", False)})
def _reduce(node: Node, x):
    """Reduce ``x`` over ``axes`` with ``reduction`` (sum/mean/max/min/prod/any/all/logsumexp)."""
    a = node.attrs
    return _REDUCE[a["reduction"]](x, axis=tuple(a["axes"]), keepdims=a["keepdims"])


@register_rule("ReduceArg", attrs={"reduction": Attr("str", choices=("max", "min")), "axis": Attr("int", lo=-64, hi=63), "keepdims": Attr("bool", False)})
def _reduce_arg(node: Node, x):
    """Index (int32) of the first max/min along ``axis``."""
    a = node.attrs
    fn = jnp.argmax if a["reduction"] == "max" else jnp.argmin
    return fn(x, axis=a["axis"], keepdims=a["keepdims"]).astype(jnp.int32)


@register_rule("CumSum", attrs={"axis": Attr("int", lo=-64, hi=63), "reverse": Attr("bool", False)})
def _cumsum(node: Node, x):
    """Cumulative sum along ``axis`` (from the end with ``reverse``)."""
    return lax.cumsum(x, axis=node.attrs["axis"] % x.ndim, reverse=node.attrs["reverse"])


@register_rule("Iota", attrs={**_SHAPE, "axis": Attr("int", lo=0, hi=15), "dtype": Attr("str", "int32", choices=("int8", "int16", "int32", "int64", "uint8", "uint32", "float32", "float64"))}, check=_check_shape_spec)
def _iota(node: Node, ref):
    """Index along ``axis`` of an array of a shape spec (``ref`` supplies the batch size)."""
    shape = _resolve_shape(node.attrs["shape"], _batch_of(node, ref))
    return lax.broadcasted_iota(node.attrs["dtype"], shape, node.attrs["axis"])


@register_rule("DotGeneral", attrs={"contracting": Attr("int_lists", length=2, lo=-64, hi=63), "batch": Attr("int_lists", [[], []], length=2, lo=-64, hi=63)})
def _dot_general(node: Node, a, b):
    """``lax.dot_general`` with ``contracting``/``batch`` dim lists, HIGHEST precision."""
    (lc, rc), (lb, rb) = node.attrs["contracting"], node.attrs["batch"]
    return lax.dot_general(a, b, ((tuple(lc), tuple(rc)), (tuple(lb), tuple(rb))), precision=_HIGHEST)


@register_rule("Einsum", attrs={"equation": Attr("str")})
def _einsum(node: Node, *xs):
    """``jnp.einsum(equation, *xs)`` at HIGHEST precision."""
    return jnp.einsum(node.attrs["equation"], *xs, precision=_HIGHEST)


# --- embedding -----------------------------------------------------------------------


@register_rule("Embedding")
def _embedding(node: Node, ids, table):
    """``table[ids]``; ids out of [0, V), non-integral or NaN give NaN rows."""
    if jnp.issubdtype(ids.dtype, jnp.floating):
        valid = jnp.isfinite(ids) & (ids == jnp.floor(ids))
        idx = jnp.where(valid, ids, -1.0).astype(jnp.int32)
    else:
        idx = ids.astype(jnp.int32)
        valid = jnp.ones(ids.shape, bool)
    valid = valid & (idx >= 0) & (idx < table.shape[0])
    rows = jnp.take(table, jnp.clip(idx, 0, table.shape[0] - 1), axis=0)
    return jnp.where(valid[..., None], rows, jnp.nan)


# --- recurrent -----------------------------------------------------------------------


def _mm(a, b):
    return jnp.matmul(a, b, precision=_HIGHEST)


def _lstm_cell(a: dict):
    """LSTM weights (W, R, b); gates i, f, g, o."""
    act, ract = _ACTIVATIONS[a["activation"]], _ACTIVATIONS[a["recurrent_activation"]]

    def project(x, w):
        return _mm(x, w[0].T) + w[2]

    def step(state, xw, w):
        h, c = state
        i, f, g, o = jnp.split(xw + _mm(h, w[1].T), 4, axis=-1)
        c = ract(f) * c + ract(i) * act(g)
        h = ract(o) * act(c)
        return (h, c), h

    return 3, project, step


def _gru_cell(a: dict):
    """GRU weights (W, R, b_w, b_r); gates r, z, n."""
    act, ract = _ACTIVATIONS[a["activation"]], _ACTIVATIONS[a["recurrent_activation"]]
    before = a["linear_before_reset"]

    def project(x, w):
        return _mm(x, w[0].T) + w[2]

    def step(state, xw, w):
        (h,) = state
        xr, xz, xn = jnp.split(xw, 3, axis=-1)
        rr, rz, rn = jnp.split(w[1], 3, axis=0)
        br_r, br_z, br_n = jnp.split(w[3], 3)
        reset = ract(xr + _mm(h, rr.T) + br_r)
        z = ract(xz + _mm(h, rz.T) + br_z)
        if before:
            n = act(xn + reset * (_mm(h, rn.T) + br_n))
        else:
            n = act(xn + _mm(reset * h, rn.T) + br_n)
        h = (1.0 - z) * n + z * h
        return (h,), h

    return 4, project, step


def _rnn_cell(a: dict):
    """Elman RNN weights (W, R, b_w, b_r)."""
    act = _ACTIVATIONS[a["activation"]]

    def project(x, w):
        return _mm(x, w[0].T) + w[2] + w[3]

    def step(state, xw, w):
        (h,) = state
        h = act(xw + _mm(h, w[1].T))
        return (h,), h

    return 4, project, step


def _recurrent(node: Node, inputs: tuple, make_cell, n_states: int):
    """Run the stacked, optionally bidirectional recurrence; returns (y, *final states)."""
    a = node.attrs
    n_weights, project, step = make_cell(a)
    layers, dirs = int(a["num_layers"]), 2 if a["bidirectional"] else 1
    hidden = int(a["hidden_size"])
    x, rest = inputs[0], inputs[1:]
    n_w = layers * dirs * n_weights
    weights, init = rest[:n_w], rest[n_w:]
    if len(init) not in (0, n_states):
        raise UnsupportedModelError(f"{node.op} node {node.name!r}: expected 0 or {n_states} initial states, got {len(init)}")
    batch_first = a["batch_first"]
    seq = jnp.swapaxes(x, 0, 1) if batch_first else x  # [T, B, I]
    batch = seq.shape[1]
    finals: list[list] = [[] for _ in range(n_states)]
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            w = weights[k * n_weights : (k + 1) * n_weights]
            if init:
                state = tuple(s[k] for s in init)
            else:
                state = tuple(jnp.zeros((batch, hidden), x.dtype) for _ in range(n_states))
            last, ys = lax.scan(lambda s, xt, w=w: step(s, xt, w), state, project(seq, w), reverse=d == 1)
            outs.append(ys)
            for i, s in enumerate(last):
                finals[i].append(s)
        seq = outs[0] if dirs == 1 else jnp.concatenate(outs, axis=-1)
    y = jnp.swapaxes(seq, 0, 1) if batch_first else seq
    return (y, *(jnp.stack(f) for f in finals))


_recurrent_attrs = {
    "hidden_size": Attr("int", lo=1, hi=1 << 20), "num_layers": Attr("int", 1, lo=1, hi=64),
    "bidirectional": Attr("bool", False), "batch_first": Attr("bool", True),
    "activation": Attr("str", "Tanh", choices=tuple(_ACTIVATIONS)),
    "recurrent_activation": Attr("str", "Sigmoid", choices=tuple(_ACTIVATIONS)),
}


def _check_recurrent(n_weights: int, n_states: int) -> Callable:
    """The input count check of a recurrent op: x, the weights of every layer and direction, 0 or ``n_states`` states."""

    def check(node: Node, shapes: Sequence[tuple | None], budget: int) -> None:
        a = node.attrs
        weights = a["num_layers"] * (2 if a["bidirectional"] else 1) * n_weights
        if len(node.inputs) not in (1 + weights, 1 + weights + n_states):
            raise ValueError(f"expected {1 + weights} or {1 + weights + n_states} inputs, found {len(node.inputs)}")

    return check


@register_rule("LSTM", attrs=_recurrent_attrs, inputs=(1, math.inf), outputs=3, check=_check_recurrent(3, 2))
def _lstm(node: Node, *inputs):
    """Multi-layer (bi)LSTM, torch semantics and gate order i, f, g, o; outputs (y, h_n, c_n)."""
    return _recurrent(node, inputs, _lstm_cell, 2)


@register_rule("GRU", attrs={**_recurrent_attrs, "linear_before_reset": Attr("bool", True)}, inputs=(1, math.inf), outputs=2, check=_check_recurrent(4, 1))
def _gru(node: Node, *inputs):
    """Multi-layer (bi)GRU, torch semantics and gate order r, z, n; outputs (y, h_n)."""
    return _recurrent(node, inputs, _gru_cell, 1)


@register_rule("SimpleRNN", attrs=_recurrent_attrs, inputs=(1, math.inf), outputs=2, check=_check_recurrent(4, 1))
def _simple_rnn(node: Node, *inputs):
    """Multi-layer (bi) Elman RNN: h' = act(W x + b_w + R h + b_r); outputs (y, h_n)."""
    return _recurrent(node, inputs, _rnn_cell, 1)


# --- attention -----------------------------------------------------------------------


def _sdpa(q, k, v, mask, a: dict):
    scale = a.get("scale")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    s = _mm(q, jnp.swapaxes(k, -1, -2)) * scale
    if a["is_causal"]:
        s = jnp.where(jnp.tril(jnp.ones((q.shape[-2], k.shape[-2]), bool)), s, -jnp.inf)
    if mask is not None:
        if a["mask_kind"] == "bool":
            s = jnp.where(mask.astype(bool), s, -jnp.inf)
        else:
            s = s + mask
    p = jax.nn.softmax(s, axis=-1)
    p = jnp.where(jnp.max(s, axis=-1, keepdims=True) == -jnp.inf, 0.0, p)  # no key to attend: zeros, as torch
    return _mm(p, v)


@register_rule("ScaledDotProductAttention", attrs=_SDPA)
def _scaled_dot_product_attention(node: Node, q, k, v, mask=None):
    """softmax(q kᵀ · scale + mask) v, torch ``scaled_dot_product_attention`` semantics."""
    return _sdpa(q, k, v, mask, node.attrs)


@register_rule("MultiHeadAttention", attrs={**_SDPA, "num_heads": Attr("int", lo=1, hi=1 << 16)})
def _multi_head_attention(node: Node, query, key, value, wq, bq, wk, bk, wv, bv, wo, bo, mask=None):
    """Batch-first multi-head attention with input/output projections (``x @ w + b`` layout)."""
    h = int(node.attrs["num_heads"])

    def heads(x, w, b):
        y = _mm(x, w) + b
        return jnp.swapaxes(y.reshape(*y.shape[:-1], h, y.shape[-1] // h), -2, -3)  # [B, H, T, E]

    o = _sdpa(heads(query, wq, bq), heads(key, wk, bk), heads(value, wv, bv), mask, node.attrs)
    o = jnp.swapaxes(o, -2, -3)
    return _mm(o.reshape(*o.shape[:-2], -1), wo) + bo
