"""Batch-scoring benchmark: Parquet in, Parquet out, for a user's loop, ONNX Runtime, Ray Data and mle-score.

Generates a Parquet dataset (``--rows`` rows of 28 float32 features, an
``id`` column and about 2% NaN in four columns), trains RandomForest(100,
depth 12), XGBoost(500), LightGBM(500) and an MLP on other rows, and scores
the dataset end to end with every peer:

- ``loop-native``: the loop a user writes today: ``pyarrow`` ``iter_batches``,
  the native ``predict_proba`` (all cores), a ``ParquetWriter``;
- ``loop-ort``: the same loop with ONNX Runtime (skipped, with the reason, where
  the converter fails);
- ``ray-native``: Ray Data ``read_parquet`` → ``map_batches`` with the native model
  (2 actors of 1 thread each; half a Ray CPU each, so reads and writes get the rest) → ``write_parquet``;
- ``mle-score``: :func:`mlejax.score` with its defaults (what ``mle-score`` runs);
- ``ray-mlejax``: Ray Data with :class:`mlejax.ray.Predictor` (1 actor; XLA uses every core).

Each (model, peer) runs in a fresh process; the table gives rows/s end to end
(model loading and compilation included), the process's peak RSS (for Ray, the
driver's only), mlejax's stage times, and the largest difference of the
peer's probabilities from ``loop-native``'s on the first 10,000 rows.

Usage:
    python benchmarks/batch_scoring.py --rows 1000000
    python benchmarks/batch_scoring.py --models rf,xgb --peers loop-native,mle-score --rows 200000

Writes ``batch_scoring.md``, ``batch_scoring.json`` and (with matplotlib) ``batch_scoring.png`` to ``--out``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

FEATURES = [f"f{i}" for i in range(28)]
NAN_COLUMNS = FEATURES[:4]
PEERS = ["loop-native", "loop-ort", "ray-native", "mle-score", "ray-mlejax"]
MODELS = {
    "rf": "RandomForest(100, depth 12)",
    "xgb": "XGBoost(500)",
    "lgbm": "LightGBM(500)",
    "mlp": "MLP (impute, scale, 64-64)",
}
STAGES = ("read", "host_to_device", "compute", "device_to_host", "write")


# --- data and models ----------------------------------------------------------------------
def make_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of float32 features (2% NaN in four columns) and binary labels from a fixed rule."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, len(FEATURES)), dtype=np.float32)
    score = X[:, 4] + X[:, 5] * X[:, 6] - np.abs(X[:, 7]) + 0.5 * np.sin(3 * X[:, 8]) + 0.3 * rng.standard_normal(n)
    X[:, : len(NAN_COLUMNS)][rng.random((n, len(NAN_COLUMNS))) < 0.02] = np.nan
    return X, (score > 0).astype(np.int64)


def write_dataset(path: str, rows: int, chunk: int = 1 << 20) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        X, _ = make_rows(n, seed=1000 + start // chunk)
        table = pa.table({"id": np.arange(start, start + n, dtype=np.int64), **{f: X[:, j] for j, f in enumerate(FEATURES)}})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=1 << 17)
    writer.close()


def train(name: str, X: np.ndarray, y: np.ndarray) -> Any:
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(100, max_depth=12, n_jobs=-1, random_state=0).fit(X, y)
    if name == "xgb":
        import xgboost

        return xgboost.XGBClassifier(n_estimators=500, max_depth=6, tree_method="hist", random_state=0).fit(X, y)
    if name == "lgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(n_estimators=500, verbose=-1, random_state=0).fit(X, y)
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(), StandardScaler(), MLPClassifier((64, 64), max_iter=30, random_state=0)).fit(X, y)


# --- peers (each runs in its own process: ``--child``) -------------------------------------
def _loop(proba, data: str, out: str, batch_rows: int) -> dict:
    """The user's loop: iter_batches → proba → ParquetWriter."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows = None, 0
    for batch in pq.ParquetFile(data).iter_batches(batch_size=batch_rows, columns=["id", *FEATURES]):
        X = np.column_stack([batch.column(f).to_numpy(zero_copy_only=False) for f in FEATURES]).astype(np.float32)
        p = proba(X)
        table = pa.table({"id": batch.column("id"), **{f"proba_{j}": p[:, j] for j in range(p.shape[1])}})
        writer = writer or pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
        rows += batch.num_rows
    writer.close()
    return {"rows": rows}


