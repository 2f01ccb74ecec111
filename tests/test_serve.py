"""mle-serve: the Open Inference Protocol app on a real uvicorn server on 127.0.0.1, driven by httpx and tritonclient.

Results are checked against ``Model.predict*`` and the native models; requests
are bounded and every server is stopped by the test that started it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

import uvicorn

import mlejax as mle
from helpers import assert_close, assert_same_labels
from mlejax.serve import create_app
from mlejax.serve.batcher import Batcher, QueueFull

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROWS = 8  # max_batch_rows of the servers here: 4 buckets to compile per method
N_FEATURES = 6


class ServerThread:
    """A uvicorn server for ``app`` in a thread on a free 127.0.0.1 port; ``stop()`` shuts it down."""

    def __init__(self, app) -> None:
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()

    def wait_ready(self, timeout: float = 120.0, headers=None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/v2/health/ready", headers=headers).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError("server not ready")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, N_FEATURES)).astype(np.float32)
    X[rng.random(X.shape) < 0.03] = np.nan
    y3 = (np.nan_to_num(X[:, 0]) > 0.3).astype(int) + (np.nan_to_num(X[:, 1]) > 0).astype(int)
    yr = np.nan_to_num(X[:, 0]) * 2 + np.nan_to_num(X[:, 2])
    return X, y3, yr


@pytest.fixture(scope="module")
def natives(data):
    """Small native models of the four families the issue names."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neural_network import MLPClassifier
    import lightgbm
    import xgboost

    X, y3, yr = data
    Xf = np.nan_to_num(X)
    return {
        "rf": (RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(X, y3), X),
        "xgb": (xgboost.XGBClassifier(n_estimators=15, max_depth=3).fit(X, y3), X),
        "lgbm": (lightgbm.LGBMRegressor(n_estimators=15, num_leaves=8, verbose=-1).fit(X, yr), X),
        "mlp": (MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(Xf, y3), Xf),
    }


@pytest.fixture(scope="module")
def paths(natives, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve")
    paths = {}
    for name, (model, X) in natives.items():
        paths[name] = out / f"{name}.mle"
        mle.export_model(model, paths[name], sample_input=X[:32])
    return paths


@pytest.fixture(scope="module")
def server(paths):
    srv = ServerThread(create_app(paths, max_batch_rows=ROWS, max_delay_ms=2.0))
    srv.wait_ready()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def loaded(server):
    """The Models the server serves, for comparison."""
    return {name: v.model for name, v in server.app.state.server.versions.items()}


def v2_request(X, outputs=None, binary=False):
    doc = {"id": "r1", "inputs": [{"name": "X", "shape": list(X.shape), "datatype": "FP32", "data": _json_data(X)}]}
    if outputs:
        doc["outputs"] = [{"name": o, "parameters": {"binary_data": binary}} for o in outputs]
    return doc


def _json_data(X):
    return [None if np.isnan(v) else float(v) for v in X.ravel()]


def _as_array(out):
    return np.asarray(out["data"]).reshape(out["shape"])


# --- the protocol ------------------------------------------------------------------------------------------
def test_health_and_metadata(server, loaded):
    assert httpx.get(server.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    meta = httpx.get(server.url + "/v2/models/rf").json()
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, N_FEATURES]}]
    outs = {o["name"]: o for o in meta["outputs"]}
    assert outs["label"] == {"name": "label", "datatype": "INT64", "shape": [-1]}
    assert outs["probabilities"]["shape"] == [-1, 3] and outs["probabilities"]["datatype"] == "FP32"
    assert set(outs) == set(loaded["rf"].methods.values())
    assert {o["name"] for o in httpx.get(server.url + "/v2/models/lgbm").json()["outputs"]} >= {"output", "leaf_index"}
    assert httpx.get(server.url + "/v2/models/xgb/ready").json()["ready"] is True
    assert httpx.get(server.url + "/v2/models/xgb/versions/1/ready").status_code == 200
    assert httpx.get(server.url + "/v2/models/xgb/versions/7/ready").status_code == 404
    assert httpx.get(server.url + "/v2").json()["extensions"] == ["binary_tensor_data", "model_repository"]


