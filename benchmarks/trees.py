"""Tree-ensemble benchmark: mlejax against every peer, side by side, in one process.

Trains the models of issue 7 on make_classification data (float32, 28
features), converts each one for every peer (see ``benchmarks/_peers.py``),
and measures, per peer: conversion time, file size, load time, first-call
time, batch-1 latency (p50/p99), throughput at 1k / 100k / 1M rows, the RSS
high-water delta of the big calls, and the max abs difference of the peer's
probabilities from the native model's. It prints markdown tables with the
ratio of mlejax to each peer and writes them, a PNG and the raw JSON to
``--out``.

Usage:
    python benchmarks/trees.py --quick                 # smoke run, about 2 minutes
    python benchmarks/trees.py                         # full run (tens of minutes on 2 cores)
    python benchmarks/trees.py --models rf,xgb --rows 1,1000,100000 --peers native,ort,mlejax
    python benchmarks/trees.py --mlejax-strategies "",gemm,traversal   # one mlejax row per strategy

Not part of the test suite. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _peers import PEER_NAMES, MlejaxPeer, Peer, PeerUnavailable, make_peers  # noqa: E402

from mlejax.progress import bar  # noqa: E402

N_FEATURES = 28
#: a peer whose probabilities differ from the native model's by more than this is flagged
WRONG_TOL = 1e-4
#: only calls at least this big are sampled for memory
MEM_MIN_ROWS = 10_000
#: correctness is checked against the native model on batches up to this size
CHECK_MAX_ROWS = 100_000

FULL_ROWS = (1, 1_000, 100_000, 1_000_000)
QUICK_ROWS = (1, 1_000, 10_000)


# --- models ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A benchmark model: ``build(quick, threads)`` returns an unfitted classifier."""

    key: str
    n_classes: int
    build: Callable[[bool, int], Any]
    describe: Callable[[Any], str]


def _rf(quick: bool, threads: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=10 if quick else 100, max_depth=12, n_jobs=threads, random_state=0)


def _et(quick: bool, threads: int) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(n_estimators=10 if quick else 200, n_jobs=threads, random_state=0)


def _hgb(quick: bool, threads: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=10 if quick else 200, early_stopping=False, random_state=0)


def _xgb(quick: bool, threads: int) -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=10 if quick else 500, max_depth=6, n_jobs=threads, random_state=0)


def _lgbm(quick: bool, threads: int) -> Any:
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=10 if quick else 500, num_leaves=63, n_jobs=threads, verbose=-1, random_state=0)


def _cat(quick: bool, threads: int) -> Any:
    import catboost

    return catboost.CatBoostClassifier(
        iterations=10 if quick else 500, depth=6, thread_count=threads, random_seed=0, verbose=0, allow_writing_files=False
    )


MODELS: dict[str, ModelSpec] = {
    "rf": ModelSpec("rf", 2, _rf, lambda m: f"RandomForest({m.n_estimators}, max_depth {m.max_depth})"),
    "et": ModelSpec("et", 2, _et, lambda m: f"ExtraTrees({m.n_estimators})"),
    "hgb": ModelSpec("hgb", 2, _hgb, lambda m: f"HistGradientBoosting({m.max_iter})"),
    "xgb": ModelSpec("xgb", 2, _xgb, lambda m: f"XGBoost({m.n_estimators}, depth {m.max_depth}), binary"),
    "xgb10": ModelSpec("xgb10", 10, _xgb, lambda m: f"XGBoost({m.n_estimators}, depth {m.max_depth}), 10-class"),
    "lgbm": ModelSpec("lgbm", 2, _lgbm, lambda m: f"LightGBM({m.n_estimators}, {m.num_leaves} leaves)"),
    "cat": ModelSpec("cat", 2, _cat, lambda m: f"CatBoost({m.get_param('iterations')}, depth {m.get_param('depth')})"),
}


