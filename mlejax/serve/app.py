"""The ASGI app: Open Inference Protocol routes in front of one dynamic batcher per (model, method).

Routes (KServe v2 / Triton HTTP, plus two conveniences):

=======================================================  =============================================
``GET  /v2``, ``/v2/health/live``, ``/v2/health/ready``  server metadata, liveness, readiness
``GET  /v2/models/{name}[/versions/{v}][/ready]``        model metadata (inputs, outputs), readiness
``POST /v2/models/{name}[/versions/{v}]/infer``          inference (JSON or binary tensors)
``POST /v2/repository/index``, ``.../models/{name}/load``  list models; reload one from its file
``POST /v1/models/{name}:predict``                       ``{"instances": ...}`` or ``{"columns": ...}``
``GET  /metrics``                                        Prometheus metrics
=======================================================  =============================================

Outputs are named by the graph output each model method reads (``label`` for
``predict`` of a classifier, ``output`` for a regressor, ``probabilities``,
``log_probabilities``, ``decision``, ``transform``, ``score_samples``,
``leaf_index``); a request that names none gets those of ``predict`` and
``predict_proba`` (a model with neither: every output but ``leaf_index``).

Readiness turns true once every model has compiled each batch size the
batcher can produce (the buckets up to ``max_batch_rows``), so serving never
compiles. A reload loads and warms the new version first, then swaps it in:
requests already queued finish on the old version, new ones go to the new one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hmac
import logging
import os
import signal
import threading
import time
from typing import Any, Awaitable, Callable, Mapping, Sequence

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..format.errors import InputError
from ..lowering.program import bucket_for
from ..lowering.seq_buckets import refuse_variable_axes
from ..model import Model, load_model
from .batcher import Batcher, QueueFull
from .metrics import Metrics
from .protocol import Signature, TensorSpec, datatype_of, encode_infer, loads_json, parse_infer, parse_v1, split_body

__all__ = ["create_app"]

log = logging.getLogger("mlejax.serve")

#: JSON bodies above this size are parsed in a thread, so the event loop keeps serving.
_THREAD_PARSE_BYTES = 1 << 16


class _Reject(Exception):
    """An HTTP error answer: status, message, extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


class _Version:
    """One loaded version of a model: the Model, what it accepts and returns, and its batchers."""

    def __init__(self, model: Model, number: int) -> None:
        self.model = model
        self.number = str(number)
        self.signature: Signature | None = None  # set by warm-up
        self.batchers: dict[str, Batcher] = {}

    def warm(self, max_batch_rows: int) -> None:
        """Compile every method for every batch bucket up to ``max_batch_rows``; learn the outputs' datatypes and shapes."""
        model = self.model
        refuse_variable_axes(model.graph, "mle-serve")
        n_required = len(model.graph.inputs) - len(model.metadata.get("input_defaults") or {})
        inputs = []
        for i, info in enumerate(model.graph.inputs[:n_required]):
            dims = (model.n_features_in_,) if i == 0 and len(info.shape) == 2 and model.n_features_in_ else info.shape[1:]
            inputs.append(TensorSpec(info.name, datatype_of(np.dtype(info.dtype)), (-1, *dims)))
        program = model.program
        buckets = sorted({bucket_for(n, program.batch_buckets, program.max_tile) for n in range(1, max_batch_rows + 1)})
        outputs: dict[str, TensorSpec] = {}
        for rows in buckets:
            # every graph input, zeros: compiles what requests will run, without the host's data checks
            # (zeros may be an unknown category or hold no DataFrame columns)
            zeros = [np.zeros((rows, *info.shape[1:]), np.dtype(info.dtype)) for info in model.graph.inputs]
            for method, output in sorted(model.methods.items()):
                value = np.asarray(model._to_host(output, program.run([output], zeros)[0]))
                outputs.setdefault(output, TensorSpec(output, datatype_of(value.dtype), (-1, *value.shape[1:])))
        methods = {output: method for method, output in model.methods.items()}
        default = [model.methods[m] for m in ("predict", "predict_proba") if m in model.methods]
        self.signature = Signature(
            tuple(inputs), tuple(outputs[o] for o in sorted(outputs)), methods,
            tuple(default or (o for o in sorted(outputs) if o != "leaf_index") or sorted(outputs)),
        )


