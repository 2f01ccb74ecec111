"""Faster formulations of the ``Conv`` op for shapes where XLA:CPU's convolution is slow.

XLA:CPU lowers ``lax.conv_general_dilated`` to one of two kernels: Eigen's
spatial convolution when the operands fit its layout, a plain loop nest
otherwise. Both are far off a tuned library on three kinds of shapes:

* **grouped convolutions with few input channels per group** (depthwise:
  one channel per group; also a convolution of a one-channel image). XLA
  runs them as a loop nest, 30-200x slower than torch.
* **small spatial maps** (a 3x3 conv on a 2x2 or 4x4 map, the last stage of
  a ResNet on a small image). Eigen's patch extraction is dominated by the
  padding there: a 3x3 512->512 conv on a 2x2 map at batch 32 takes 0.3-2 s
  against 5-15 ms in torch.
* **1x1 convolutions**, which are one matrix product.

:func:`fast_conv` picks, from the static shapes alone (known at trace time),
one of these formulations, or returns ``None`` to keep ``lax``'s convolution:

``taps``
    grouped multiply-add: the output is the sum, over kernel taps and input
    channels of a group, of a shifted (strided, dilated) slice of the padded
    input times a per-output-channel weight. XLA fuses the whole sum into one
    loop over the output. Used when a group has at most ``_MAX_TERMS / taps``
    input channels.
``dots``
    one matrix product of the stacked tap slices (im2col, in the weight's own
    order so the weight is reshaped, never copied): used for ``groups == 1``
    when the output map has at most ``_SMALL_MAP`` cells or the kernel is 1x1.

Every formulation computes the same sums as the convolution in a different
order; the float32 results differ from torch's by rounding only (~1e-7
relative; the tests bound them at 1e-5 against ``torch.nn.functional.conv*``).
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import jax.numpy as jnp
from jax import lax

#: Most multiply-add terms (kernel taps x input channels per group) for the ``taps`` formulation.
_MAX_TERMS = 64
#: The same for an ungrouped convolution with several input channels (an RGB stem's 3x3 kernel: 27 terms).
_MAX_TERMS_DENSE = 32
#: Most output cells (product of the output's spatial sizes) for the ``dots`` formulation of a k>1 kernel.
_SMALL_MAP = 16

_HIGHEST = lax.Precision.HIGHEST


def plan(in_per_group: int, groups: int, kernel: Sequence[int], out_spatial: Sequence[int]) -> str:
    """Which formulation :func:`fast_conv` uses: ``"taps"``, ``"dots"`` or ``"lax"``.

    ``in_per_group`` is the weight's input-channel dim (I / groups); the
    decision depends on static shapes only.
    """
    taps = math.prod(kernel)
    if min(out_spatial, default=1) <= 0:
        return "lax"
    if groups > 1 or in_per_group == 1:
        if in_per_group * taps <= _MAX_TERMS:
            return "taps"
    elif taps > 1 and in_per_group * taps <= _MAX_TERMS_DENSE:
        return "taps"
    if groups == 1 and (taps == 1 or math.prod(out_spatial) <= _SMALL_MAP):
        return "dots"
    return "lax"


def out_size(n: int, k: int, stride: int, pad: tuple[int, int], dilation: int) -> int:
    """Output length of one spatial dim (torch's / lax's formula)."""
    return (n + pad[0] + pad[1] - dilation * (k - 1) - 1) // stride + 1


def fast_conv(x, w, strides: Sequence[int], padding: Sequence[tuple[int, int]], dilation: Sequence[int], groups: int,
              layout: str):
    """The convolution of ``x`` with ``w`` (``Conv`` op layouts) by a faster formulation, or ``None``.

    ``None`` means no formulation here beats ``lax.conv_general_dilated`` for
    these shapes; the caller then uses it.
    """
    rank = w.ndim - 2
    first = layout == "channels_first"
    sp = list(range(2, 2 + rank)) if first else list(range(1, 1 + rank))
    kernel = list(w.shape[2:]) if first else list(w.shape[:rank])
    cg = w.shape[1] if first else w.shape[rank]
    out_ch = w.shape[0] if first else w.shape[-1]
    outs = [out_size(x.shape[a], k, s, p, d) for a, k, s, p, d in zip(sp, kernel, strides, padding, dilation)]
    how = plan(cg, groups, kernel, outs)
    if how == "lax" or x.shape[1 if first else -1] != cg * groups:
        return None
    config = [(0, 0, 0)] * x.ndim
    for a, p in zip(sp, padding):
        config[a] = (p[0], p[1], 0)
    xp = lax.pad(x, jnp.zeros((), x.dtype), config) if any(p != (0, 0) for p in padding) else x
    if how == "taps":
        return _taps(xp, w, sp, kernel, outs, strides, dilation, groups, cg, out_ch, first)
    return _dots(xp, w, sp, kernel, outs, strides, dilation, first)


def _tap_slices(xp, sp: list[int], kernel: list[int], outs: list[int], strides, dilation):
    """(tap index, slice of the padded input that tap multiplies) for every kernel tap."""
    for tap in itertools.product(*(range(k) for k in kernel)):
        start = [0] * xp.ndim
        limit = list(xp.shape)
        step = [1] * xp.ndim
        for a, t, o, s, d in zip(sp, tap, outs, strides, dilation):
            start[a], limit[a], step[a] = t * d, t * d + (o - 1) * s + 1, s
        yield tap, lax.slice(xp, start, limit, step)


def _taps(xp, w, sp, kernel, outs, strides, dilation, groups: int, cg: int, out_ch: int, first: bool):
    """Sum over taps and in-group channels of input slice x weight (grouped multiply-add)."""
    og = out_ch // groups
    n = xp.shape[0]
    total = None
    for tap, t in _tap_slices(xp, sp, kernel, outs, strides, dilation):
        if first:  # t [N, g*cg, *S] -> [N, g, cg, *S]; weight [O, cg, *K] -> [g, og, cg]
            t = t.reshape(n, groups, cg, *outs)
            wt = w[(slice(None), slice(None), *tap)].reshape(groups, og, cg)
            for c in range(cg):
                term = t[:, :, c:c + 1] * wt[:, :, c].reshape(groups, og, *([1] * len(outs)))
                total = term if total is None else total + term
        else:  # t [N, *S, g*cg] -> [N, *S, g, cg]; weight [*K, cg, O] -> [cg, g, og]
            t = t.reshape(n, *outs, groups, cg)
            wt = w[tap].reshape(cg, groups, og)
            for c in range(cg):
                term = t[..., c:c + 1] * wt[c]
                total = term if total is None else total + term
    return total.reshape(n, out_ch, *outs) if first else total.reshape(n, *outs, out_ch)


def _dots(xp, w, sp, kernel, outs, strides, dilation, first: bool):
    """One matrix product over (input channel, tap) of the stacked tap slices (im2col; groups == 1).

    The patches are ordered as the weight is stored ([O, C, *K] or [*K, C, O]),
    so the weight enters the product as a free reshape, never a copy.
    """
    n = xp.shape[0]
    slices = [t for _, t in _tap_slices(xp, sp, kernel, outs, strides, dilation)]
    taps = len(slices)
    if first:  # [N, C, taps, *S] -> [N, C*taps, cells] . [O, C*taps]
        cols = slices[0] if taps == 1 else jnp.stack(slices, axis=2)
        cols = cols.reshape(n, -1, math.prod(outs))
        y = jnp.einsum("nkp,ok->nop", cols, w.reshape(w.shape[0], -1), precision=_HIGHEST)
        return y.reshape(n, w.shape[0], *outs)
    cols = slices[0] if taps == 1 else jnp.stack(slices, axis=-2)  # [N, *S, taps, C] -> [N, cells, taps*C] . [taps*C, O]
    cols = cols.reshape(n, math.prod(outs), -1)
    y = jnp.einsum("npk,ko->npo", cols, w.reshape(-1, w.shape[-1]), precision=_HIGHEST)
    return y.reshape(n, *outs, w.shape[-1])
