"""The Conv op's formulations (lowering/conv_paths.py) against torch.nn.functional.conv*d.

Each case names the formulation the shape must take, so that every path is
exercised, and compares the Conv rule's output, in both layouts, with torch.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mlejax.format.graph import Node
from mlejax.lowering import conv_paths
from mlejax.lowering.registry import get_rule

torch = pytest.importorskip("torch")
F = torch.nn.functional

#: (path, N, C, O, spatial, kernel, stride, padding [(lo, hi)], dilation, groups, bias)
CASES = {
    "depthwise_3x3": ("taps", 2, 8, 8, (9, 9), (3, 3), (1, 1), [(1, 1)] * 2, (1, 1), 8, True),
    "depthwise_5x5_stride2": ("taps", 3, 6, 6, (11, 10), (5, 5), (2, 2), [(2, 2)] * 2, (1, 1), 6, False),
    "depthwise_multiplier_dilation": ("taps", 2, 4, 12, (12, 12), (3, 3), (1, 1), [(2, 2)] * 2, (2, 2), 4, True),
    "depthwise_uneven_padding": ("taps", 2, 5, 5, (8, 9), (3, 2), (2, 1), [(0, 1), (1, 0)], (1, 1), 5, True),
    "depthwise_1d": ("taps", 2, 6, 6, (20,), (7,), (1,), [(3, 3)], (1,), 6, True),
    "depthwise_3d": ("taps", 2, 3, 3, (5, 6, 7), (3, 3, 3), (1, 2, 1), [(1, 1)] * 3, (1, 1, 1), 3, True),
    "grouped_4_per_group": ("taps", 2, 16, 16, (10, 10), (3, 3), (1, 1), [(1, 1)] * 2, (1, 1), 4, True),
    "rgb_stem_3x3": ("taps", 2, 3, 8, (15, 15), (3, 3), (2, 2), [(1, 1)] * 2, (1, 1), 1, True),
    "one_channel_image": ("taps", 4, 1, 6, (28, 28), (5, 5), (1, 1), [(2, 2)] * 2, (1, 1), 1, True),
    "small_map_3x3": ("dots", 3, 32, 24, (2, 2), (3, 3), (1, 1), [(1, 1)] * 2, (1, 1), 1, True),
    "small_map_stride2": ("dots", 2, 16, 20, (7, 8), (3, 3), (2, 2), [(1, 1)] * 2, (1, 1), 1, False),
    "small_map_dilated": ("dots", 2, 8, 8, (4, 4), (3, 3), (1, 1), [(2, 2)] * 2, (2, 2), 1, True),
    "pointwise": ("dots", 2, 24, 40, (9, 11), (1, 1), (1, 1), [(0, 0)] * 2, (1, 1), 1, True),
    "pointwise_stride2": ("dots", 2, 12, 16, (9, 9), (1, 1), (2, 2), [(0, 0)] * 2, (1, 1), 1, True),
    "pointwise_1d": ("dots", 2, 12, 16, (15,), (1,), (1,), [(0, 0)], (1,), 1, False),
    "negative_padding": ("dots", 2, 8, 8, (6, 6), (3, 3), (1, 1), [(-1, 0), (0, -1)], (1, 1), 1, True),
    "large_map_3x3": ("lax", 2, 16, 16, (12, 12), (3, 3), (1, 1), [(1, 1)] * 2, (1, 1), 1, True),
    "stem_7x7": ("lax", 2, 3, 8, (20, 20), (7, 7), (2, 2), [(3, 3)] * 2, (1, 1), 1, False),
    "grouped_wide": ("lax", 2, 64, 64, (6, 6), (3, 3), (1, 1), [(1, 1)] * 2, (1, 1), 2, True),
}


def _torch_conv(x, w, b, stride, padding, dilation, groups):
    """torch's convolution; uneven or negative padding applied with F.pad first."""
    rank = x.ndim - 2
    pads = [p for lo_hi in reversed(padding) for p in lo_hi]  # F.pad lists the last dim first
    xt = F.pad(torch.from_numpy(x), pads)
    conv = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    return conv(xt, torch.from_numpy(w), None if b is None else torch.from_numpy(b), stride=stride, dilation=dilation, groups=groups).numpy()


def _rule(layout, strides, padding, dilation, groups):
    node = Node("Conv", 1, "conv", ("x", "w", "b"), ("y",),
                {"strides": list(strides), "padding": [list(p) for p in padding], "dilation": list(dilation), "groups": groups, "layout": layout})
    return jax.jit(lambda *args: get_rule(node)(node, *args))


#: Variants that repeat a path of the default run in another rank or geometry (run with ``-m slow``).
_SLOW = {"depthwise_3d", "depthwise_1d", "depthwise_uneven_padding", "small_map_dilated", "pointwise_1d", "grouped_wide", "stem_7x7"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in sorted(CASES)])
def test_conv_formulation_matches_torch(name):
    path, n, c, o, spatial, kernel, stride, padding, dilation, groups, bias = CASES[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    x = rng.standard_normal((n, c, *spatial)).astype(np.float32)
    w = rng.standard_normal((o, c // groups, *kernel)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    outs = [conv_paths.out_size(s, k, st, p, d) for s, k, st, p, d in zip(spatial, kernel, stride, padding, dilation)]
    assert conv_paths.plan(c // groups, groups, kernel, outs) == path
    ref = _torch_conv(x, w, b, stride, padding, dilation, groups)
    scale = float(np.abs(ref).max())
    rank = len(spatial)
    args = (b,) if bias else ()
    first = np.asarray(_rule("channels_first", stride, padding, dilation, groups)(x, w, *args))
    assert first.shape == ref.shape
    assert np.abs(first - ref).max() <= 1e-6 * scale
    to_last = (0, *range(2, 2 + rank), 1)
    w_last = np.ascontiguousarray(np.transpose(w, (*range(2, 2 + rank), 1, 0)))  # [*K, I/g, O]
    last = np.asarray(_rule("channels_last", stride, padding, dilation, groups)(np.ascontiguousarray(x.transpose(to_last)), w_last, *args))
    assert np.abs(last - ref.transpose(to_last)).max() <= 1e-6 * scale


def test_plan_is_static_per_shape():
    """The choice depends on shapes only; shapes no formulation handles keep lax's convolution."""
    assert conv_paths.plan(1, 96, (3, 3), (56, 56)) == "taps"
    assert conv_paths.plan(512, 1, (3, 3), (2, 2)) == "dots"
    assert conv_paths.plan(64, 1, (3, 3), (56, 56)) == "lax"
    assert conv_paths.plan(1, 8, (3, 3), (0, 4)) == "lax"