class NativeActor:
    """Ray Data actor scoring with the native model (one thread per actor)."""

    def __init__(self, path: str, family: str) -> None:
        sys.path.insert(0, HERE)
        from _peers import Artifact, NativePeer

        self.peer = NativePeer(threads=1)
        self.model = self.peer.load(Artifact(path, {"family": family, "n_classes": 2}))

    def __call__(self, batch: dict) -> dict:
        X = np.column_stack([batch[f] for f in FEATURES]).astype(np.float32)
        p = self.peer.proba(self.model, X)
        return {"id": batch["id"], **{f"proba_{j}": p[:, j] for j in range(p.shape[1])}}


def _ray(data: str, out: str, batch_rows: int, make_ds) -> dict:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        make_ds(ray.data.read_parquet(data, columns=["id", *FEATURES])).write_parquet(out)
    finally:
        ray.shutdown()
    return {}


def run_child(args: argparse.Namespace) -> None:
    """Score ``args.data`` with one peer; print one JSON line (seconds, peak RSS, stage times)."""
    from _peers import Artifact, NativePeer, OrtPeer

    start = time.perf_counter()
    art = json.loads(args.artifact)
    result: dict[str, Any] = {}
    if args.child == "loop-native":
        peer = NativePeer(threads=os.cpu_count() or 1)
        model = peer.load(Artifact(art["native"], {"family": art["family"], "n_classes": 2}))
        result = _loop(lambda X: peer.proba(model, X), args.data, args.output, args.batch_rows)
    elif args.child == "loop-ort":
        peer = OrtPeer(threads=os.cpu_count() or 1)
        sess = peer.load(Artifact(art["onnx"]))
        result = _loop(lambda X: peer.proba(sess, X), args.data, args.output, args.batch_rows)
    elif args.child == "mle-score":
        import mlejax

        report = mlejax.score(art["mle"], args.data, args.output, keep=["id"], progress=False)
        result = {"rows": report.rows, "stages": report.stages, "batch_rows": report.batch_rows}
    elif args.child == "ray-native":
        import ray.data

        result = _ray(args.data, args.output, args.batch_rows, lambda ds: ds.map_batches(
            NativeActor, fn_constructor_kwargs={"path": art["native"], "family": art["family"]}, batch_format="numpy",
            batch_size=args.batch_rows, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=0.5))
    elif args.child == "ray-mlejax":
        import mlejax.ray

        result = _ray(args.data, args.output, args.batch_rows, lambda ds: mlejax.ray.score(
            ds, art["mle"], keep=["id"], batch_size=args.batch_rows, num_actors=1, num_cpus=1))
    result["seconds"] = time.perf_counter() - start
    with open("/proc/self/status") as f:  # VmHWM: peak RSS of this process (ru_maxrss would count the parent's, from before exec)
        result["peak_rss_mb"] = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    print("RESULT " + json.dumps(result))


# --- the suite -------------------------------------------------------------------------------
def _read_first(path: str, rows: int) -> np.ndarray:
    """Probabilities of the first ``rows`` ids of a peer's output (a file, or a directory of parts)."""
    import pyarrow.dataset as pads

    table = pads.dataset(path, format="parquet").to_table(filter=pads.field("id") < rows)
    table = table.sort_by("id")
    return np.stack([table[c].to_numpy() for c in table.column_names if c.startswith("proba_")], axis=1)


