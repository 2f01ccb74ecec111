"""Plots of mlejax's reports (needs matplotlib: ``pip install "mlejax[plot]"``).

matplotlib is imported when a plot is asked for, never with mlejax. Each
function returns the matplotlib ``Figure`` (Jupyter shows it); the reports
call them from their ``plot()`` methods:

- :meth:`mlejax.ExportReport.plot` → :func:`parity`: ours against the source
  model on the export's ``sample_input``;
- :meth:`mlejax.BenchmarkReport.plot` → :func:`benchmark`: latency by batch
  size and throughput against the peers;
- ``inspect_model(path).plot()`` → :func:`inspect`: bytes per tensor and op
  counts.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["parity", "benchmark", "inspect"]

#: Tensors drawn by :func:`inspect` (the largest; the rest are summed into one bar).
TOP_TENSORS = 15


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(f"plots need matplotlib ({exc}): pip install 'mlejax[plot]'") from exc
    return plt


def parity(report: Any, method: str | None = None) -> Any:
    """Ours (y) against the source model (x) for each method the export checked, with the line y = x.

    ``report`` is an :class:`~mlejax.ExportReport` from an export with
    ``sample_input``; ``method`` draws that method only. Each panel's title
    gives the worst absolute error of the check.
    """
    samples = dict(getattr(report, "samples", {}) or {})
    if method is not None:
        if method not in samples:
            raise ValueError(f"no parity samples for {method!r}; the export checked {sorted(samples)}")
        samples = {method: samples[method]}
    if not samples:
        raise ValueError("no parity samples to plot: export with sample_input= to check the file against the source model"
                         " (label outputs are checked by count, not plotted)")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(samples), figsize=(4.2 * len(samples), 4), squeeze=False)
    verification = report.get("verification") or {}
    for ax, (name, (native, ours)) in zip(axes[0], samples.items()):
        ax.scatter(native, ours, s=6, alpha=0.6, label="values")
        finite = np.concatenate([native[np.isfinite(native)], ours[np.isfinite(ours)]])
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--", label="y = x")
        worst = (verification.get(name) or {}).get("max_abs_error")
        ax.set_title(name if worst is None else f"{name}: max |Δ| = {worst:.2g}", fontsize=10)
        ax.set_xlabel(f"source model ({report.get('estimator', 'native')})", fontsize=8)
        ax.set_ylabel("mlejax")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def benchmark(report: Any) -> Any:
    """Two panels: median latency by batch size (one line per runner, log-log) and rows/s per runner at the largest batch.

    ``report`` is a :class:`~mlejax.BenchmarkReport`.
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for runner in report.runners:
        latency = report.latency(runner)
        left.plot(list(latency), list(latency.values()), marker="o", label=runner)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("batch size (rows)")
    left.set_ylabel("median latency (ms)")
    left.set_title(f"latency by batch size ({report.method})", fontsize=10)
    left.legend(fontsize=8)
    left.grid(alpha=0.3, which="both")
    rows = max(report.batch_sizes)
    rates = report.throughput(rows)
    bars = right.bar(list(rates), list(rates.values()))
    for b, runner in zip(bars, rates):
        if runner == "mlejax":
            b.set_edgecolor("black")
            b.set_linewidth(1.5)
    right.set_ylabel(f"rows/s at {rows} rows")
    right.set_title("throughput against peers", fontsize=10)
    right.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def inspect(info: Mapping[str, Any], top: int = TOP_TENSORS) -> Any:
    """Two panels from an :func:`~mlejax.inspect_model` report: bytes per tensor (the ``top`` largest) and op counts."""
    plt = _pyplot()
    tensors = sorted(info.get("tensors", []), key=lambda t: -t["nbytes"])
    shown = tensors[:top]
    names = [t["name"] for t in shown]
    sizes = [t["nbytes"] for t in shown]
    if len(tensors) > top:
        names.append(f"{len(tensors) - top} others")
        sizes.append(sum(t["nbytes"] for t in tensors[top:]))
    ops = sorted(info.get("ops", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.28 * max(len(names), len(ops)) + 1.2)))
    left.barh(names[::-1], sizes[::-1])
    left.set_xlabel("bytes")
    left.set_title(f"bytes per tensor ({info.get('tensor_bytes', sum(sizes)):,} in all)", fontsize=10)
    right.barh([k for k, _ in ops][::-1], [v for _, v in ops][::-1])
    right.set_xlabel("nodes")
    right.set_title("op counts", fontsize=10)
    for ax in (left, right):
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