@pytest.mark.parametrize("name", ["rf", "xgb", "lgbm", "mlp"])
def test_infer_json_equals_model_and_native(server, loaded, natives, name):
    native, X = natives[name]
    model = loaded[name]
    rows = X[:5]
    outputs = sorted(set(model.methods.values()))
    r = httpx.post(f"{server.url}/v2/models/{name}/infer", json=v2_request(rows, outputs))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "r1" and body["model_name"] == name and body["model_version"] == "1"
    got = {o["name"]: _as_array(o) for o in body["outputs"]}
    assert [o["name"] for o in body["outputs"]] == outputs
    for output in outputs:
        method = {v: k for k, v in model.methods.items()}[output]
        assert_close(got[output], getattr(model, method)(rows), tol=1e-6, what=f"{name} {output} vs Model")
    if hasattr(native, "classes_"):
        assert_same_labels(got["label"], native.predict(rows))
        assert_close(got["probabilities"], native.predict_proba(rows), what=f"{name} vs native")
    else:
        assert_close(got["output"], native.predict(rows), what=f"{name} vs native")


def test_default_outputs_are_predict_and_predict_proba(server, natives):
    native, X = natives["rf"]
    r = httpx.post(f"{server.url}/v2/models/rf/infer", json=v2_request(X[:3]))
    assert [o["name"] for o in r.json()["outputs"]] == ["label", "probabilities"]
    r = httpx.post(f"{server.url}/v2/models/lgbm/infer", json=v2_request(X[:3]))
    assert [o["name"] for o in r.json()["outputs"]] == ["output"]


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient(server, loaded, natives, binary):
    triton = pytest.importorskip("tritonclient.http")
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("xgb")
        assert client.get_model_metadata("xgb")["inputs"][0]["shape"] == [-1, N_FEATURES]
        for name in ("rf", "xgb", "lgbm", "mlp"):
            native, X = natives[name]
            rows = X[10:17]
            inp = triton.InferInput("X", list(rows.shape), "FP32")
            inp.set_data_from_numpy(rows, binary_data=binary)
            model = loaded[name]
            outs = [o for o in ("label", "probabilities", "output") if o in model.methods.values()]
            result = client.infer(name, [inp], outputs=[triton.InferRequestedOutput(o, binary_data=binary) for o in outs])
            for output in outs:
                method = {v: k for k, v in model.methods.items()}[output]
                assert_close(result.as_numpy(output), getattr(model, method)(rows), tol=1e-6, what=f"{name} {output}")
            first = "label" if "label" in outs else "output"
            if first == "label":
                assert_same_labels(result.as_numpy("label"), native.predict(rows))
            else:
                assert_close(result.as_numpy("output"), native.predict(rows))
        # no outputs named: tritonclient asks for binary outputs of everything the server sends by default
        inp = triton.InferInput("X", [2, N_FEATURES], "FP32")
        inp.set_data_from_numpy(natives["rf"][1][:2], binary_data=binary)
        result = client.infer("rf", [inp])
        assert_close(result.as_numpy("probabilities"), loaded["rf"].predict_proba(natives["rf"][1][:2]), tol=1e-6)
        with pytest.raises(triton.InferenceServerException, match="unknown model"):
            client.infer("nope", [inp])
    finally:
        client.close()


