"""GPU check: mlejax on a CUDA GPU against the CPU peers on the same machine's cores.

Runs the mlejax part of ``benchmarks/trees.py`` with ``device="gpu"`` at
100k and 1M rows (plus batch-1 latency) for a few models, next to the native
libraries and ONNX Runtime using every CPU core of the same machine, and prints
a markdown table with the GPU's name. Throughput includes the host-to-device
copy of the input and the copy of the result back. Written to finish in a few
minutes on a 16-core host with an H100/H200, so it fits a short GPU slot.

Usage:
    python benchmarks/gpu_check.py                           # rf, xgb, xgb10, lgbm, cat on the GPU
    python benchmarks/gpu_check.py --out "$OUT"              # also write gpu_check.md / .json there
    python benchmarks/gpu_check.py --device cpu --quick      # test this script's logic without a GPU
    python benchmarks/gpu_check.py --device cpu --parts score --score-rows 20000   # only batch scoring, on CPU

Batch scoring (``--parts score``): ``mlejax.score`` (what ``mle-score`` runs),
Parquet to Parquet, of ``--score-rows`` rows of 28 float32 features with
RandomForest(100, depth 12) and XGBoost(500) (``benchmarks/batch_scoring.py``'s
data and models), on one device and, when there are several, on all of them:
rows/s end to end (model already loaded) and the ScoreReport's stage times.

Exits with status 2 and a message when JAX sees no GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import batch_scoring  # noqa: E402
import trees  # noqa: E402
from _peers import make_peers  # noqa: E402

DEFAULT_MODELS = "rf,xgb,xgb10,lgbm,cat"
CPU_PEERS = ["native", "ort"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="gpu", choices=["gpu", "cpu"], help="where mlejax runs (cpu: test the script)")
    p.add_argument("--quick", action="store_true", help="few trees and 1k/10k rows: a logic test")
    p.add_argument("--models", default=DEFAULT_MODELS, help=f"comma list of {', '.join(trees.MODELS)}")
    p.add_argument("--rows", default=None, help="batch sizes (default 1,100000,1000000; quick 1,1000,10000)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for the CPU peers (default: all cores)")
    p.add_argument("--mlejax-strategies", default="", help='comma list for load_model(tree_strategy=...); "" = default')
    p.add_argument("--out", default=None, help="folder for gpu_check.md and gpu_check.json (default: print only)")
    p.add_argument("--parts", default="trees,score", help="comma list of trees, score (default: both)")
    p.add_argument("--score-rows", type=int, default=None, help="rows to batch-score (default 1000000; quick 20000)")
    p.add_argument("--score-models", default="rf,xgb", help="comma list of batch_scoring.py models to score with")
    args = p.parse_args(argv)
    args.parts = {x.strip() for x in args.parts.split(",")}
    if not args.parts or args.parts - {"trees", "score"}:
        p.error(f"--parts: choose from trees, score; got {sorted(args.parts)}")
    args.score_rows = args.score_rows or (20_000 if args.quick else 1_000_000)
    args.score_models = [m.strip() for m in args.score_models.split(",")]
    if set(args.score_models) - set(batch_scoring.MODELS):
        p.error(f"--score-models: choose from {', '.join(batch_scoring.MODELS)}")
    args.models = [m.strip() for m in args.models.split(",")]
    unknown = [m for m in args.models if m not in trees.MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(trees.MODELS)}")
    args.rows = tuple(int(float(r)) for r in args.rows.split(",")) if args.rows else (
        (1, 1_000, 10_000) if args.quick else (1, 100_000, 1_000_000))
    args.mlejax_strategies = [s.strip() for s in args.mlejax_strategies.split(",")] if args.mlejax_strategies else [""]
    # the knobs trees.run_suite reads
    args.train_rows = 5000 if args.quick else 20000
    args.nan = 0.0
    args.latency_calls = 50 if args.quick else 100
    args.loads = 2 if args.quick else 3
    args.max_call_s = 10.0 if args.quick else 30.0
    args.budget_s = 3.0 if args.quick else 10.0
    return args


def accelerator(device: str) -> str:
    """The name of the JAX device mlejax will use; exits with status 2 when there is no such device."""
    import jax

    try:
        devices = jax.devices(device)
    except RuntimeError as exc:
        devices, why = [], str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    else:
        why = "no devices listed"
    if not devices:
        print(
            f"gpu_check: JAX sees no {device.upper()} device ({why}).\n"
            "Run on a machine with an NVIDIA GPU and a CUDA build of jaxlib (pip install 'jax[cuda12]'), "
            "or pass --device cpu to test this script.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return f"{devices[0].device_kind} ({devices[0].platform}, {len(devices)} device(s), JAX {jax.__version__})"


def summary(results: dict, rows: tuple[int, ...]) -> str:
    """Per model and big batch size: the fastest correct CPU peer, mlejax on the accelerator, the ratio."""
    sizes = [n for n in rows if n > 1]
    head = ["model"]
    for n in sizes:
        lab = trees._rows_label(n)
        head += [f"fastest CPU peer, {lab} rows/s", f"mlejax, {lab} rows/s", f"mlejax / CPU, {lab}"]
    head += ["mlejax b1 p50", "mlejax first call (compile)", "mlejax max abs Δ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for title, res in results.values():
        ours = next((r for r in res if r.peer.startswith("mlejax") and not r.na), None)
        cpu = [r for r in res if not r.peer.startswith("mlejax") and not r.na and not r.wrong]
        cells = [title]
        for n in sizes:
            best = max((r for r in cpu if n in r.rates), key=lambda r: r.rates[n], default=None)
            mine = ours.rates.get(n) if ours else None
            cells += [
                f"{best.peer} {trees.fmt_rate(best.rates[n])}" if best else "—",
                trees.fmt_rate(mine) if ours else "n/a",
                trees.fmt_ratio(mine / best.rates[n]) if best and mine else "—",
            ]
        cells += [
            trees.fmt_time(ours.b1_p50_s) if ours else "—",
            f"{trees.fmt_time(ours.first_call_s)} ({trees.fmt_time(ours.compile_s)})" if ours else "—",
            ("✗ " + ours.wrong) if ours and ours.wrong else (f"{ours.max_diff:.1e}" if ours and ours.max_diff is not None else "—"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def score_check(args: argparse.Namespace, log: Callable[[str], None]) -> str:
    """Markdown table of ``mlejax.score`` Parquet → Parquet on one device and on every device of ``args.device``."""
    import jax

    import mlejax

    devices = jax.devices(args.device)
    device_sets = [devices[:1]] + ([devices] if len(devices) > 1 else [])
    head = ["model", "devices", "rows", "rows/s", "seconds", "batch rows", *(f"{s} s" for s in batch_scoring.STAGES), "peak RSS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "data.parquet")
        batch_scoring.write_dataset(data, args.score_rows)
        X, y = batch_scoring.make_rows(20_000, seed=0)
        for key in args.score_models:
            path = os.path.join(work, f"{key}.mle")
            mlejax.export_model(batch_scoring.train(key, X, y), path, sample_input=X[:256])
            for devs in device_sets:
                model = mlejax.load_model(path, device=devs[0])
                out = os.path.join(work, "scores.parquet")
                kw = {"columns": batch_scoring.FEATURES, "keep": ["id"], "device": devs, "progress": False, "overwrite": True}
                mlejax.score(model, data, out, **kw)  # compile, warm caches
                report = mlejax.score(model, data, out, **kw)
                log(f"gpu_check: score {key} on {len(devs)} device(s): {report.summary()}")
                lines.append("| " + " | ".join([
                    batch_scoring.MODELS[key], f"{len(devs)} × {devs[0].device_kind}", f"{report.rows:,}",
                    trees.fmt_rate(report.rows_per_s), f"{report.seconds:.2f}", f"{report.batch_rows:,}",
                    *(f"{report.stages.get(s, 0.0):.2f}" for s in batch_scoring.STAGES), f"{report.peak_rss_bytes / 2**20:,.0f} MiB",
                ]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    cache = trees.fresh_compile_cache()
    name = accelerator(args.device)
    info = trees.machine_info()
    peers = make_peers(CPU_PEERS + ["mlejax"], args.threads, 0.0, args.device, args.mlejax_strategies)
    t0 = time.perf_counter()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    log(f"gpu_check: mlejax on {name}; CPU peers on {info['logical_cpus']} CPUs ({info['cpu']})")
    results: dict = {}
    scoring = None
    try:
        if "trees" in args.parts:
            results = trees.run_suite(args, peers, log)
        if "score" in args.parts:
            scoring = score_check(args, log)
    finally:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
    info["suite_seconds"] = round(time.perf_counter() - t0, 1)
    info["accelerator"] = name
    parts = [
        trees.header(info, ["benchmarks/gpu_check.py", *argv], f"mlejax on {name} vs CPU peers"),
        f"\nmlejax device: {args.device} = {name}. CPU peers ({', '.join(CPU_PEERS)}) use {args.threads} threads. "
        "mlejax throughput includes copying the input to the device and the result back. "
        f"Suite time {info['suite_seconds']:.0f} s.",
    ]
    if results:
        parts += ["\n## Summary\n", summary(results, args.rows)]
    for title, res in results.values():
        parts += [f"\n## {title}\n", trees.model_table(res, args.rows)]
    if scoring:
        parts += [f"\n## Batch scoring (mle-score), Parquet → Parquet, {args.score_rows:,} rows × 28 float32\n", scoring]
    text = "\n".join(parts) + "\n"
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu_check.md"), "w") as f:
            f.write(text)
        trees.save_json(os.path.join(args.out, "gpu_check.json"), info, argv, results)
        log(f"wrote {args.out}/gpu_check.md and gpu_check.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