def convert(name: str, model: Any, X: np.ndarray, workdir: str) -> tuple[dict, dict]:
    """Artifacts per peer (paths), and the reasons of those that could not be made."""
    import mlejax
    from _peers import NativePeer, OrtPeer, PeerUnavailable

    os.makedirs(workdir, exist_ok=True)
    native = NativePeer(threads=1).convert(model, 2, X, workdir)
    art = {"family": native.state["family"], "native": native.path, "mle": os.path.join(workdir, "model.mle")}
    mlejax.export_model(model, art["mle"], sample_input=X[:256])
    skipped = {}
    try:
        art["onnx"] = OrtPeer(threads=1).convert(model, 2, X, workdir).path
    except PeerUnavailable as exc:
        skipped["loop-ort"] = str(exc)
    return art, skipped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--peers", default=",".join(PEERS))
    p.add_argument("--batch-rows", type=int, default=65536, help="rows per batch of the loops and Ray (mle-score picks its own)")
    p.add_argument("--train-rows", type=int, default=50_000)
    p.add_argument("--workdir", default=None, help="where the data, models and outputs go (default: a temporary folder)")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--child", choices=PEERS, help=argparse.SUPPRESS)
    p.add_argument("--artifact", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        run_child(args)
        return
    workdir = args.workdir or tempfile.mkdtemp(prefix="mlejax-batch-bench-")
    os.makedirs(workdir, exist_ok=True)
    data = os.path.join(workdir, f"rows-{args.rows}.parquet")
    if not os.path.exists(data):
        start = time.perf_counter()
        write_dataset(data, args.rows)
        print(f"wrote {args.rows:,} rows to {data} in {time.perf_counter() - start:.1f} s", flush=True)
    env = {**os.environ, "MLEJAX_CACHE_DIR": tempfile.mkdtemp(prefix="mlejax-bench-xla-")}  # compile for real
    X, y = make_rows(args.train_rows, seed=7)
    results: list[dict] = []
    for name in args.models.split(","):
        start = time.perf_counter()
        model = train(name, X, y)
        art, skipped = convert(name, model, X, os.path.join(workdir, name))
        print(f"{MODELS[name]}: trained and converted in {time.perf_counter() - start:.1f} s", flush=True)
        reference = None
        for peer in args.peers.split(","):
            row = {"model": MODELS[name], "peer": peer}
            results.append(row)
            if peer in skipped:
                row["skipped"] = skipped[peer]
                print(f"  {peer:12s} n/a ({skipped[peer]})", flush=True)
                continue
            output = os.path.join(workdir, name, f"out-{peer}" + ("" if peer.startswith("ray") else ".parquet"))
            cmd = [sys.executable, __file__, "--child", peer, "--artifact", json.dumps(art), "--data", data, "--output", output,
                   "--batch-rows", str(args.batch_rows)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if done.returncode != 0 or line is None:
                row["skipped"] = f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}"
                print(f"  {peer:12s} {row['skipped']}", flush=True)
                continue
            row.update(json.loads(line[7:]))
            row["rows_per_s"] = args.rows / row["seconds"]
            first = _read_first(output, 10_000)
            reference = first if peer == "loop-native" else reference
            row["max_abs_diff"] = float(np.nanmax(np.abs(first - reference))) if reference is not None else None
            print(f"  {peer:12s} {row['rows_per_s']:>12,.0f} rows/s  {row['seconds']:7.1f} s  peak RSS {row['peak_rss_mb']:6.0f} MiB", flush=True)
    write_results(results, args)


def write_results(results: list[dict], args: argparse.Namespace) -> None:
    import importlib.metadata as md

    versions = {}
    for dist in ("mlejax", "jax", "numpy", "pyarrow", "scikit-learn", "xgboost-cpu", "xgboost", "lightgbm", "onnxruntime", "ray"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    lines = [
        f"Parquet → Parquet, {args.rows:,} rows × 28 float32 + id (2% NaN in 4 columns); rows/s end to end, "
        "model loading and compilation included; peak RSS of the scoring process (Ray: the driver).",
        "",
        f"`python benchmarks/batch_scoring.py --rows {args.rows} --models {args.models} --peers {args.peers}` on "
        f"{datetime.date.today()}, {platform.node() or 'unknown host'}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end; {', '.join(f'{k} {v}' for k, v in versions.items())}.",
        "",
        "| model | peer | rows/s | seconds | peak RSS MiB | max abs diff vs loop-native | mlejax stages (s): read / h2d / compute / d2h / write |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in results:
        if "skipped" in row:
            lines.append(f"| {row['model']} | {row['peer']} | n/a ({row['skipped']}) | | | | |")
            continue
        stages = " / ".join(f"{row['stages'][s]:.2f}" for s in STAGES) if "stages" in row else ""
        diff = "" if row.get("max_abs_diff") is None else f"{row['max_abs_diff']:.1e}"
        lines.append(f"| {row['model']} | {row['peer']} | {row['rows_per_s']:,.0f} | {row['seconds']:.1f} | {row['peak_rss_mb']:,.0f} | {diff} | {stages} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "batch_scoring.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "batch_scoring.json"), "w") as f:
        json.dump({"rows": args.rows, "versions": versions, "results": results}, f, indent=2)
    plot(results, os.path.join(args.out, "batch_scoring.png"))


def plot(results: list[dict], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    models = list(dict.fromkeys(r["model"] for r in results))
    peers = list(dict.fromkeys(r["peer"] for r in results))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(peers)
    for i, peer in enumerate(peers):
        values = [next((r.get("rows_per_s", 0) for r in results if r["model"] == m and r["peer"] == peer), 0) for m in models]
        ax.bar(np.arange(len(models)) + i * width, values, width, label=peer)
    ax.set_xticks(np.arange(len(models)) + width * (len(peers) - 1) / 2, models)
    ax.set_ylabel("rows/s (Parquet → Parquet, end to end)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