def make_data(n_classes: int, n_train: int, n_score: int, nan_rate: float, seed: int = 0) -> tuple:
    """``(X_train, y_train, X_score)``, float32, from one make_classification draw; NaNs at ``nan_rate``."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_train + n_score,
        n_features=N_FEATURES,
        n_informative=14,
        n_redundant=4,
        n_classes=n_classes,
        random_state=seed,
    )
    X = X.astype(np.float32)
    if nan_rate > 0:
        rng = np.random.default_rng(seed)
        X[rng.random(X.shape) < nan_rate] = np.nan
    return X[:n_train], y[:n_train], np.ascontiguousarray(X[n_train:])


# --- measurement primitives -----------------------------------------------------------------
def _malloc_trim() -> None:
    """Give freed heap pages back to the OS (glibc), so an RSS baseline is not inflated by old frees."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class RssPeak:
    """Context manager: the process RSS high-water mark above the entry level, sampled by a thread."""

    def __init__(self, interval_s: float = 0.002) -> None:
        import psutil

        self._proc = psutil.Process()
        self.interval_s = interval_s
        self.delta_bytes = 0

    def __enter__(self) -> "RssPeak":
        gc.collect()
        _malloc_trim()
        self._base = self._peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: Any) -> None:
        self._peak = max(self._peak, self._proc.memory_info().rss)
        self._stop.set()
        self._thread.join()
        self.delta_bytes = self._peak - self._base


@dataclass
class Config:
    """How much to measure (see ``--help`` for each knob)."""

    rows: tuple[int, ...]
    latency_calls: int = 200
    loads: int = 5
    max_call_s: float = 60.0
    budget_s: float = 30.0
    max_reps: int = 5


@dataclass
class PeerResult:
    """Everything measured for one peer on one model (seconds, bytes, rows/s)."""

    peer: str
    na: str = ""
    convert_s: float | None = None
    size_bytes: int | None = None
    load_s: float | None = None
    first_call_s: float | None = None
    compile_s: float | None = None
    cached_first_call_s: float | None = None
    b1_p50_s: float | None = None
    b1_p99_s: float | None = None
    b1_calls: int = 0
    rates: dict[int, float] = field(default_factory=dict)
    best_rates: dict[int, float] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    peak_bytes: dict[int, int] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)
    max_diff: float | None = None
    wrong: str = ""
    notes: list[str] = field(default_factory=list)


def _check(res: PeerResult, out: np.ndarray, ref: np.ndarray) -> None:
    """Fold one output's difference from the native probabilities into ``res``."""
    out = np.asarray(out)
    if out.shape != ref.shape:
        res.wrong = f"output shape (n, {', '.join(map(str, out.shape[1:]))}) ≠ (n, {', '.join(map(str, ref.shape[1:]))})"
        return
    diff = float(np.nanmax(np.abs(out.astype(np.float64) - ref))) if out.size else 0.0
    if np.isnan(out).any() != np.isnan(ref).any():
        diff = float("inf")
    res.max_diff = diff if res.max_diff is None else max(res.max_diff, diff)
    if res.max_diff > WRONG_TOL and not res.wrong:
        res.wrong = f"max abs Δ {res.max_diff:.2g} > {WRONG_TOL:g}"


def _latency(res: PeerResult, call: Callable[[np.ndarray], Any], X: np.ndarray, cfg: Config) -> None:
    rows = [np.ascontiguousarray(X[i : i + 1]) for i in range(min(len(X), 64))]
    for r in rows[:5]:
        call(r)
    times = []
    deadline = time.perf_counter() + cfg.max_call_s / 3
    for i in range(cfg.latency_calls):
        t0 = time.perf_counter()
        call(rows[i % len(rows)])
        times.append(time.perf_counter() - t0)
        if len(times) >= 50 and time.perf_counter() > deadline:
            break
    res.b1_p50_s = float(np.percentile(times, 50))
    res.b1_p99_s = float(np.percentile(times, 99))
    res.b1_calls = len(times)
    if len(times) < cfg.latency_calls:
        res.notes.append(f"batch 1: {len(times)} calls (time cap)")


