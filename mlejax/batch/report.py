"""What a scoring run did: rows, time, time per stage, peak memory, devices."""

from __future__ import annotations

import dataclasses
import resource
import sys
from typing import Any

__all__ = ["ScoreReport", "STAGES", "peak_rss_bytes"]

#: Pipeline stages, in order. Each is the time its thread spent working (not waiting), so with
#: the stages overlapped, ``seconds`` stays near the slowest stage rather than their sum.
STAGES = ("read", "host_to_device", "compute", "device_to_host", "write")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux: ``VmHWM``, which, unlike ``ru_maxrss``, starts afresh at exec)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclasses.dataclass
class ScoreReport:
    """The result of :func:`mlejax.score`.

    ``stages`` are seconds per stage (see :data:`STAGES`); on accelerators,
    asynchronous copies and compute are counted where they are waited for.
    ``output`` is the output path, or the predictions as a ``pyarrow.Table``
    when no sink was given.
    """

    rows: int
    seconds: float
    stages: dict[str, float]
    peak_rss_bytes: int
    devices: list[str]
    method: str
    columns: list[str]
    output_columns: list[str]
    batch_rows: int
    batches: int
    output: Any = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        """Everything but an in-memory ``output`` table, JSON-ready."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["output"] = self.output if isinstance(self.output, str) else None
        out["rows_per_s"] = self.rows_per_s
        return out

    def summary(self) -> str:
        """One line: rows, time, rate, devices, stage times, peak memory."""
        stages = ", ".join(f"{name} {self.stages.get(name, 0.0):.2f}" for name in STAGES)
        where = f" -> {self.output}" if isinstance(self.output, str) else ""
        return (f"scored {self.rows:,} rows in {self.seconds:.2f} s ({self.rows_per_s:,.0f} rows/s) on {len(self.devices)} "
                f"device(s) {', '.join(self.devices)}{where}; stages (s): {stages}; peak RSS {self.peak_rss_bytes / 2**20:,.0f} MiB")

    def __repr__(self) -> str:
        return f"<ScoreReport: {self.summary()}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..display import mimebundle, score_html

        return mimebundle(self, score_html, include, exclude)
