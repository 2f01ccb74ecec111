"""Dequantization ops: stored low-precision weights turned back into float32 inside the XLA program.

``export_model(quantize="int8")`` stores a weight ``w`` as ``q`` (int8) and
``scale`` (float32, one per output channel) and inserts a ``Dequantize`` node
whose output replaces ``w`` in the graph; ``"fp16"``/``"bf16"`` store ``w`` in
half precision behind a ``Cast`` to float32 (``ops_core``). The file and the
device hold the small tensors; XLA fuses the dequantization into its consumers.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..format.graph import Node
from .registry import register_rule


@register_rule("Dequantize")
def _dequantize(node: Node, q, scale):
    """``float32(q) * scale`` with numpy broadcasting (``scale`` keeps ``q``'s rank, size 1 off the channel axis).

    Symmetric quantization: there is no zero point.
    """
    return q.astype(jnp.float32) * scale.astype(jnp.float32)
