"""Serving benchmark (issue 13): single-row HTTP requests at 1, 16 and 128 concurrent clients.

Three servers score the same trained model, each as its own process on
127.0.0.1 and on the same cores, one after the other:

- ``flask+joblib``: the seed's design, a Flask app calling the ``joblib.load``-ed
  native model's ``predict_proba`` once per request, under gunicorn (one sync
  worker per core, the model's own threads set to 1);
- ``fastapi+ort``: FastAPI (pydantic body) calling ONNX Runtime once per
  request, under uvicorn (one worker per core, one ORT thread each);
- ``mle-serve``: mlejax's server, Open Inference Protocol JSON, dynamic batching.

The load generator is asyncio in this process (httpx, or with ``--client raw``
a minimal HTTP/1.1 keep-alive client that costs far less CPU): ``c`` clients,
each on its own connection sending one request after another (one row, 28
float32 features, pre-encoded bodies cycling over held-out rows) for
``--seconds``, after a warm-up. It
reports requests/s and the p50/p99 latency seen by the clients, and checks
every server's answers against the native ``predict_proba`` first.

    python benchmarks/serving.py [--models rf,xgb] [--clients 1,16,128] [--seconds 8] [--client httpx|raw]
                                 [--servers flask+joblib,fastapi+ort,mle-serve] [--out benchmarks/results]

Needs ``pip install "mlejax[serve]" httpx flask gunicorn fastapi onnxruntime skl2onnx onnxmltools xgboost psutil``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _peers import OrtPeer  # noqa: E402
from trees import make_data, machine_info  # noqa: E402

SERVERS = ("flask+joblib", "fastapi+ort", "mle-serve")

FLASK_APP = '''
import os
import joblib
import numpy as np
from flask import Flask, jsonify, request

model = joblib.load(os.environ["MODEL_PATH"])
if "n_jobs" in model.get_params():
    model.set_params(n_jobs=1)  # one gunicorn worker per core
app = Flask(__name__)


@app.post("/predict")
def predict():
    X = np.asarray(request.get_json()["instances"], dtype=np.float32)
    return jsonify({"predictions": model.predict_proba(X).tolist()})
'''

FASTAPI_APP = '''
import os
import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

opts = ort.SessionOptions()
opts.intra_op_num_threads = 1  # one uvicorn worker per core
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(os.environ["MODEL_PATH"], opts, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0].name
outs = [o.name for o in sess.get_outputs()]
prob = next((o for o in outs if "prob" in o.lower()), outs[-1])
app = FastAPI()


class Request(BaseModel):
    instances: list[list[float]]


@app.post("/predict")
def predict(req: Request):
    X = np.asarray(req.instances, dtype=np.float32)
    return {"predictions": sess.run([prob], {inp: X})[0].tolist()}
'''


def train(key: str, X: np.ndarray, y: np.ndarray) -> tuple[Any, str]:
    if key == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=-1, random_state=0).fit(X, y), "RandomForest(100, max_depth 12)"
    import xgboost

    return xgboost.XGBClassifier(n_estimators=500, max_depth=6, random_state=0).fit(X, y), "XGBoost(500, depth 6)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on a free port: the command, how to ask it for probabilities, how to stop it."""

    def __init__(self, kind: str, workdir: Path, model: Any, X: np.ndarray, mle_args: list[str]) -> None:
        import joblib

        import mlejax as mle

        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cores = str(os.cpu_count() or 1)
        env = dict(os.environ)
        if kind == "flask+joblib":
            joblib.dump(model, workdir / "model.joblib")
            (workdir / "flask_app.py").write_text(textwrap.dedent(FLASK_APP))
            env["MODEL_PATH"] = str(workdir / "model.joblib")
            cmd = [sys.executable, "-m", "gunicorn", "-w", cores, "-b", f"127.0.0.1:{self.port}", "--chdir", str(workdir),
                   "--log-level", "warning", "flask_app:app"]
            self.path = "/predict"
        elif kind == "fastapi+ort":
            env["MODEL_PATH"] = OrtPeer(1).convert(model, 2, X, str(workdir)).path
            (workdir / "fastapi_app.py").write_text(textwrap.dedent(FASTAPI_APP))
            cmd = [sys.executable, "-m", "uvicorn", "--workers", cores, "--host", "127.0.0.1", "--port", str(self.port),
                   "--app-dir", str(workdir), "--log-level", "warning", "fastapi_app:app"]
            self.path = "/predict"
        else:
            mle.export_model(model, workdir / "m.mle")
            cmd = [sys.executable, "-m", "mlejax.serve.cli", f"m={workdir / 'm.mle'}", "--port", str(self.port),
                   "--log-level", "warning", *mle_args]
            self.path = "/v2/models/m/infer"
        self.command = " ".join(shlex.quote(c) for c in cmd[1:])
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def body(self, row: np.ndarray) -> bytes:
        values = [float(v) for v in row]
        if self.kind == "mle-serve":
            doc = {"inputs": [{"name": "X", "shape": [1, len(values)], "datatype": "FP32", "data": values}],
                   "outputs": [{"name": "probabilities"}]}
        else:
            doc = {"instances": [values]}
        return json.dumps(doc).encode()

    def proba(self, answer: dict) -> np.ndarray:
        if self.kind == "mle-serve":
            return np.asarray(answer["outputs"][0]["data"]).reshape(answer["outputs"][0]["shape"])
        return np.asarray(answer["predictions"])

    def wait_ready(self, probe: bytes, timeout: float = 600) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                ok = (httpx.get(self.url + "/v2/health/ready").status_code == 200 if self.kind == "mle-serve"
                      else httpx.post(self.url + self.path, content=probe, headers={"Content-Type": "application/json"}).status_code == 200)
                if ok:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.kind} not ready after {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _RawConnection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: a load generator that costs far less CPU than httpx."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: "
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes) -> int:
        """Send one request; its status code (reconnecting when the server closes the connection)."""
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        writer.write(f"{self.head}{len(body)}\r\n\r\n".encode() + body)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        await reader.readexactly(length)
        if "connection: close" in head:
            writer.close()
            self.streams = None
        return int(head.split(" ", 2)[1])

    async def aclose(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


class _HttpxConnection:
    """One httpx client per simulated client (a shared pool of 128 connections costs httpx more CPU)."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        self.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=60)

    async def post(self, body: bytes) -> int:
        return (await self.http.post(self.url, content=body, headers={"Content-Type": "application/json"})).status_code

    async def aclose(self) -> None:
        await self.http.aclose()


async def load(server: Server, bodies: list[bytes], clients: int, seconds: float, warmup_s: float, kind: str = "httpx") -> dict:
    """``clients`` concurrent request loops for ``seconds`` (after ``warmup_s``); req/s, p50/p99 ms, errors."""
    latencies: list[float] = []
    errors = 0
    conns = [_RawConnection(server.port, server.path) if kind == "raw" else _HttpxConnection(server.url + server.path) for _ in range(clients)]

    async def client(i: int, until: float, record: bool) -> None:
        nonlocal errors
        k = i
        while time.perf_counter() < until:
            start = time.perf_counter()
            status = await conns[i].post(bodies[k % len(bodies)])
            if record:
                latencies.append(time.perf_counter() - start)
                errors += status != 200
            k += clients

    try:
        await asyncio.gather(*(client(i, time.perf_counter() + warmup_s, False) for i in range(clients)))
        start = time.perf_counter()
        await asyncio.gather(*(client(i, start + seconds, True) for i in range(clients)))
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.aclose() for c in conns))
    ms = np.asarray(latencies) * 1e3
    return {"clients": clients, "requests": len(latencies), "errors": errors, "req_per_s": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def check(server: Server, model: Any, X: np.ndarray) -> float:
    """Worst |server - native predict_proba| over a few single rows."""
    import httpx

    worst = 0.0
    for row in X[:16]:
        r = httpx.post(server.url + server.path, content=server.body(row), headers={"Content-Type": "application/json"})
        r.raise_for_status()
        worst = max(worst, float(np.abs(server.proba(r.json()) - model.predict_proba(row[None])).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="rf,xgb")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--clients", default="1,16,128")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per concurrency level")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each level")
    parser.add_argument("--client", choices=["httpx", "raw"], default="httpx",
                        help="load generator: httpx, or a minimal asyncio HTTP/1.1 client that leaves more CPU to the servers")
    parser.add_argument("--mle-args", default="--max-batch-rows 256", help="extra mle-serve options")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    info = machine_info()
    X_train, y_train, X_score = make_data(2, 20_000, 1_000, 0.0)
    results = []
    for key in args.models.split(","):
        model, label = train(key, X_train, y_train)
        print(f"# {label}", flush=True)
        for kind in args.servers.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                server = Server(kind, Path(tmp), model, X_score, shlex.split(args.mle_args))
                try:
                    bodies = [server.body(row) for row in X_score[:256]]
                    server.wait_ready(bodies[0])
                    err = check(server, model, X_score)
                    for c in clients:
                        row = asyncio.run(load(server, bodies, c, args.seconds, args.warmup, args.client))
                        row.update(model=label, server=kind, max_abs_err=err, command=server.command, client=args.client)
                        results.append(row)
                        print(f"{kind:>13}  c={c:<4} {row['req_per_s']:8.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
                              f"p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}  (max |err| {err:.1e})", flush=True)
                finally:
                    server.stop()
    table = markdown(results, clients)
    print("\n" + table)
    os.makedirs(args.out, exist_ok=True)
    command = "python benchmarks/serving.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    with open(os.path.join(args.out, "serving.json"), "w") as f:
        json.dump({"command": command, "machine": info, "results": results}, f, indent=1)
    with open(os.path.join(args.out, "serving.md"), "w") as f:
        f.write(f"`{command}`\n\n{info['date']}, {info['cpu']}, {info['logical_cpus']} logical CPUs, "
                f"load average {info['load_avg_1m_at_start']} at start\n\n{table}\n")
    return 0


def markdown(results: list[dict], clients: list[int]) -> str:
    """One row per (model, server): req/s and p50/p99 ms at each concurrency."""
    head = "| model | server | " + " | ".join(f"{c} client{'s' * (c > 1)}: req/s, p50/p99 ms" for c in clients) + " |"
    lines = [head, "|" + "---|" * (2 + len(clients))]
    for (model, server) in dict.fromkeys((r["model"], r["server"]) for r in results):
        cells = []
        for c in clients:
            r = next((r for r in results if (r["model"], r["server"], r["clients"]) == (model, server, c)), None)
            cells.append("—" if r is None else f"{r['req_per_s']:,.0f}, {r['p50_ms']:.1f}/{r['p99_ms']:.1f}"
                         + (f" ({r['errors']} errors)" if r["errors"] else ""))
        lines.append(f"| {model} | {server} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