class _Server:
    """The state behind the routes: models by name, their current versions, the batchers' threads, metrics."""

    def __init__(
        self, models: Mapping[str, Any], *, max_batch_rows: int, max_delay_ms: float, max_queue: int, max_body_bytes: int,
        device: Any, api_keys: Sequence[str], reload_on_sighup: bool, threads: int, warm_before_serving: bool,
    ) -> None:
        if max_batch_rows < 1 or max_queue < 1 or max_delay_ms < 0 or max_body_bytes < 1:
            raise ValueError("max_batch_rows, max_queue and max_body_bytes must be positive and max_delay_ms non-negative")
        self.max_batch_rows = max_batch_rows
        self.max_delay_ms = max_delay_ms
        self.max_queue = max_queue
        self.max_body_bytes = max_body_bytes
        self.device = device
        self.api_keys = [k.encode() for k in api_keys]
        self.reload_on_sighup = reload_on_sighup
        self.warm_before_serving = warm_before_serving
        self.metrics = Metrics()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mlejax-serve")
        self.sources: dict[str, str | None] = {}
        self.versions: dict[str, _Version] = {}  # the version being served, once warm
        self.pending: dict[str, _Version] = {}  # loaded, not yet warm (first load only)
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        for name, source in models.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError(f"model name {name!r}: use a non-empty name without '/'")
            self.sources[name] = None if isinstance(source, Model) else os.fspath(source)
            model = source if isinstance(source, Model) else load_model(source, device=device)
            self.pending[name] = _Version(model, 1)

    # --- lifecycle ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        loop = asyncio.get_running_loop()
        if self.warm_before_serving:
            await self._warm_all()
        else:
            self._spawn(self._warm_all())
        if self.reload_on_sighup and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload_all()))
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*(b.close() for v in self.versions.values() for b in v.batchers.values()))
            self.executor.shutdown(wait=False)

    def _spawn(self, coro: Awaitable) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm_all(self) -> None:
        for name, version in list(self.pending.items()):
            try:
                await asyncio.get_running_loop().run_in_executor(self.executor, version.warm, self.max_batch_rows)
            except Exception:  # the model stays unready (503); the others are served
                log.exception("warming up model %s failed; it will not become ready", name)
                continue
            self._install(name, version)
            del self.pending[name]
            log.info("model %s ready", name)

    def _install(self, name: str, version: _Version) -> _Version | None:
        """Serve ``version`` of ``name`` from now on; return the version it replaces."""
        for method in version.signature.methods.values():
            rows_hist = self.metrics.batch_rows.labels(name, method)
            depth = self.metrics.queue_depth.labels(name, method)
            version.batchers[method] = Batcher(
                functools.partial(getattr(version.model, method), by_position=True), self.executor, max_batch_rows=self.max_batch_rows,
                max_delay_ms=self.max_delay_ms, max_queue=self.max_queue, on_batch=rows_hist.observe, on_depth=depth.set,
            )
        old, self.versions[name] = self.versions.get(name), version
        return old

    async def reload(self, name: str) -> _Version:
        """Load ``name`` again from its file, warm it, swap it in, and let the old version drain."""
        source = self.sources[name]
        if source is None:
            raise _Reject(400, f"model {name!r} was given as a loaded Model, not a file; there is nothing to reload it from")
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self.versions:
                raise _Reject(503, f"model {name!r} is still loading", {"Retry-After": "1"})
            number = int(self.versions[name].number) + 1
            loop = asyncio.get_running_loop()

            def load() -> _Version:
                version = _Version(load_model(source, device=self.device), number)
                version.warm(self.max_batch_rows)
                return version

            try:
                version = await loop.run_in_executor(self.executor, load)
            except Exception as exc:
                log.exception("reloading %s failed; still serving version %s", name, self.versions[name].number)
                raise _Reject(500, f"reloading model {name!r} from its file failed ({type(exc).__name__}: {exc}); the previous version is still served") from None
            old = self._install(name, version)
            self._spawn(asyncio.gather(*(b.close() for b in old.batchers.values())))
            log.info("model %s reloaded: version %s", name, version.number)
            return version

    async def reload_all(self) -> None:
        """Reload every model that came from a file (SIGHUP)."""
        for name, source in self.sources.items():
            if source is not None:
                with contextlib.suppress(_Reject):
                    await self.reload(name)

    # --- helpers of the routes ----------------------------------------------------------------
    def version(self, name: str, number: str | None = None) -> _Version:
        """The served version of ``name``: 404 for an unknown model or version, 503 while loading."""
        if name not in self.sources:
            raise _Reject(404, f"unknown model {name[:80]!r}; this server has {sorted(self.sources)}")
        version = self.versions.get(name)
        if version is None:
            raise _Reject(503, f"model {name!r} is loading (compiling its batch sizes)", {"Retry-After": "1"})
        if number is not None and number != version.number:
            raise _Reject(404, f"model {name!r} has no version {number[:20]!r}; it serves version {version.number}")
        return version

    async def body(self, request: Request) -> bytes:
        """The request body, refused with 413 past ``max_body_bytes``."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            raise _Reject(413, f"request body of {length} bytes exceeds the server's limit of {self.max_body_bytes}")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > self.max_body_bytes:
                raise _Reject(413, f"request body exceeds the server's limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def json(self, data: bytes) -> Any:
        """``data`` parsed by :func:`loads_json`; large bodies in a thread, so the event loop keeps serving."""
        if len(data) > _THREAD_PARSE_BYTES:
            return await asyncio.get_running_loop().run_in_executor(None, loads_json, data)
        return loads_json(data)

    @staticmethod
    async def run(version: _Version, inputs: list[np.ndarray], methods: Sequence[str]) -> list[np.ndarray]:
        """Queue the inputs on each method's batcher (all at once, before any await) and gather the results."""
        futures: list[asyncio.Future] = []
        try:
            for method in methods:
                futures.append(version.batchers[method].submit(*inputs))
        except QueueFull as exc:
            for f in futures:
                f.cancel()
            raise _Reject(503, f"server busy: {exc}; retry shortly", {"Retry-After": "1"}) from None
        return list(await asyncio.gather(*futures))

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether the ``Authorization: Bearer`` header holds one of the keys (constant-time compare)."""
        value = next((v for k, v in headers if k == b"authorization"), b"")
        scheme, _, token = value.partition(b" ")
        ok = False
        for key in self.api_keys:
            ok |= hmac.compare_digest(token.strip(), key)
        return ok and scheme.lower() == b"bearer"


def _json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def _route(server: _Server, route: str, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: errors become JSON answers (never a traceback) and every answer is counted and timed."""

    async def endpoint(request: Request) -> Response:
        start = time.perf_counter()
        try:
            response = await handler(request)
        except _Reject as exc:
            response = _json_error(exc.status, str(exc), exc.headers)
        except InputError as exc:
            response = _json_error(400, str(exc))
        except Exception:
            log.exception("error answering %s %s", request.method, request.url.path)
            response = _json_error(500, "internal server error; see the server's log")
        name = request.path_params.get("name", "")
        model = name if name in server.sources else ""  # unknown names never become metric labels
        server.metrics.observe(model, route, response.status_code, time.perf_counter() - start)
        return response

    return endpoint


