"""``mle-serve`` as a process on 127.0.0.1: API key file, SIGHUP reload, graceful SIGTERM, option errors."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

import mlejax as mle
from helpers import assert_close
from mlejax.serve.cli import parse_models, serve_main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def forests(tmp_path_factory):
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = X[:, 0] - 2 * X[:, 1]
    a = RandomForestRegressor(n_estimators=4, max_depth=3, random_state=0).fit(X, y)
    b = RandomForestRegressor(n_estimators=4, max_depth=3, random_state=0).fit(X, -y)
    out = tmp_path_factory.mktemp("cli")
    mle.export_model(a, out / "a.mle")
    mle.export_model(b, out / "b.mle")
    return X, a, b, out


def _infer(url, X, key, timeout=30):
    doc = {"inputs": [{"name": "X", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]}
    return httpx.post(url + "/v2/models/reg/infer", json=doc, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)


def test_serve_process_key_file_sighup_and_graceful_sigterm(forests, tmp_path):
    X, a, b, out = forests
    model_path = tmp_path / "reg.mle"
    model_path.write_bytes((out / "a.mle").read_bytes())
    key_file = tmp_path / "keys"
    key_file.write_text("old-key\n\nk3y-0f-t3st\n")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlejax.serve.cli", f"reg={model_path}", "--port", str(port), "--max-batch-rows", "4",
         "--max-delay-ms", "400", "--api-key-file", str(key_file), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/v2/health/ready").status_code == 200:  # health needs no key
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.1)
        assert _infer(url, X[:2], "nope").status_code == 401
        r = _infer(url, X[:2], "k3y-0f-t3st")
        assert r.status_code == 200 and r.json()["model_version"] == "1"
        assert_close(np.asarray(r.json()["outputs"][0]["data"]), a.predict(X[:2]))

        model_path.write_bytes((out / "b.mle").read_bytes())
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while _infer(url, X[:2], "old-key").json()["model_version"] != "2":
            assert time.monotonic() < deadline, "SIGHUP did not reload the model"
            time.sleep(0.1)
        assert_close(np.asarray(_infer(url, X[:2], "old-key").json()["outputs"][0]["data"]), b.predict(X[:2]))

        async def in_flight_then_sigterm():
            async with httpx.AsyncClient(timeout=30, headers={"Authorization": "Bearer old-key"}) as http:
                doc = lambda i: {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": X[i].tolist()}]}
                pending = [asyncio.ensure_future(http.post(url + "/v2/models/reg/infer", json=doc(i))) for i in range(6)]
                await asyncio.sleep(0.15)  # the requests wait in the batcher (--max-delay-ms 400)
                os.kill(proc.pid, signal.SIGTERM)
                return await asyncio.gather(*pending)

        answers = asyncio.run(in_flight_then_sigterm())
        assert [r.status_code for r in answers] == [200] * 6
        for i, r in enumerate(answers):
            assert_close(np.asarray(r.json()["outputs"][0]["data"]), b.predict(X[i : i + 1]))
        # uvicorn re-raises the signal once shut down, so the exit status says "terminated by SIGTERM"
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert b"Traceback" not in proc.stdout.read()
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/v2/health/live")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_parse_models():
    assert parse_models(["churn=m/x.mle", "m/fraud.mle"]) == {"churn": "m/x.mle", "fraud": "m/fraud.mle"}
    with pytest.raises(ValueError, match="given twice"):
        parse_models(["a/m.mle", "b/m.mle"])
    with pytest.raises(ValueError, match="name=path"):
        parse_models(["x="])


def test_bad_file_or_key_file_is_one_line_and_status_1(forests, tmp_path, capsys):
    _, _, _, out = forests
    assert serve_main([str(tmp_path / "missing.mle"), "--port", "1"]) == 1
    assert "missing.mle" in capsys.readouterr().err
    (tmp_path / "empty").write_text("\n")
    assert serve_main([str(out / "a.mle"), "--api-key-file", str(tmp_path / "empty"), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "no API key" in err and "Traceback" not in err


def test_workers_processes_each_serve(forests):
    X, a, _, out = forests
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlejax.serve.cli", str(out / "a.mle"), "--port", str(port), "--workers", "2",
         "--max-batch-rows", "2", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline, ready_in_a_row = time.monotonic() + 300, 0
        while ready_in_a_row < 10:  # both workers ready: answers come from either
            assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read().decode() if proc.poll() is not None else "not ready"
            try:
                ok = httpx.get(url + "/v2/health/ready", headers={"Connection": "close"}).status_code == 200
            except httpx.TransportError:
                ok = False
            ready_in_a_row = ready_in_a_row + 1 if ok else 0
            time.sleep(0.05)
        doc = {"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": X[:2].ravel().tolist()}]}
        for _ in range(6):
            r = httpx.post(url + "/v2/models/a/infer", json=doc, headers={"Connection": "close"})
            assert r.status_code == 200, r.text
            assert_close(np.asarray(r.json()["outputs"][0]["data"]), a.predict(X[:2]))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