def test_binary_request_by_hand(server, loaded, natives):
    """The binary tensor extension as Triton defines it: JSON header, then raw little-endian bytes."""
    X = natives["xgb"][1][:4]
    header = json.dumps({"inputs": [{"name": "X", "shape": [4, N_FEATURES], "datatype": "FP32", "parameters": {"binary_data_size": X.nbytes}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "label"}]}).encode()
    r = httpx.post(f"{server.url}/v2/models/xgb/infer", content=header + X.astype("<f4").tobytes(),
                   headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200, r.text
    n = int(r.headers["Inference-Header-Content-Length"])
    doc = json.loads(r.content[:n])
    (proba_out, label_out) = doc["outputs"]
    assert proba_out["parameters"]["binary_data_size"] == 4 * 3 * 4 and "data" not in proba_out
    proba = np.frombuffer(r.content[n:], "<f4").reshape(proba_out["shape"])
    assert_close(proba, loaded["xgb"].predict_proba(X), tol=1e-6)
    assert label_out["data"] == loaded["xgb"].predict(X).tolist()


def test_v1_predict(server, loaded, natives):
    X = natives["rf"][1][:3]
    r = httpx.post(f"{server.url}/v1/models/rf:predict", json={"instances": np.nan_to_num(X).tolist(), "method": "predict_proba"})
    assert r.status_code == 200, r.text
    assert_close(np.asarray(r.json()["predictions"]), loaded["rf"].predict_proba(np.nan_to_num(X)), tol=1e-6)
    r = httpx.post(f"{server.url}/v1/models/lgbm:predict", json={"instances": [[None] * N_FEATURES]})
    assert_close(np.asarray(r.json()["predictions"]), natives["lgbm"][0].predict(np.full((1, N_FEATURES), np.nan)))
    r = httpx.post(f"{server.url}/v1/models/rf:predict", json={"instances": [[1.0] * N_FEATURES], "method": "fit"})
    assert r.status_code == 400 and "unknown method" in r.json()["error"]


def test_string_labels_and_v1_columns_by_feature_name(tmp_path, data):
    pd = pytest.importorskip("pandas")
    triton = pytest.importorskip("tritonclient.http")
    from sklearn.linear_model import LogisticRegression

    X, y3, _ = data
    frame = pd.DataFrame(np.nan_to_num(X), columns=[f"f{i}" for i in range(N_FEATURES)])
    native = LogisticRegression(max_iter=200).fit(frame, np.array(["low", "mid", "high"])[y3])
    mle.export_model(native, tmp_path / "lr.mle")
    srv = ServerThread(create_app({"lr": tmp_path / "lr.mle"}, max_batch_rows=4))
    try:
        srv.wait_ready()
        cols = {name: frame[name][:3].tolist() for name in reversed(frame.columns)}  # order does not matter
        r = httpx.post(f"{srv.url}/v1/models/lr:predict", json={"columns": cols, "method": "predict_proba"})
        assert r.status_code == 200, r.text
        assert_close(np.asarray(r.json()["predictions"]), native.predict_proba(frame[:3]))
        r = httpx.post(f"{srv.url}/v1/models/lr:predict", json={"columns": cols})
        assert r.json()["predictions"] == native.predict(frame[:3]).tolist()
        del cols["f2"]
        r = httpx.post(f"{srv.url}/v1/models/lr:predict", json={"columns": cols})
        assert r.status_code == 400 and "f2" in r.json()["error"]
        # string labels are BYTES: strings in JSON, length-prefixed in binary
        rows = frame.to_numpy(np.float32)[:4]
        (label,) = httpx.post(f"{srv.url}/v2/models/lr/infer", json=v2_request(rows, ["label"])).json()["outputs"]
        assert label["datatype"] == "BYTES" and label["data"] == native.predict(frame[:4]).tolist()
        client = triton.InferenceServerClient(url=srv.url.removeprefix("http://"))
        inp = triton.InferInput("X", list(rows.shape), "FP32")
        inp.set_data_from_numpy(rows)
        got = client.infer("lr", [inp], outputs=[triton.InferRequestedOutput("label")]).as_numpy("label")
        assert [v.decode() for v in got] == native.predict(frame[:4]).tolist()
        client.close()
    finally:
        srv.stop()


def test_column_transformer_by_name_with_a_strict_encoder(tmp_path, data):
    """A ColumnTransformer selecting by name, with an encoder that refuses unknown categories (0 is not one):
    it warms up and serves tensors whose columns are in the model's feature order."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y3, _ = data
    frame = pd.DataFrame(np.nan_to_num(X[:, :3]), columns=["a", "b", "c"]).assign(code=np.arange(len(X)) % 3 + 5.0)
    ct = ColumnTransformer([("scale", StandardScaler(), ["a", "b", "c"]), ("code", OneHotEncoder(), ["code"])])
    native = make_pipeline(ct, LogisticRegression(max_iter=300)).fit(frame, y3)
    mle.export_model(native, tmp_path / "ct.mle", sample_input=frame[:16])
    srv = ServerThread(create_app({"ct": tmp_path / "ct.mle"}, max_batch_rows=8))
    try:
        srv.wait_ready()
        rows = frame.to_numpy(np.float32)[:5]
        r = httpx.post(f"{srv.url}/v2/models/ct/infer", json=v2_request(rows, ["probabilities"]))
        assert r.status_code == 200, r.text
        assert_close(_as_array(r.json()["outputs"][0]), native.predict_proba(frame[:5]))
        bad = rows.copy()
        bad[0, 3] = 9.0  # a category the encoder never saw: scikit-learn raises, the server answers 400
        with pytest.raises(ValueError, match="unknown categor"):
            native.predict(frame[:1].assign(code=9.0))
        r = httpx.post(f"{srv.url}/v2/models/ct/infer", json=v2_request(bad, ["label"]))
        assert r.status_code == 400 and "unknown categories" in r.json()["error"], r.text
    finally:
        srv.stop()


# --- batching ----------------------------------------------------------------------------------------------
def test_64_concurrent_clients_get_their_own_rows(server, loaded, natives):
    X = natives["xgb"][1]
    model = loaded["xgb"]
    compiled_before = len(model.program.compile_seconds)

    async def client(i, http):
        rows = X[i * 3 : i * 3 + 1 + i % 3]
        r = await http.post(f"{server.url}/v2/models/xgb/infer", json=v2_request(rows, ["probabilities"]))
        assert r.status_code == 200, r.text
        return rows, _as_array(r.json()["outputs"][0])

    async def main():
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64), timeout=60) as http:
            return await asyncio.gather(*(client(i, http) for i in range(64)))

    for rows, got in asyncio.run(main()):
        assert_close(got, model.predict_proba(rows), tol=1e-6)
        assert_close(got, natives["xgb"][0].predict_proba(rows))
    # load never compiles after warm-up, and requests were merged
    assert len(model.program.compile_seconds) == compiled_before
    metrics = httpx.get(server.url + "/metrics").text
    count = _metric(metrics, 'mlejax_batch_rows_count{method="predict_proba",model="xgb"}')
    total = _metric(metrics, 'mlejax_batch_rows_sum{method="predict_proba",model="xgb"}')
    assert total >= 64 * 2 - 1 and count < 64, (count, total)


def _metric(text, key):
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(key + " ")))


def test_batcher_queue_bound_and_errors():
    """The batcher's own contract: bounded queue, rows split back in order, one failing batch fails only its callers."""
    import concurrent.futures

    release = threading.Event()
    calls = []

    def fn(x):
        calls.append(len(x))
        release.wait(10)
        if (x < 0).any():
            raise ValueError("negative")
        return x * 2

    async def main():
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            b = Batcher(fn, pool, max_batch_rows=4, max_delay_ms=0, max_queue=2)
            first = b.submit(np.array([[1.0]]))
            await asyncio.sleep(0.05)  # the first batch is running (blocked)
            second, third = b.submit(np.array([[2.0], [3.0]])), b.submit(np.array([[4.0]]))
            with pytest.raises(QueueFull):
                b.submit(np.array([[5.0]]))
            release.set()
            results = await asyncio.gather(first, second, third)
            bad, good = b.submit(np.array([[-1.0]])), None
            with pytest.raises(ValueError):
                await bad
            good = await b.submit(np.array([[6.0]]))
            await b.close()
            return results, good

    results, good = asyncio.run(main())
    assert [r.ravel().tolist() for r in results] == [[2.0], [4.0, 6.0], [8.0]]
    assert good.ravel().tolist() == [12.0]
    assert calls[:2] == [1, 3]  # the two queued requests ran as one batch


def test_full_queue_answers_503_with_retry_after(paths, natives):
    app = create_app({"rf": paths["rf"]}, max_batch_rows=ROWS, max_queue=1)
    srv = ServerThread(app)
    try:
        srv.wait_ready()
        batcher = app.state.server.versions["rf"].batchers["predict"]
        release = threading.Event()
        predict = batcher.fn
        batcher.fn = lambda x: (release.wait(10), predict(x))[1]
        X = natives["rf"][1]

        async def main():
            async with httpx.AsyncClient(timeout=30) as http:
                post = lambda i: http.post(f"{srv.url}/v2/models/rf/infer", json=v2_request(X[i : i + 1], ["label"]))
                running = asyncio.ensure_future(post(0))
                await asyncio.sleep(0.2)
                queued = asyncio.ensure_future(post(1))
                await asyncio.sleep(0.2)
                refused = await post(2)
                release.set()
                return refused, await running, await queued

        refused, running, queued = asyncio.run(main())
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1" and "busy" in refused.json()["error"]
        assert running.status_code == queued.status_code == 200
    finally:
        srv.stop()


# --- bad input ---------------------------------------------------------------------------------------------
def _v2(**tensor):
    base = {"name": "X", "shape": [1, N_FEATURES], "datatype": "FP32", "data": [0.5] * N_FEATURES}
    return json.dumps({"inputs": [{**base, **tensor}]}).encode()


BAD_REQUESTS = [
    ("unknown model", "/v2/models/nope/infer", _v2(), {}, 404, "unknown model"),
    ("path traversal", "/v2/models/..%2F..%2Fetc%2Fpasswd/infer", _v2(), {}, 404, "Not Found"),
    ("dot-dot name", "/v2/models/%2E%2E/infer", _v2(), {}, 404, "unknown model '..'"),
    ("malformed JSON", "/v2/models/rf/infer", b'{"inputs": [', {}, 400, "malformed JSON"),
    ("not UTF-8", "/v2/models/rf/infer", b"\xff\xfe{}", {}, 400, "JSON"),
    ("deep JSON", "/v2/models/rf/infer", b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}, 400, "nested too deeply"),
    ("huge integer", "/v2/models/rf/infer", _v2(data=[0] * 5).replace(b"[0, 0", b"[" + b"9" * 5000 + b", 0"), {}, 400, "too large"),
    ("integer past float64", "/v2/models/rf/infer", _v2(data=[0] * 5).replace(b"[0, 0", b"[" + b"9" * 400 + b", 0"), {}, 400, "overflows FP32"),
    ("huge float", "/v2/models/rf/infer", _v2().replace(b"0.5", b"1e999", 1), {}, 400, "overflow FP32"),
    ("FP32 overflow", "/v2/models/rf/infer", _v2().replace(b"0.5", b"1e300", 1), {}, 400, "overflow FP32"),
    ("Infinity literal", "/v2/models/rf/infer", _v2().replace(b"0.5", b"-Infinity", 1), {}, 400, "-Infinity is not a number"),
    ("not an object", "/v2/models/rf/infer", b"[1, 2]", {}, 400, "JSON object"),
    ("no inputs", "/v2/models/rf/infer", b"{}", {}, 400, '"inputs"'),
    ("wrong input name", "/v2/models/rf/infer", _v2(name="features"), {}, 400, "unknown input 'features'"),
    ("wrong datatype", "/v2/models/rf/infer", _v2(datatype="FP64"), {}, 400, "expected datatype FP32"),
    ("wrong width", "/v2/models/rf/infer", _v2(shape=[1, 5], data=[0.5] * 5), {}, 400, "expected shape [-1, 6]"),
    ("1-D shape", "/v2/models/rf/infer", _v2(shape=[6]), {}, 400, "expected shape"),
    ("data/shape mismatch", "/v2/models/rf/infer", _v2(shape=[2, N_FEATURES]), {}, 400, "needs 12 values"),
    ("too many rows", "/v2/models/rf/infer", _v2(shape=[ROWS + 1, N_FEATURES], data=[0.5] * (ROWS + 1) * N_FEATURES), {}, 400, "max-batch-rows"),
    ("zero rows", "/v2/models/rf/infer", _v2(shape=[0, N_FEATURES], data=[]), {}, 400, "1 to"),
    ("strings", "/v2/models/rf/infer", _v2(data=["a"] * N_FEATURES), {}, 400, "non-numeric"),
    ("numeric strings", "/v2/models/rf/infer", _v2(data=["1.5"] * N_FEATURES), {}, 400, "non-numeric"),
    ("booleans", "/v2/models/rf/infer", _v2(data=[True] * N_FEATURES), {}, 400, "booleans"),
    ("objects in data", "/v2/models/rf/infer", _v2(data=[{"a": 1}] + [0.5] * 5), {}, 400, "expected numbers"),
    ("ragged", "/v2/models/rf/infer", _v2(data=[[1, 2], [3]]), {}, 400, "ragged"),
    ("unknown output", "/v2/models/rf/infer", json.dumps({"inputs": json.loads(_v2())["inputs"], "outputs": [{"name": "proba"}]}).encode(), {}, 400, "unknown output 'proba'"),
    ("missing input", "/v2/models/rf/infer", b'{"inputs": []}', {}, 400, "missing input"),
    ("binary size mismatch", "/v2/models/rf/infer", _v2(data=None).replace(b'"data": null', b'"parameters": {"binary_data_size": 8}'),
     {"Inference-Header-Content-Length": "LEN"}, 400, "does not match shape"),
    ("binary data short", "/v2/models/rf/infer", _v2(data=None).replace(b'"data": null', b'"parameters": {"binary_data_size": 24}'),
     {"Inference-Header-Content-Length": "LEN"}, 400, "ends after"),
    ("bad header length", "/v2/models/rf/infer", _v2(), {"Inference-Header-Content-Length": "-3"}, 400, "Inference-Header-Content-Length"),
    ("body too large", "/v2/models/rf/infer", b"[" + b" " * (1 << 21) + b"]", {}, 413, "exceeds"),
    ("v1 neither", "/v1/models/rf:predict", b'{"rows": []}', {}, 400, "instances"),
    ("v1 columns without names", "/v1/models/rf:predict", b'{"columns": {"a": [1]}}', {}, 400, "no feature names"),
]