def _routes(server: _Server) -> list[Any]:
    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "mlejax", "version": __version__, "extensions": ["binary_tensor_data", "model_repository"]})

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        ok = len(server.versions) == len(server.sources)
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            version = server.version(name, request.path_params.get("version"))
        except _Reject as exc:
            if exc.status != 503:
                raise
            return JSONResponse({"name": name, "ready": False}, status_code=503)
        return JSONResponse({"name": name, "version": version.number, "ready": True})

    async def model_metadata(request: Request) -> Response:
        name = request.path_params["name"]
        version = server.version(name, request.path_params.get("version"))
        sig = version.signature
        return JSONResponse({
            "name": name, "versions": [version.number], "platform": "mlejax",
            "inputs": [s.as_json() for s in sig.inputs], "outputs": [s.as_json() for s in sig.outputs],
            "parameters": {"source_estimator": version.model.source_estimator, "methods": version.model.methods},
        })

    async def infer(request: Request) -> Response:
        name = request.path_params["name"]
        server.version(name, request.path_params.get("version"))  # 404 before reading the body
        header, binary = split_body(await server.body(request), request.headers.get("inference-header-content-length"))
        doc = await server.json(header)
        version = server.version(name, request.path_params.get("version"))
        req = parse_infer(doc, binary, version.signature, server.max_batch_rows)
        methods = [version.signature.methods[o] for o, _ in req.outputs]
        values = await server.run(version, req.inputs, methods)
        body, header_length = encode_infer(name, version.number, req.id, [(o, v, b) for (o, b), v in zip(req.outputs, values)])
        if header_length is None:
            return Response(body, media_type="application/json")
        return Response(body, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(header_length)})

    async def predict_v1(request: Request) -> Response:
        name = request.path_params["name"]
        server.version(name)
        doc = await server.json(await server.body(request))
        version = server.version(name)
        names = getattr(version.model, "feature_names_in_", None)
        X, method = parse_v1(doc, version.signature, None if names is None else [str(n) for n in names], server.max_batch_rows)
        (value,) = await server.run(version, [X], [method])
        return JSONResponse({"predictions": value.tolist(), "method": method, "model_version": version.number})

    async def repository_index(request: Request) -> Response:
        return JSONResponse([
            {"name": n, "version": server.versions[n].number if n in server.versions else "1",
             "state": "READY" if n in server.versions else "LOADING"} for n in sorted(server.sources)
        ])

    async def load(request: Request) -> Response:
        name = request.path_params["name"]
        server.version(name)
        version = await server.reload(name)
        return JSONResponse({"name": name, "version": version.number})

    async def metrics(request: Request) -> Response:
        body, content_type = server.metrics.exposition()
        return Response(body, headers={"Content-Type": content_type})

    def r(path: str, handler: Callable, methods: list[str], route: str) -> Route:
        return Route(path, _route(server, route, handler), methods=methods)

    routes = [
        r("/v2", server_metadata, ["GET"], "server"),
        r("/v2/health/live", live, ["GET"], "live"),
        r("/v2/health/ready", ready, ["GET"], "ready"),
        r("/v2/repository/index", repository_index, ["POST"], "repository"),
        r("/v2/repository/models/{name}/load", load, ["POST"], "load"),
        r("/v1/models/{name}:predict", predict_v1, ["POST"], "predict_v1"),
        r("/metrics", metrics, ["GET"], "metrics"),
    ]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            r(prefix, model_metadata, ["GET"], "metadata"),
            r(prefix + "/ready", model_ready, ["GET"], "model_ready"),
            r(prefix + "/infer", infer, ["POST"], "infer"),
        ]
    return routes


