"""Every device of one platform: device selection, batch size, and a model output run sharded over a mesh.

:class:`ShardedRunner` runs one graph output of a :class:`~mlejax.Model` over
``jax.make_mesh((n,), ("data",))``: the stored tensors are placed on every
device once (replicated, ``P()``), each batch is split by rows
(``NamedSharding(mesh, P("data"))``), and each device runs the model's own
program on its rows through ``jax.shard_map``, so a row's result does not
depend on how many devices there are. Batches are padded to the model's
batch buckets per device, so the number of compiled shapes stays bounded.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from ..lowering.cache import enable_persistent_cache
from ..lowering.program import bucket_for
from ..model import Model

__all__ = ["select_devices", "pick_batch_rows", "ShardedRunner"]

#: Rows per device at most: CPU batches above the model's tile size gain nothing; GPUs get up to this.
_MAX_ROWS_ACCELERATOR = 1 << 20
_MIN_ROWS = 1024
#: Device memory per row of input + output, as a multiple of its bytes (room for intermediates).
_ROW_BYTES_FACTOR = 256


def select_devices(device: Any, platform: str | None = None) -> list[jax.Device]:
    """The devices to score on: ``None`` → every device of ``platform`` (default: JAX's default platform);
    ``"cpu"``/``"gpu"`` → every device of that platform; a ``jax.Device`` or a list of them → those."""
    if device is None:
        return jax.devices(platform) if platform else jax.devices()
    if isinstance(device, str):
        try:
            return jax.devices(device)
        except RuntimeError as exc:
            raise ValueError(f"no {device!r} device available to JAX ({exc}); present: {jax.devices()}") from None
    devices = list(device) if isinstance(device, (list, tuple)) else [device]
    if not devices or len({d.platform for d in devices}) != 1:
        raise ValueError(f"device=: give one or more devices of one platform, got {devices}")
    return devices


def pick_batch_rows(model: Model, row_bytes: int, devices: Sequence[jax.Device]) -> int:
    """Rows per batch for all ``devices`` together: a power of two per device that fits its free memory.

    On CPU: the model's tile size (``load_model(max_tile=)``). On an accelerator:
    an eighth of the free device memory over ``256 x row_bytes``, at most 2**20.
    """
    if devices[0].platform == "cpu":
        per_device = min(model.program.max_tile, 1 << 16)
    else:
        stats = devices[0].memory_stats() or {}
        free = stats.get("bytes_limit", 8 << 30) - stats.get("bytes_in_use", 0)
        per_device = min(max(free // 8 // (row_bytes * _ROW_BYTES_FACTOR), _MIN_ROWS), _MAX_ROWS_ACCELERATOR)
    return (1 << (int(per_device).bit_length() - 1)) * len(devices)


class ShardedRunner:
    """Graph ``output`` of ``model`` as one program over ``devices`` (sharded by rows)."""

    def __init__(self, model: Model, output: str, devices: Sequence[jax.Device]) -> None:
        program = model.program
        if devices[0].platform != program.device.platform:
            raise ValueError(
                f"the model is loaded on {program.device.platform} but the devices asked for are {devices[0].platform}: "
                f"load it with mlejax.load_model(path, device={devices[0].platform!r}) or pass its path"
            )
        enable_persistent_cache()
        self.devices = list(devices)
        self.buckets = program.batch_buckets
        mesh = jax.make_mesh((len(devices),), ("data",), devices=self.devices)
        self.rows = NamedSharding(mesh, P("data"))
        self.params = jax.device_put(program.params, NamedSharding(mesh, P()))
        f = program.function([output])
        n_inputs = len(model.graph.inputs)
        self._fn = jax.jit(jax.shard_map(lambda params, *xs: f(params, *xs)[0], mesh=mesh,
                                         in_specs=(P(), *[P("data")] * n_inputs), out_specs=P("data"), check_vma=False))

    def padded(self, rows: int) -> int:
        """Rows a batch of ``rows`` is run as: a bucket per device, times the device count."""
        n = len(self.devices)
        return bucket_for(-(-rows // n), self.buckets, 1 << 62) * n

    def put(self, arrays: Sequence[np.ndarray]) -> list[jax.Array]:
        """Start copying (padded) host arrays to the devices, split by rows."""
        return [jax.device_put(a, self.rows) for a in arrays]

    def dispatch(self, arrays: Sequence[jax.Array]) -> jax.Array:
        """Start the program on arrays from :meth:`put`; the result is a future (``block_until_ready``)."""
        return self._fn(self.params, *arrays)