def _throughput(
    res: PeerResult, peer: Peer, call: Callable, X: np.ndarray, n: int, ref: np.ndarray | None, cfg: Config, rate: float | None
) -> float | None:
    """Time ``call`` on ``X[:n]``; record rows/s, memory and correctness; return rows/s (None if skipped)."""
    x = X[:n]
    est = n / rate if rate else 0.0
    if est > cfg.max_call_s:
        res.skipped[n] = f"est. {est:.0f} s"
        return None
    if n < MEM_MIN_ROWS:  # small batch: repeat for ~0.3 s
        call(x)
        times = []
        while len(times) < 3 or (len(times) < 50 and sum(times) < 0.3):
            t0 = time.perf_counter()
            call(x)
            times.append(time.perf_counter() - t0)
    else:
        calls = int(min(cfg.max_reps, max(1, cfg.budget_s // max(est, 1e-9))))
        if peer.warmup_each_size and est * (calls + 1) <= cfg.budget_s * 1.5:
            call(x)  # compile / profile this shape outside the timings and the memory sample
        with RssPeak() as mem:
            t0 = time.perf_counter()
            out = call(x)
            times = [time.perf_counter() - t0]
        res.peak_bytes[n] = mem.delta_bytes
        if ref is not None:
            _check(res, out, ref)
        del out
        for _ in range(calls - 1):
            t0 = time.perf_counter()
            call(x)
            times.append(time.perf_counter() - t0)
    res.calls[n] = len(times)
    res.rates[n] = n / float(np.median(times))
    res.best_rates[n] = n / float(np.min(times))
    return res.rates[n]


def measure_peer(peer: Peer, model: Any, n_classes: int, X: np.ndarray, refs: dict[int, np.ndarray], cfg: Config, workdir: str) -> PeerResult:
    """Convert, load and time ``model`` on ``peer``; a failing stage ends the peer with ``na``."""
    res = PeerResult(peer.name)
    stage = "convert"
    try:
        t0 = time.perf_counter()
        art = peer.convert(model, n_classes, X, workdir)
        res.convert_s = time.perf_counter() - t0
        res.size_bytes = art.size_bytes

        stage = "load"
        times = []
        for i in range(cfg.loads):
            fresh = peer.prepare_load(art, i)
            gc.collect()
            t0 = time.perf_counter()
            loaded = peer.load(fresh)
            times.append(time.perf_counter() - t0)
            if i < cfg.loads - 1:
                del loaded
        res.load_s = float(np.median(times))

        stage = "first call"
        n1k = min(1000, len(X))
        t0 = time.perf_counter()
        out = peer.proba(loaded, X[:n1k])
        res.first_call_s = time.perf_counter() - t0
        _check(res, out, refs[n1k])
        if isinstance(peer, MlejaxPeer):
            res.compile_s = MlejaxPeer.compile_seconds(loaded)
            again = peer.load(peer.prepare_load(art, cfg.loads))
            t0 = time.perf_counter()
            peer.proba(again, X[:n1k])
            res.cached_first_call_s = time.perf_counter() - t0
            del again

        def call(x: np.ndarray) -> np.ndarray:
            return peer.proba(loaded, x)

        rate = None
        for n in cfg.rows:
            stage = f"{n} rows"
            if n == 1:
                _latency(res, call, X, cfg)  # per-row latency says little about batch throughput: no estimate
            else:
                rate = _throughput(res, peer, call, X, n, refs.get(n), cfg, rate) or rate
        stage = "repeat call"
        repeat = np.asarray(peer.proba(loaded, X[:n1k]))
        if repeat.shape == np.shape(out):
            drift = float(np.nanmax(np.abs(repeat.astype(np.float64) - out))) if repeat.size else 0.0
            if drift > WRONG_TOL:
                res.notes.append(f"outputs change between calls on the same rows (max Δ {drift:.2g})")
        note = peer.notes(loaded)
        if note:
            res.notes.insert(0, note)
        del loaded
    except PeerUnavailable as exc:
        res.na = str(exc)
    except Exception as exc:  # a peer crashing on a model is a result, not the end of the suite
        why = f"{stage}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ''}"
        if res.first_call_s is None:
            res.na = why
        else:  # keep what was measured before the failure
            res.notes.append(f"failed at {why}")
    gc.collect()
    return res


# --- machine and versions ------------------------------------------------------------------
_DISTS = (
    "numpy", "scikit-learn", "xgboost", "xgboost-cpu", "lightgbm", "catboost", "onnx", "onnxruntime", "skl2onnx",
    "onnxmltools", "hummingbird-ml", "torch", "treelite", "tl2cgen", "mle-runtime", "jax", "jaxlib", "mlejax", "psutil",
)


def machine_info() -> dict[str, Any]:
    """CPU model and count, memory, load, OS, compiler and library versions, date."""
    from importlib import metadata

    import psutil

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for dist in _DISTS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    gcc = shutil.which("gcc")
    gcc_version = subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout.splitlines()[0] if gcc else "none"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "physical_cpus": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "os": platform.platform(),
        "python": platform.python_version(),
        "gcc": gcc_version,
        "versions": versions,
    }


# --- formatting -------------------------------------------------------------------------------
def fmt_rate(r: float | None) -> str:
    if r is None:
        return "—"
    if r >= 1e6:
        return f"{r / 1e6:.2f}M"
    if r >= 1e3:
        return f"{r / 1e3:.1f}k"
    return f"{r:.0f}"


def fmt_time(s: float | None) -> str:
    """Seconds in the unit that reads best (µs, ms or s)."""
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None or not np.isfinite(x) else (f"{x:.2f}×" if x < 10 else f"{x:.0f}×")


def _rows_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (f"{n // 1000}k" if n >= 1000 else str(n))


def ratio_rows(rows: tuple[int, ...]) -> int | None:
    """The batch size ratios and the plot use: the largest one up to 100k rows (else the smallest above)."""
    big = [n for n in rows if n > 1]
    upto = [n for n in big if n <= 100_000]
    return max(upto) if upto else min(big, default=None)


def _ours(results: list[PeerResult]) -> PeerResult | None:
    return next((r for r in results if r.peer.startswith("mlejax") and not r.na), None)


def model_table(results: list[PeerResult], rows: tuple[int, ...]) -> str:
    """One model's markdown table: one line per peer, ratios of mlejax to each peer."""
    sizes = [n for n in rows if n > 1]
    mem_sizes = [n for n in sizes if n >= MEM_MIN_ROWS]
    rn = ratio_rows(rows)
    ours = _ours(results)
    head = ["peer", "convert", "file MB", "load", "first call"]
    if 1 in rows:
        head += ["b1 p50", "b1 p99"]
    head += [f"{_rows_label(n)} rows/s" for n in sizes]
    head += [f"peak MB {_rows_label(n)}" for n in mem_sizes]
    head += ["max abs Δ vs native"]
    if rn:
        head.append(f"mlejax ×, {_rows_label(rn)}")
    if 1 in rows:
        head.append("mlejax ×, b1 p50")
    head.append("notes")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if r.na:
            cells = [r.peer, f"n/a ({r.na})"] + [""] * (len(head) - 2)
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
            continue
        first = fmt_time(r.first_call_s)
        if r.compile_s:
            first += f" (compile {fmt_time(r.compile_s)}; 2nd load {fmt_time(r.cached_first_call_s)})"
        cells = [r.peer, fmt_time(r.convert_s), f"{r.size_bytes / 1e6:.2f}", fmt_time(r.load_s), first]
        if 1 in rows:
            cells += [fmt_time(r.b1_p50_s), fmt_time(r.b1_p99_s)]
        cells += [fmt_rate(r.rates.get(n)) if n not in r.skipped else f"skipped ({r.skipped[n]})" for n in sizes]
        cells += [f"{r.peak_bytes[n] / 2**20:.0f}" if n in r.peak_bytes else "—" for n in mem_sizes]
        diff = "—" if r.max_diff is None else f"{r.max_diff:.1e}"
        cells.append(f"✗ WRONG: {r.wrong}" if r.wrong else diff)
        if rn:
            a, b = (ours.rates.get(rn) if ours else None), r.rates.get(rn)
            cells.append(fmt_ratio(a / b) if a and b and r is not ours else "—")
        if 1 in rows:
            a, b = (ours.b1_p50_s if ours else None), r.b1_p50_s
            cells.append(fmt_ratio(b / a) if a and b and r is not ours else "—")
        cells.append("; ".join(r.notes))
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def summary_table(all_results: dict[str, tuple[str, list[PeerResult]]], rows: tuple[int, ...]) -> str:
    """The issue-7 goals per model: mlejax against the fastest correct peer, and against ONNX Runtime at batch 1."""
    rn = ratio_rows(rows)
    head = ["model", f"fastest correct peer, {_rows_label(rn)} rows/s" if rn else "fastest peer", "mlejax rows/s",
            "mlejax / fastest", "ORT b1 p50", "mlejax b1 p50", "ORT / mlejax b1", "mlejax first call (compile)",
            "mlejax max abs Δ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for title, results in all_results.values():
        ours = _ours(results)
        peers = [r for r in results if not r.na and not r.wrong and not r.peer.startswith("mlejax") and rn in r.rates]
        best = max(peers, key=lambda r: r.rates[rn], default=None)
        ort = next((r for r in results if r.peer == "ort" and not r.na), None)
        o_rate = ours.rates.get(rn) if ours else None
        cells = [
            title,
            f"{best.peer} {fmt_rate(best.rates[rn])}" if best else "—",
            fmt_rate(o_rate) if ours else f"n/a ({next((r.na for r in results if r.peer.startswith('mlejax')), '')})",
            fmt_ratio(o_rate / best.rates[rn]) if best and o_rate else "—",
            fmt_time(ort.b1_p50_s) if ort else "—",
            fmt_time(ours.b1_p50_s) if ours else "—",
            fmt_ratio(ort.b1_p50_s / ours.b1_p50_s) if ort and ours and ort.b1_p50_s and ours.b1_p50_s else "—",
            f"{fmt_time(ours.first_call_s)} ({fmt_time(ours.compile_s)})" if ours else "—",
            ("✗ " + ours.wrong) if ours and ours.wrong else (f"{ours.max_diff:.1e}" if ours and ours.max_diff is not None else "—"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(info: dict[str, Any], argv: list[str], title: str) -> str:
    vers = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return "\n".join([
        f"# {title}",
        "",
        f"Command: `{' '.join(['python', *argv])}`  ",
        f"Date: {info['date']}  ",
        f"Machine: {info['cpu']}, {info['logical_cpus']} logical CPUs ({info['physical_cpus']} physical), "
        f"{info['memory_gib']} GiB RAM, load average {info['load_avg_1m_at_start']} at start; {info['os']}; "
        f"Python {info['python']}; {info['gcc']}  ",
        f"Versions: {vers}",
    ])


def legend(cfg: Config, threads: int, nan_rate: float, n_train: int) -> str:
    return "\n".join([
        "",
        f"Data: make_classification, {N_FEATURES} float32 features (14 informative, 4 redundant), {n_train} training rows"
        + (f", {nan_rate:.0%} NaN" if nan_rate else ", no NaN") + "; scored on held-out rows of the same draw. "
        f"Every peer uses {threads} threads.",
        "",
        "Columns: *convert* = time to write the peer's file (for tl2cgen: Treelite import + gcc -O3 compile); "
        f"*load* = median of {cfg.loads} loads in this process; *first call* = first 1k-row call after loading "
        "(for mlejax: trace + XLA compile, then '2nd load' = first call of a second load in the same process, "
        "which reads the persistent compilation cache); *b1* = one row per call, "
        f"up to {cfg.latency_calls} calls; *rows/s* = batch rows / median call time; *peak MB* = RSS high-water "
        "above the pre-call level during one call (sampled every 2 ms); *max abs Δ* = largest difference of the "
        f"peer's probabilities from the native model's on 1k and ≤100k rows (✗ when > {WRONG_TOL:g} or the shape "
        "differs); *mlejax ×* = mlejax's throughput ÷ the peer's (batch 1: the peer's p50 ÷ mlejax's), above 1 means "
        f"mlejax is faster. A size is skipped when the previous size predicts a call over {cfg.max_call_s:.0f} s.",
    ])


def plot(all_results: dict[str, tuple[str, list[PeerResult]]], rows: tuple[int, ...], path: str, subtitle: str) -> None:
    """Grouped bars: rows/s at the ratio batch size for every model and peer (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rn = ratio_rows(rows)
    if rn is None:
        return
    peers = list(dict.fromkeys(r.peer for _, results in all_results.values() for r in results))
    models = list(all_results)
    width = 0.8 / max(1, len(peers))
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(models) + 3), 5))
    missing = []  # (x, why) for peers without a bar
    for j, peer in enumerate(peers):
        xs, ys, wrong = [], [], []
        for i, key in enumerate(models):
            r = next((r for r in all_results[key][1] if r.peer == peer), None)
            x = i + (j - (len(peers) - 1) / 2) * width
            if r and not r.na and r.rates.get(rn):
                xs.append(x)
                ys.append(r.rates[rn])
                wrong.append(bool(r.wrong))
            elif r:
                missing.append((x, "n/a" if r.na else "skipped"))
        bars = ax.bar(xs, ys, width, label=peer, edgecolor="black" if peer.startswith("mlejax") else None)
        for bar, w in zip(bars, wrong):
            if w:
                bar.set_hatch("xx")
                bar.set_alpha(0.5)
    ax.set_yscale("log")
    for x, why in missing:
        ax.text(x, 0.02, why, rotation=90, fontsize=6, ha="center", va="bottom", transform=ax.get_xaxis_transform())
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels([all_results[k][0].replace(", ", ",\n", 1) for k in models], fontsize=8)
    ax.set_ylabel(f"rows/s at {_rows_label(rn)} rows (log)")
    ax.set_title(f"Tree ensembles: throughput per peer ({subtitle}); hatched = wrong outputs", fontsize=10)
    ax.legend(fontsize=8, ncol=min(4, len(peers)))
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- main ---------------------------------------------------------------------------------------
def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",")]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few trees, small batches: a smoke run of about 2 minutes")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--peers", default=",".join(PEER_NAMES), help=f"comma list of {', '.join(PEER_NAMES)}")
    p.add_argument("--rows", default=None, help="batch sizes, comma list; 1 = latency (default full: 1,1000,100000,1000000; quick: 1,1000,10000)")
    p.add_argument("--train-rows", type=int, default=None, help="training rows (default 20000; quick 5000)")
    p.add_argument("--nan", type=float, default=0.0, help="fraction of feature values set to NaN (train and score)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every peer (default: all cores)")
    p.add_argument("--mlejax-strategies", default="", help='comma list passed to load_model(tree_strategy=...); "" = default')
    p.add_argument("--mlejax-device", default=None, help="device for mlejax (cpu, gpu); default JAX's")
    p.add_argument("--latency-calls", type=int, default=None, help="batch-1 calls (default 200; quick 50)")
    p.add_argument("--loads", type=int, default=None, help="loads timed per peer (default 5; quick 2)")
    p.add_argument("--max-call-s", type=float, default=None, help="skip a batch size predicted to take longer per call (default 60; quick 10)")
    p.add_argument("--budget-s", type=float, default=None, help="seconds per peer and big batch size: sets the repeats (default 30; quick 3)")
    p.add_argument("--compile-timeout", type=float, default=None, help="TL2cgen gcc limit in seconds (default 300; quick 120)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"), help="output folder")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar (the default draws one when stderr is a terminal)")
    p.add_argument("--update", action="store_true",
                   help="re-measure only --models and merge them into the existing results (same --out, same mode)")
    args = p.parse_args(argv)
    q = args.quick
    args.rows = tuple(int(float(r)) for r in _csv(args.rows)) if args.rows else (QUICK_ROWS if q else FULL_ROWS)
    args.train_rows = args.train_rows or (5000 if q else 20000)
    args.latency_calls = args.latency_calls or (50 if q else 200)
    args.loads = args.loads or (2 if q else 5)
    args.max_call_s = args.max_call_s or (10.0 if q else 60.0)
    args.budget_s = args.budget_s or (3.0 if q else 30.0)
    args.compile_timeout = args.compile_timeout or (120.0 if q else 300.0)
    args.models = _csv(args.models)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    args.peers = _csv(args.peers)
    bad = [x for x in args.peers if x not in PEER_NAMES]
    if bad:
        p.error(f"unknown peers {bad}; choose from {', '.join(PEER_NAMES)}")
    args.mlejax_strategies = _csv(args.mlejax_strategies) if args.mlejax_strategies else [""]
    return args


def fresh_compile_cache() -> str:
    """Point mlejax's persistent compilation cache at an empty folder, so first calls really compile."""
    path = tempfile.mkdtemp(prefix="mlejax-bench-xla-")
    os.environ["MLEJAX_CACHE_DIR"] = path
    return path


def train(spec: ModelSpec, args: argparse.Namespace, data: dict[int, tuple]) -> tuple[Any, np.ndarray, float]:
    """Fit ``spec``'s model on its data (cached per class count); return (model, X_score, seconds)."""
    if spec.n_classes not in data:
        n_score = max(args.rows)
        data[spec.n_classes] = make_data(spec.n_classes, args.train_rows, n_score, args.nan)
    X_train, y_train, X_score = data[spec.n_classes]
    model = spec.build(args.quick, args.threads)
    t0 = time.perf_counter()
    model.fit(X_train, y_train)
    return model, X_score, time.perf_counter() - t0


def reference(model: Any, X: np.ndarray, rows: tuple[int, ...]) -> dict[int, np.ndarray]:
    """The native model's probabilities on the batches correctness is checked on."""
    sizes = {min(1000, len(X))} | {n for n in rows if MEM_MIN_ROWS <= n <= CHECK_MAX_ROWS}
    biggest = max(sizes)
    full = np.asarray(model.predict_proba(X[:biggest]), dtype=np.float64)
    return {n: full[:n] for n in sizes}


def run_suite(args: argparse.Namespace, peers: list[Peer], log: Callable[[str], None]) -> dict[str, tuple[str, list[PeerResult]]]:
    """Train every model and measure every peer on it; returns {model key: (title, results)}."""
    cfg = Config(rows=args.rows, latency_calls=args.latency_calls, loads=args.loads, max_call_s=args.max_call_s,
                 budget_s=args.budget_s)
    data: dict[int, tuple] = {}
    out: dict[str, tuple[str, list[PeerResult]]] = {}
    for key in args.models:
        spec = MODELS[key]
        try:
            model, X, fit_s = train(spec, args, data)
        except Exception as exc:  # e.g. the framework is not installed on this machine
            reason = f"model not trained: {type(exc).__name__}: {str(exc).strip()[:100]}"
            log(f"\n## {key}: {reason}")
            out[key] = (key, [PeerResult(p.name, na=reason) for p in peers])
            continue
        title = spec.describe(model)
        log(f"\n## {title}  (trained in {fit_s:.1f} s)")
        refs = reference(model, X, args.rows)
        results = []
        with tempfile.TemporaryDirectory(prefix=f"bench-{key}-") as workdir:
            for peer in bar(peers, desc=key, unit="peer", progress=args.progress):  # a bar on a terminal only
                t0 = time.perf_counter()
                sub = os.path.join(workdir, peer.name)
                os.makedirs(sub)
                r = measure_peer(peer, model, spec.n_classes, X, refs, cfg, sub)
                results.append(r)
                what = f"n/a ({r.na})" if r.na else ", ".join(
                    f"{_rows_label(n)}: {fmt_rate(v)}/s" for n, v in r.rates.items()) + (f"  ✗ {r.wrong}" if r.wrong else "")
                log(f"  {peer.name:<16} {time.perf_counter() - t0:6.1f} s  {what}")
        out[key] = (title, results)
    return out


def save_json(path: str, info: dict[str, Any], argv: list[str], results: dict[str, tuple[str, list[PeerResult]]]) -> None:
    doc = {"machine": info, "argv": argv,
           "results": {k: {"title": t, "peers": [asdict(r) for r in rs]} for k, (t, rs) in results.items()}}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def load_json(path: str) -> tuple[dict[str, Any], list[str], dict[str, tuple[str, list[PeerResult]]]]:
    """Read what :func:`save_json` wrote (JSON object keys back to ints)."""
    with open(path) as f:
        doc = json.load(f)
    results = {}
    for key, entry in doc["results"].items():
        peers = []
        for d in entry["peers"]:
            for k in ("rates", "best_rates", "calls", "peak_bytes", "skipped"):
                d[k] = {int(n): v for n, v in d.get(k, {}).items()}
            peers.append(PeerResult(**d))
        results[key] = (entry["title"], peers)
    return doc["machine"], doc["argv"], results


def render(info: dict[str, Any], argv: list[str], args: argparse.Namespace,
           results: dict[str, tuple[str, list[PeerResult]]]) -> str:
    """The whole markdown report."""
    cfg = Config(rows=args.rows, latency_calls=args.latency_calls, loads=args.loads, max_call_s=args.max_call_s)
    mode = "quick run" if args.quick else "full run"
    parts = [
        header(info, ["benchmarks/trees.py", *argv], f"Tree ensembles on CPU: mlejax vs peers ({mode})"),
        legend(cfg, args.threads, args.nan, args.train_rows),
        f"\nSuite time {info['suite_seconds']:.0f} s; load average at end {info['load_avg_1m_at_end']}.",
    ]
    for update in info.get("updates", []):
        parts.append(f"Re-measured {', '.join(update['models'])} on {update['date']} with "
                     f"`{' '.join(['python', 'benchmarks/trees.py', *update['argv']])}`.")
    parts += ["\n## Summary\n", summary_table(results, args.rows)]
    for title, res in results.values():
        parts += [f"\n## {title}\n", model_table(res, args.rows)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cache = fresh_compile_cache()
    warnings.filterwarnings("ignore")
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    info = machine_info()
    peers = make_peers(args.peers, args.threads, args.compile_timeout, args.mlejax_device, args.mlejax_strategies)
    t_start = time.perf_counter()
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"benchmarking {', '.join(args.models)} on {', '.join(p.name for p in peers)}; rows {args.rows}")
    try:
        results = run_suite(args, peers, log)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    info["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    info["suite_seconds"] = round(time.perf_counter() - t_start, 1)
    stem = os.path.join(args.out, "trees_quick" if args.quick else "trees")
    report_argv = argv
    if args.update:
        if not os.path.exists(stem + ".json"):
            raise SystemExit(f"--update: no {stem}.json to update")
        old_info, report_argv, old = load_json(stem + ".json")
        old_info.setdefault("updates", []).append({"date": info["date"], "models": list(results), "argv": argv})
        info, results = old_info, {**old, **results}
        args = parse_args(report_argv)  # the table layout follows the original run
    text = render(info, report_argv, args, results)
    print("\n" + text)
    if not args.no_write:
        os.makedirs(args.out, exist_ok=True)
        with open(stem + ".md", "w") as f:
            f.write(text)
        save_json(stem + ".json", info, report_argv, results)
        plot(results, args.rows, stem + ".png", f"{info['logical_cpus']} CPUs, {'quick' if args.quick else 'full'} run")
        print(f"wrote {stem}.md, {stem}.json, {stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