@pytest.fixture(scope="module")
def small_body_server(paths):
    srv = ServerThread(create_app({"rf": paths["rf"]}, max_batch_rows=ROWS, max_body_bytes=1 << 20))
    srv.wait_ready()
    yield srv
    srv.stop()


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_is_a_json_4xx(small_body_server, case):
    _, path, body, headers, status, message = case
    if headers.get("Inference-Header-Content-Length") == "LEN":
        headers = {"Inference-Header-Content-Length": str(len(body))}
        body = body + b"\0" * 8
    r = httpx.post(small_body_server.url + path, content=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error and "Traceback" not in error, error


def test_bad_requests_do_not_disturb_good_ones_in_the_same_batch(small_body_server, loaded, natives):
    X = natives["rf"][1]
    model = loaded["rf"]

    async def main():
        async with httpx.AsyncClient(timeout=60) as http:
            url = f"{small_body_server.url}/v2/models/rf/infer"
            good = [http.post(url, json=v2_request(X[i : i + 2], ["probabilities"])) for i in range(16)]
            bad = [http.post(url, content=_v2(data=["x"] * N_FEATURES)) for _ in range(16)]
            results = await asyncio.gather(*[c for pair in zip(good, bad) for c in pair])
            return results[0::2], results[1::2]

    good, bad = asyncio.run(main())
    assert all(r.status_code == 400 for r in bad)
    for i, r in enumerate(good):
        assert r.status_code == 200
        assert_close(_as_array(r.json()["outputs"][0]), model.predict_proba(X[i : i + 2]), tol=1e-6)
    assert httpx.get(small_body_server.url + "/nope").json() == {"error": "Not Found"}


# --- security, metrics -------------------------------------------------------------------------------------
def test_api_key_on_every_route_but_health(paths, natives):
    srv = ServerThread(create_app({"rf": paths["rf"]}, max_batch_rows=ROWS, api_keys=["s3cret-key"]))
    try:
        srv.wait_ready()
        X = natives["rf"][1][:1]
        ok = {"Authorization": "Bearer s3cret-key"}
        assert httpx.get(srv.url + "/v2/health/live").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-key"}, {"Authorization": "s3cret-key"}):
            r = httpx.post(srv.url + "/v2/models/rf/infer", json=v2_request(X), headers=headers)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer" and "API key" in r.json()["error"]
            assert httpx.get(srv.url + "/metrics", headers=headers).status_code == 401
            assert httpx.get(srv.url + "/v2/models/rf", headers=headers).status_code == 401
        assert httpx.post(srv.url + "/v2/models/rf/infer", json=v2_request(X), headers=ok).status_code == 200
        assert httpx.get(srv.url + "/metrics", headers=ok).status_code == 200
    finally:
        srv.stop()


def test_metrics(server, natives):
    X = natives["lgbm"][1][:2]
    httpx.post(f"{server.url}/v2/models/lgbm/infer", json=v2_request(X))
    httpx.post(f"{server.url}/v2/models/lgbm/infer", content=b"{")
    httpx.post(f"{server.url}/v2/models/who/infer", content=b"{}")
    text = httpx.get(server.url + "/metrics").text
    assert _metric(text, 'mlejax_requests_total{code="200",model="lgbm",route="infer"}') >= 1
    assert _metric(text, 'mlejax_request_errors_total{code="400",model="lgbm"}') >= 1
    assert _metric(text, 'mlejax_request_errors_total{code="404",model=""}') >= 1  # unknown names are not labels
    assert 'model="who"' not in text
    assert _metric(text, 'mlejax_request_latency_seconds_count{model="lgbm",route="infer"}') >= 2
    assert _metric(text, 'mlejax_batch_rows_bucket{le="2.0",method="predict",model="lgbm"}') >= 1
    assert _metric(text, 'mlejax_queue_depth{method="predict",model="lgbm"}') == 0


# --- hot reload --------------------------------------------------------------------------------------------
def test_hot_reload_under_load_drops_nothing(tmp_path, data):
    from sklearn.ensemble import RandomForestRegressor

    X, _, yr = data
    a = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X, yr)
    b = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=1).fit(X, -yr)
    path = tmp_path / "m.mle"
    mle.export_model(a, path)
    srv = ServerThread(create_app({"m": path}, max_batch_rows=4))
    try:
        srv.wait_ready()
        rows = X[:2]
        want = {"1": a.predict(rows), "2": b.predict(rows)}
        mle.export_model(b, tmp_path / "next.mle")
        (tmp_path / "next.mle").replace(path)  # atomic, as a deploy would do it

        async def main():
            seen, stop = [], asyncio.Event()
            async with httpx.AsyncClient(timeout=60) as http:
                async def client():
                    while not stop.is_set() and len(seen) < 5000:  # bounded, whatever the reload takes
                        seen.append(await http.post(f"{srv.url}/v2/models/m/infer", json=v2_request(rows, ["output"])))
                        await asyncio.sleep(0.002)
                loaders = [asyncio.ensure_future(client()) for _ in range(8)]
                await asyncio.sleep(0.3)
                reload = await http.post(f"{srv.url}/v2/repository/models/m/load")
                await asyncio.sleep(0.3)
                stop.set()
                await asyncio.gather(*loaders)
                return reload, seen

        reload, seen = asyncio.run(main())
        assert reload.status_code == 200 and reload.json() == {"name": "m", "version": "2"}
        assert all(r.status_code == 200 for r in seen), [r.text for r in seen if r.status_code != 200][:3]
        versions = [r.json()["model_version"] for r in seen]
        assert versions[0] == "1" and versions[-1] == "2" and len(seen) < 5000, (len(seen), versions[:3], versions[-3:])
        for r in seen:
            v = r.json()["model_version"]
            assert_close(_as_array(r.json()["outputs"][0]), want[v], what=f"version {v}")
        assert httpx.post(f"{srv.url}/v2/repository/models/other/load").status_code == 404
        index = httpx.post(f"{srv.url}/v2/repository/index").json()
        assert index == [{"name": "m", "version": "2", "state": "READY"}]
    finally:
        srv.stop()


def test_import_mlejax_does_not_import_the_server_stack():
    import subprocess

    code = "import mlejax, sys; print([m for m in ('starlette', 'uvicorn', 'prometheus_client', 'fastapi') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