class _BearerAuth:
    """ASGI middleware: every route but ``/v2/health/*`` needs ``Authorization: Bearer <key>``."""

    def __init__(self, app: Any, server: _Server) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/v2/health/") and not self.server.authorized(scope["headers"]):
            response = _json_error(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _json_error(exc.status_code, str(exc.detail), exc.headers)


def create_app(
    models: Mapping[str, Any] | Sequence[Any],
    *,
    max_batch_rows: int = 256,
    max_delay_ms: float = 0.0,
    max_queue: int = 1024,
    max_body_bytes: int = 16 << 20,
    device: Any = None,
    api_keys: Sequence[str] = (),
    reload_on_sighup: bool = False,
    threads: int | None = None,
    warm_before_serving: bool = False,
) -> Starlette:
    """An ASGI app serving ``models`` over the Open Inference Protocol, with dynamic batching.

    Args:
      models: name -> ``.mle`` path or loaded :class:`~mlejax.Model`; or a list of
        paths, each served under its file's stem. Files are loaded now (errors
        surface here); compilation (warm-up) starts with the app and readiness
        follows it.
      max_batch_rows: rows per merged model call; also the most rows one request may carry.
      max_delay_ms: how long a batch that is not full waits for more requests.
      max_queue: requests waiting per (model, method) before the server answers 503.
      max_body_bytes: larger request bodies are answered 413.
      device: where models run (``"cpu"``, ``"gpu"``, a ``jax.Device``; ``None``: JAX's default).
      api_keys: if given, every route but health needs ``Authorization: Bearer <one of them>``.
      reload_on_sighup: reload every model from its file on SIGHUP (main thread only).
      threads: threads running model calls (default: CPU count, at least 2).
      warm_before_serving: compile during the ASGI startup, so the server
        accepts no connection before it is ready (what ``mle-serve --workers``
        uses: a worker still compiling then never answers 503 beside a ready one).
    """
    if not isinstance(models, Mapping):
        models = {os.path.splitext(os.path.basename(os.fspath(p)))[0]: p for p in models}
    server = _Server(
        models, max_batch_rows=max_batch_rows, max_delay_ms=max_delay_ms, max_queue=max_queue, max_body_bytes=max_body_bytes,
        device=device, api_keys=api_keys, reload_on_sighup=reload_on_sighup, threads=threads or max(2, os.cpu_count() or 1),
        warm_before_serving=warm_before_serving,
    )
    app = Starlette(routes=_routes(server), lifespan=server.lifespan, exception_handlers={HTTPException: _http_error})
    if server.api_keys:
        app.add_middleware(_BearerAuth, server=server)
    app.state.server = server
    return app
