"""``benchmark``: a model's latency and throughput over batch sizes, beside peers, as a report you can plot."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .progress import bar

__all__ = ["benchmark", "BenchmarkReport"]


@dataclass
class BenchmarkReport:
    """What :func:`benchmark` measured: one row per (runner, batch size).

    Each row has ``runner`` (``"mlejax"`` or a peer's name), ``batch_size``,
    ``p50_ms``, ``p95_ms``, ``mean_ms``, ``rows_per_s`` (batch size ÷ median
    time) and ``first_call_ms`` (mlejax: the call that compiles). :meth:`plot`
    draws latency by batch size and throughput against the peers; in Jupyter
    the report shows as a table.
    """

    method: str
    device: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def runners(self) -> list[str]:
        """Runner names, in the order measured (``"mlejax"`` first)."""
        return list(dict.fromkeys(r["runner"] for r in self.rows))

    @property
    def batch_sizes(self) -> list[int]:
        """Batch sizes measured, ascending."""
        return sorted({r["batch_size"] for r in self.rows})

    def latency(self, runner: str = "mlejax") -> dict[int, float]:
        """``{batch_size: median ms}`` of ``runner``."""
        return {r["batch_size"]: r["p50_ms"] for r in sorted(self.rows, key=lambda r: r["batch_size"]) if r["runner"] == runner}

    def throughput(self, batch_size: int) -> dict[str, float]:
        """``{runner: rows/s}`` at ``batch_size``."""
        return {r["runner"]: r["rows_per_s"] for r in self.rows if r["batch_size"] == batch_size}

    def plot(self) -> Any:
        """Latency by batch size and throughput against peers (needs matplotlib); see :func:`mlejax.plot.benchmark`."""
        from .plot import benchmark as plot_benchmark

        return plot_benchmark(self)

    def __str__(self) -> str:
        head = f"{'runner':<16}{'batch':>9}{'p50 ms':>11}{'p95 ms':>11}{'rows/s':>14}"
        lines = [head] + [
            f"{r['runner']:<16}{r['batch_size']:>9}{r['p50_ms']:>11.4g}{r['p95_ms']:>11.4g}{r['rows_per_s']:>14,.0f}" for r in self.rows
        ]
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .display import benchmark_html, mimebundle

        return mimebundle(self, benchmark_html, include, exclude)


def _take(X: Any, n: int) -> Any:
    """The first ``n`` rows of ``X``, repeated from the top when ``X`` is shorter."""
    index = np.arange(n) % len(X)
    return X.iloc[index] if hasattr(X, "iloc") else np.asarray(X)[index]


def _time_calls(fn: Callable[[], Any], num_runs: int, warmup: int) -> tuple[float, np.ndarray]:
    """(first call ms, ms of each of ``num_runs`` timed calls after ``warmup`` untimed ones)."""
    start = time.perf_counter()
    fn()
    first = (time.perf_counter() - start) * 1e3
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(num_runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, np.asarray(times) * 1e3


def benchmark(
    model: Any,
    X: Any,
    *,
    batch_sizes: Sequence[int] = (1, 64, 4096),
    peers: Mapping[str, Callable[[Any], Any]] | None = None,
    method: str | None = None,
    num_runs: int = 20,
    warmup: int = 2,
    progress: bool | None = None,
) -> BenchmarkReport:
    """Time ``model``'s ``method`` and each peer on the first ``batch_size`` rows of ``X``, for every batch size.

    Args:
      model: a loaded :class:`~mlejax.Model` or the path of a ``.mle`` file.
      X: rows (numpy array or DataFrame); repeated from the top when a batch
        size is larger.
      batch_sizes: the batch sizes to time.
      peers: ``{name: function(batch)}`` to time beside mlejax, e.g.
        ``{"sklearn": clf.predict_proba}``.
      method: the model's method (default: ``predict``).
      num_runs, warmup: timed and untimed calls per runner and batch size.
      progress: a bar over the runs on a terminal (see :mod:`mlejax.progress`).

    Returns:
      A :class:`BenchmarkReport`; ``.plot()`` draws it.
    """
    from .model import Model, load_model

    if not isinstance(model, Model):
        model = load_model(os.fspath(model))
    method = method or ("predict" if "predict" in model.methods else sorted(model.methods)[0])
    runners: dict[str, Callable[[Any], Any]] = {"mlejax": getattr(model, method), **dict(peers or {})}
    report = BenchmarkReport(method=method, device=str(model.device))
    sizes = sorted({int(b) for b in batch_sizes})
    with bar(total=len(sizes) * len(runners), desc="benchmark", unit="run", progress=progress) as runs:
        for size in sizes:
            batch = _take(X, size)
            for name, fn in runners.items():
                runs.set_postfix_str(f"{name}, {size} rows")
                first, t = _time_calls(lambda: np.asarray(fn(batch)), num_runs, warmup)
                median = statistics.median(t.tolist())
                report.rows.append({
                    "runner": name, "batch_size": size, "p50_ms": median, "p95_ms": float(np.percentile(t, 95)),
                    "mean_ms": float(t.mean()), "rows_per_s": size / (median / 1e3) if median > 0 else float("inf"),
                    "first_call_ms": first,
                })
                runs.update()
    return report
