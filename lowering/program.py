"""A graph lowered to JAX: pure functions per output, compiled per shape bucket.

:func:`evaluate` interprets a :class:`~mlejax.format.graph.Graph` with JAX ops
(it is traced once by ``jax.jit``, so the interpretation costs nothing at run
time). :class:`Program` owns the device copies of the stored tensors and a
cache of compiled executables keyed by (outputs, padded batch, dtypes, device).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import os
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from ..format.errors import MLEFormatError
from ..format.graph import Graph, Node
from .cache import compile_lowered, enable_persistent_cache, read_entry, write_entry
from .registry import check_graph, get_rule, row_budget
from .seq_buckets import SequenceSpec, cut_outputs, pad_lengths

__all__ = ["evaluate", "Program", "bucket_for", "lowering_options"]

#: Largest padded batch compiled by default; bigger batches run in tiles of this size.
DEFAULT_MAX_TILE = 1 << 16
#: On CPU, programs for at most this many (padded) rows are compiled without XLA's parallel task
#: assignment: splitting a loop over a handful of rows across threads costs more than the loop
#: (its cost model sizes a gather by the table it reads; measured 43 → 12 µs for one row of a
#: 100-tree forest on 2 cores, and a loss only from 64 rows up).
SERIAL_MAX_ROWS = int(os.environ.get("MLEJAX_SERIAL_MAX_ROWS", 16))
_SERIAL_OPTIONS = {"xla_disable_hlo_passes": "cpu-parallel-task-assigner"}
#: Exact (outputs, shapes, dtypes) → executable entries kept per Program for the call fast path.
_FAST_ENTRIES = 4096


def _sync_cpu_dispatch() -> None:
    """Run CPU computations on the calling thread (JAX's ``jax_cpu_enable_async_dispatch=False``).

    mlejax always waits for its results, so dispatching to a worker thread
    only adds a thread hand-off per call (15-30 µs on a small VM, half the
    batch-1 latency of a forest). The flag is read when JAX creates its CPU
    client, so it is set here, at import, only if that has not happened yet
    and neither ``$JAX_CPU_ENABLE_ASYNC_DISPATCH`` nor
    ``$MLEJAX_CPU_ASYNC_DISPATCH=1`` asks otherwise. It affects every CPU
    computation of the process: they return when finished (results are the
    same).
    """
    if os.environ.get("MLEJAX_CPU_ASYNC_DISPATCH", "0") not in ("", "0") or "JAX_CPU_ENABLE_ASYNC_DISPATCH" in os.environ:
        return
    try:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    except Exception:  # a JAX without this flag: keep its default
        pass


_sync_cpu_dispatch()

_OPTIONS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("mlejax_lowering_options", default={})


def lowering_options() -> Mapping[str, Any]:
    """Options of the :func:`evaluate` call now tracing (rules read them; empty outside one).

    Keys set by :class:`Program`: its ``options`` (e.g. ``tree_strategy``),
    ``platform`` (the device's platform), ``host`` (stored tensors as numpy
    arrays, by value name), ``params`` (the traced stored and prepared tensors), ``cache`` (a per-Program dict rules may memoize
    host-side analysis in) and ``choices`` (a dict rules record decisions in).
    """
    return _OPTIONS.get()


def evaluate(
    graph: Graph,
    params: Mapping[str, Any],
    inputs: Sequence[Any],
    outputs: Sequence[str],
    options: Mapping[str, Any] | None = None,
) -> list:
    """Compute the named graph ``outputs`` from ``inputs`` (JAX-traceable).

    Only nodes that the requested outputs depend on are evaluated. ``options``
    are visible to rules through :func:`lowering_options` while they run.
    """
    token = _OPTIONS.set(options if options is not None else {})
    try:
        return _evaluate(graph, params, inputs, outputs)
    finally:
        _OPTIONS.reset(token)


def _evaluate(graph: Graph, params: Mapping[str, Any], inputs: Sequence[Any], outputs: Sequence[str]) -> list:
    env: dict[str, Any] = dict(params)
    for info, value in zip(graph.inputs, inputs):
        env[info.name] = value
    wanted = {graph.outputs[o] for o in outputs}
    needed: list = []
    for node in reversed(graph.nodes):
        if wanted.intersection(node.outputs):
            needed.append(node)
            wanted.update(node.inputs)
    shapes = lowering_options().get("shapes")  # set by Program's load-time abstract evaluation
    for node in reversed(needed):
        result = get_rule(node)(node, *(env[name] for name in node.inputs))
        if not isinstance(result, tuple):
            result = (result,)
        env.update(zip(node.outputs, result))
        if shapes is not None:
            _record_shapes(node, result, shapes, lowering_options()["row_budget"])
    return [env[graph.outputs[o]] for o in outputs]


def _record_shapes(node: Node, result: tuple, shapes: dict[str, tuple], budget: int) -> None:
    """Record the (one-row) shapes of a node's outputs; MLEFormatError if one is over ``budget`` elements."""
    for name, value in zip(node.outputs, result):
        shape = tuple(getattr(value, "shape", ()))
        if math.prod(shape) > budget:
            raise MLEFormatError(
                f"node {node.name!r} (op {node.op}): output {name!r} has shape {list(shape)} for one row, "
                f"over this model's bound of {budget} elements per row"
            )
        shapes[name] = shape


#: ops whose output holds their first input's values (a label passes through them unchanged)
_LABEL_PASS = frozenset({"Identity", "Cast", "Reshape", "ReshapeDims", "Squeeze", "SqueezeAxes"})


def label_range(graph: Graph, shapes: Mapping[str, tuple]) -> int | None:
    """How many class indices the ``label`` output takes, where its producing op says (else ``None``).

    ``ArgMax``/``ReduceArg``: the size of the reduced axis; ``Greater``,
    ``GreaterEqual``, ``Compare``: 2; ``OvoVote``: ``n_classes``; through
    ops that pass values on unchanged. ``shapes``: :attr:`Program.value_shapes`.
    """
    producers = {out: node for node in graph.nodes for out in node.outputs}
    value = graph.outputs.get("label")
    while value in producers:
        node = get_rule(producers[value]).validate(producers[value])
        if node.op in _LABEL_PASS:
            value = node.inputs[0]
        elif node.op in ("ArgMax", "ReduceArg"):
            shape = shapes.get(node.inputs[0])
            return None if shape is None or not -len(shape) <= node.attrs["axis"] < len(shape) else shape[node.attrs["axis"]]
        elif node.op in ("Greater", "GreaterEqual", "Compare"):
            return 2
        elif node.op == "OvoVote":
            return node.attrs["n_classes"]
        else:
            return None
    return None


def bucket_for(n: int, buckets: str | Sequence[int] | None, max_tile: int) -> int:
    """The padded batch size used to run ``n`` rows (``n <= max_tile``)."""
    if buckets is None:
        return n
    if buckets == "pow2":
        return min(max(1, 1 << (n - 1).bit_length()), max_tile)
    for b in sorted(buckets):
        if b >= n:
            return b
    return n


class Program:
    """Compiled access to a graph on one device.

    Args:
      graph: the validated graph.
      tensors: stored tensors by name (numpy arrays, possibly mmap views).
      device: a ``jax.Device``, ``"cpu"``, ``"gpu"`` or ``None`` (JAX's default).
      batch_buckets: ``"pow2"`` (default), a list of batch sizes, or ``None``
        to compile for every exact batch size.
      max_tile: batches above this many rows run in tiles of ``max_tile``.
      options: lowering options passed to rules (see :func:`lowering_options`),
        e.g. ``{"tree_strategy": "auto"}``; part of the executable cache key.
        ``"precision": "float64"`` runs the whole program in float64 (see
        :attr:`float64`). ``"persistent_cache": False`` keeps this program's executables out of
        JAX's persistent compilation cache (no read, no write): they hold model
        values as constants (used for encrypted models).
    """

    def __init__(
        self,
        graph: Graph,
        tensors: Mapping[str, np.ndarray],
        device: Any = None,
        batch_buckets: str | Sequence[int] | None = "pow2",
        max_tile: int = DEFAULT_MAX_TILE,
        options: Mapping[str, Any] | None = None,
        sequence: SequenceSpec | None = None,
    ) -> None:
        specs = getattr(tensors, "specs", tensors)  # a TensorMap's shapes and dtypes: no tensor bytes read at load
        check_graph(graph, specs)
        self.options = dict(options or {})
        self.graph = graph
        self.device = resolve_device(device)
        self.batch_buckets = batch_buckets
        #: the variable-length input axes and how they are bucketed (``lowering/seq_buckets.py``)
        self.sequence = sequence
        self.max_tile = max_tile if batch_buckets is not None else 1 << 62
        self._tensors = tensors
        self._host: dict[str, np.ndarray] | None = None
        self._host_lock = threading.Lock()
        self._params: dict[str, jax.Array] | None = None
        self._compiled: dict[tuple, Callable] = {}
        self._fast: dict[tuple, tuple] = {}
        self._lock = threading.Lock()
        #: seconds spent in lowering + XLA compilation, per cache key
        self.compile_seconds: dict[tuple, float] = {}
        #: decisions rules recorded while lowering (e.g. the tree strategy per node and batch)
        self.choices: dict[str, Any] = {}
        self._rule_cache: dict[Any, Any] = {}
        self._options_key = tuple(sorted((k, repr(v)) for k, v in self.options.items()))
        precision = self.options.get("precision", "float32")
        if precision not in ("float32", "float64"):
            raise ValueError(f"unknown precision {precision!r}; choose float32 or float64")
        #: whether the program runs in float64: float inputs and stored tensors widened, traced, compiled and
        #: run inside ``jax.enable_x64(True)`` (scoped: JAX's global setting is left as it is)
        self.float64 = precision == "float64"
        self._digest: str | None = None
        self._row_budget = row_budget(graph, specs)
        self._value_shapes: dict[str, tuple] | None = None
        self._n_classes: int | None = None
        self._shapes_lock = threading.Lock()

    @property
    def _host_tensors(self) -> dict[str, np.ndarray]:
        """The stored tensors the graph reads, plus the rules' prepared ones (:func:`_prepared`), on first use.

        Reading a :class:`~mlejax.format.container.TensorMap` verifies the
        tensor data first, so nothing is traced, compiled or run on bytes that
        have not been checked.
        """
        if self._host is None:
            with self._host_lock:
                if self._host is None:
                    host = {k: self._tensors[k] for k in _referenced(self.graph, self._tensors)}
                    host.update({k: _aligned(v) for k, v in _prepared(self.graph, host).items()})
                    self._host = _widened(host) if self.float64 else host
        return self._host

    def check_shapes(self) -> dict[str, tuple]:
        """The one-row shape of every value the outputs depend on, traced once (before the first compile).

        A node that cannot run on its inputs' shapes, whose output would hold
        more than this model's per-row bound, or a ``label`` output past the
        class labels (:meth:`check_classes`), raises :class:`MLEFormatError`
        naming it. ``load_model(check_shapes=True)`` runs it at load.
        """
        if self._value_shapes is None:
            with self._shapes_lock:
                if self._value_shapes is None:
                    shapes = self._cached_shapes()
                    if shapes is None:
                        shapes = self._abstract_shapes(self._row_budget)
                        self._store_shapes(shapes)
                    self._check_label_range(shapes)
                    self._value_shapes = shapes
        return self._value_shapes

    def _shapes_entry(self) -> str | None:
        """Name of the persistent cache entry holding this program's checked shapes (``None``: not cached).

        Keyed by the content digest (graph and tensor bytes), the options,
        the row bound, the platform and the JAX version: the same content
        traces to the same shapes, so a new process skips the trace.
        """
        if not self.options.get("persistent_cache", True):
            return None
        key = repr((self._content_digest(), self._options_key, self._row_budget, self.device.platform, jax.__version__))
        return f"mlejax-shapes-{hashlib.sha256(key.encode()).hexdigest()[:40]}-cache"

    def _cached_shapes(self) -> dict[str, tuple] | None:
        """The shapes :meth:`_store_shapes` recorded for this content, or ``None``."""
        name = self._shapes_entry()
        data = read_entry(name) if name is not None else None
        if data is None:
            return None
        try:
            shapes = json.loads(data)
            if not (isinstance(shapes, dict) and all(isinstance(v, list) and all(type(d) is int for d in v) for v in shapes.values())):
                return None
        except ValueError:
            return None
        return {k: tuple(v) for k, v in shapes.items()}

    def _store_shapes(self, shapes: Mapping[str, tuple]) -> None:
        name = self._shapes_entry()
        if name is not None:
            write_entry(name, json.dumps({k: list(v) for k, v in shapes.items()}).encode())

    def _abstract_shapes(self, budget: int) -> dict[str, tuple]:
        """Trace every output for one row without computing it (``jax.eval_shape``); see :meth:`check_shapes`."""
        shapes: dict[str, tuple] = {v.name: _one_row(v.shape) for v in self.graph.inputs}
        options = {**self.options, "platform": self.device.platform, "host": self._host_tensors,
                   "cache": self._rule_cache, "choices": {}, "shapes": shapes, "row_budget": budget}
        outputs = list(self.graph.outputs)
        inputs = [jax.ShapeDtypeStruct(_one_row(v.shape), np.dtype(v.dtype)) for v in self.graph.inputs]
        params = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in self._host_tensors.items()}
        if self.float64:
            inputs = [jax.ShapeDtypeStruct(i.shape, _wide_dtype(i.dtype)) for i in inputs]
        with self.scope():
            jax.eval_shape(lambda p, *xs: evaluate(self.graph, p, xs, outputs, {**options, "params": p}), params, *inputs)
        return shapes

    def check_classes(self, n_classes: int) -> None:
        """Refuse (with the shape check) a ``label`` output that can take a class index past ``n_classes`` labels."""
        self._n_classes = n_classes
        if self._value_shapes is not None:
            self._check_label_range(self._value_shapes)

    def _check_label_range(self, shapes: Mapping[str, tuple]) -> None:
        if self._n_classes is None:
            return
        n_classes = self._n_classes
        n = label_range(self.graph, shapes)
        if n is not None and n > n_classes:
            raise MLEFormatError(
                f"metadata.classes: {n_classes} class labels, but graph output 'label' takes {n} values"
            )

    @property
    def params(self) -> dict[str, jax.Array]:
        """The stored tensors on this program's device (transferred on first use)."""
        if self._params is None:
            with self.scope():
                self._params = {k: jax.device_put(np.asarray(v), self.device) for k, v in self._host_tensors.items()}
        return self._params

    def scope(self) -> Any:
        """The context this program is traced, compiled and run in: ``jax.enable_x64(True)`` for float64, else none."""
        return jax.enable_x64(True) if self.float64 else contextlib.nullcontext()

    def function(self, outputs: Sequence[str]) -> Callable:
        """A pure function ``f(params, *inputs) -> list of outputs``."""
        self.check_shapes()
        graph = self.graph
        outputs = list(outputs)
        options = {
            **self.options,
            "platform": self.device.platform,
            "host": self._host_tensors,
            "cache": self._rule_cache,
            "choices": self.choices,
        }

        def f(params, *inputs):
            return evaluate(graph, params, inputs, outputs, {**options, "params": params})

        return f

    def compiled(self, outputs: Sequence[str], shapes: Sequence[tuple], dtypes: Sequence[Any]) -> Callable:
        """The XLA executable for these outputs and exact input shapes (cached)."""
        key = (tuple(outputs), tuple(map(tuple, shapes)), tuple(np.dtype(d).name for d in dtypes), str(self.device),
               self._options_key)
        exe = self._compiled.get(key)
        if exe is None:
            with self._lock:
                exe = self._compiled.get(key)
                if exe is None:
                    enable_persistent_cache()
                    start = time.perf_counter()
                    specs = [jax.ShapeDtypeStruct(s, d) for s, d in zip(shapes, dtypes)]
                    param_specs = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in self.params.items()}
                    fn = self.function(outputs)
                    fn.__name__ = self._program_name(key)
                    with self.scope():
                        lowered = jax.jit(fn).lower(param_specs, *specs)
                        exe = compile_lowered(lowered, fn.__name__, persistent=self.options.get("persistent_cache", True),
                                              **self._compile_kwargs(shapes))
                    self.compile_seconds[key] = time.perf_counter() - start
                    self._compiled[key] = exe
        return exe

    def _program_name(self, key: tuple) -> str:
        """``mlejax_<digest>``: a digest of the graph, the stored tensors' bytes and the executable cache ``key``.

        The name is the compiled module's name, part of JAX's persistent cache
        key, and checked on what the cache returns: an entry of another model,
        output or shape is never taken for this one.
        """
        return "mlejax_" + hashlib.sha256(f"{self._content_digest()}{key!r}".encode()).hexdigest()[:40]

    def _content_digest(self) -> str:
        """sha256 of the graph and the bytes of the stored and prepared tensors it reads (computed once)."""
        if self._digest is None:
            h = hashlib.sha256(repr(self.graph.to_dict()).encode())
            for name in _referenced(self.graph, self._host_tensors):
                value = np.ascontiguousarray(self._host_tensors[name])
                h.update(repr((name, value.dtype.str, value.shape)).encode())
                h.update(memoryview(value.reshape(-1).view(np.uint8)))
            self._digest = h.hexdigest()
        return self._digest

    def _compile_kwargs(self, shapes: Sequence[tuple]) -> dict:
        """Extra ``Lowered.compile`` arguments: small CPU batches compile without parallel task assignment."""
        rows = max((s[0] for s in shapes if len(s)), default=0)
        if self.device.platform == "cpu" and rows <= SERIAL_MAX_ROWS:
            return {"compiler_options": dict(_SERIAL_OPTIONS)}
        return {}

    def run(self, outputs: Sequence[str], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run on host arrays sharing a batch dimension; pads to buckets, splits big batches (:func:`pieces`).

        Variable-length axes are padded to their buckets and the outputs cut back (``lowering/seq_buckets.py``).
        """
        if self.sequence is None:
            return self._run_rows(outputs, inputs)
        names = [v.name for v in self.graph.inputs]
        padded, lengths = pad_lengths(self.sequence, names, inputs, bucket=self.batch_buckets is not None)
        return cut_outputs(self.sequence, outputs, self._run_rows(outputs, padded), lengths)

    def _run_rows(self, outputs: Sequence[str], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`run` on inputs whose variable-length axes are already padded."""
        n = inputs[0].shape[0]
        if n == 0:
            raise ValueError("empty batch")
        if self.float64:
            inputs = [np.asarray(a, _wide_dtype(a.dtype)) for a in inputs]
        if n <= _SPLIT_MIN_ROWS and n <= self.max_tile:
            return self._run_tile(outputs, inputs)
        parts = pieces(n, self.batch_buckets, self.max_tile)
        if len(parts) == 1:
            return self._run_tile(outputs, inputs)
        results: list[np.ndarray] = []
        for start, stop in parts:  # each piece's results go straight into one output buffer per output
            out = self._run_tile(outputs, [a[start:stop] for a in inputs])
            if not results:
                results = [np.empty((n, *o.shape[1:]), o.dtype) for o in out]
            for buffer, o in zip(results, out):
                buffer[start:stop] = o
        return results

    def _run_tile(self, outputs: Sequence[str], tile: Sequence[np.ndarray]) -> list[np.ndarray]:
        a = tile[0]
        # Fast path: one dict lookup per call for the (outputs, exact shapes, dtypes) seen before.
        key = (tuple(outputs), a.shape, a.dtype) if len(tile) == 1 else (tuple(outputs), *[(a.shape, a.dtype) for a in tile])
        entry = self._fast.get(key)
        if entry is None:
            entry = self._fast_entry(key, outputs, tile)
        padded, exe, params, on_cpu = entry
        n = a.shape[0]
        if padded != n:
            tile = [_pad_rows(a, padded) for a in tile]
        # The executable takes host arrays as they are on CPU (an explicit device_put costs ~40 us a call).
        if self.float64:
            with jax.enable_x64(True):
                out = exe(params, *(tile if on_cpu else [jax.device_put(a, self.device) for a in tile]))
        else:
            out = exe(params, *(tile if on_cpu else [jax.device_put(a, self.device) for a in tile]))
        if padded == n:
            return [np.asarray(o) for o in out]
        return [np.asarray(o)[:n] for o in out]

    def _fast_entry(self, key: tuple, outputs: Sequence[str], tile: Sequence[np.ndarray]) -> tuple:
        """(padded rows, executable, params, on CPU) for a call key not seen before; compiles if needed."""
        padded = bucket_for(tile[0].shape[0], self.batch_buckets, self.max_tile)
        shapes = [(padded, *a.shape[1:]) for a in tile]
        exe = self.compiled(outputs, shapes, [a.dtype for a in tile])
        if len(self._fast) >= _FAST_ENTRIES:
            self._fast.clear()
        entry = self._fast[key] = (padded, exe, self.params, self.device.platform == "cpu")
        return entry


#: Batches of at most this many rows run in one padded piece (see :func:`pieces`).
_SPLIT_MIN_ROWS = 4096


def pieces(n: int, buckets: str | Sequence[int] | None, max_tile: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` that a batch of ``n`` rows runs in, each padded to its bucket.

    Full tiles of ``max_tile`` rows, then the remainder. With ``"pow2"``
    buckets a remainder is split into powers of two while padding it to one
    bucket would waste more than a quarter of its rows (and it has more than
    :data:`_SPLIT_MIN_ROWS`): 100,000 rows run as 65,536 + 32,768 + 2,048
    (1,696 rows padded) instead of two padded 65,536-row tiles. Every piece's
    size is a bucket of a batch of at most ``n`` rows, so programs warmed for
    the buckets up to ``n`` cover it.
    """
    out: list[tuple[int, int]] = []
    start = 0
    while n - start > max_tile:
        out.append((start, start + max_tile))
        start += max_tile
    while start < n:
        rest = n - start
        padded = bucket_for(rest, buckets, max_tile)
        if buckets != "pow2" or rest <= _SPLIT_MIN_ROWS or (padded - rest) * 4 <= rest:
            out.append((start, n))
            break
        out.append((start, start + padded // 2))  # the largest power of two below ``rest``, unpadded
        start += padded // 2
    return out


def _one_row(shape: Sequence[int | None]) -> tuple[int, ...]:
    """A graph input's shape for one row; a variable-length axis traces at length 1."""
    return (1, *(1 if d is None else d for d in shape[1:]))


def _wide_dtype(dtype: Any) -> np.dtype:
    """float64 for a narrower float dtype (float16, bfloat16, float32), else ``dtype``."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float64) if dtype.kind == "f" and dtype.itemsize < 8 or dtype.name == "bfloat16" else dtype


def _widened(host: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``host`` with float tensors in float64 (copies of the narrower ones; others as they are)."""
    return {k: v if _wide_dtype(v.dtype) == v.dtype else np.asarray(v, np.float64) for k, v in host.items()}


def _aligned(a: np.ndarray) -> np.ndarray:
    """``a`` at a 64-byte aligned address (copied if it is not): JAX's CPU client then uses it in place.

    The stored tensors are 64-byte aligned in the file, so their device
    copies on CPU are the memory map itself; derived tables (``rule.prepare``)
    are made so too, instead of being held twice (host and device).
    """
    a = np.asarray(a)
    if a.ctypes.data % 64 == 0 or a.nbytes == 0:
        return a
    buffer = np.empty(a.nbytes + 64, np.uint8)
    start = -buffer.ctypes.data % 64
    out = buffer[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` with zero rows appended up to ``rows``."""
    out = np.empty((rows, *a.shape[1:]), a.dtype)
    out[: a.shape[0]] = a
    out[a.shape[0] :] = 0
    return out


def resolve_device(device: Any) -> jax.Device:
    """``None`` → JAX's default device; ``"cpu"``/``"gpu"`` → the first such device."""
    if device is None:
        return jax.devices()[0]
    if isinstance(device, str):
        try:
            return jax.devices(device)[0]
        except RuntimeError as exc:
            raise ValueError(f"no {device!r} device available to JAX ({exc}); present: {jax.devices()}") from None
    return device


def _prepared(graph: Graph, host: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Host-derived tensors of rules that declare ``rule.prepare(node, host) -> {suffix: array}``.

    They are stored as ``"<node name>/<suffix>"`` params, which rules read from
    ``lowering_options()["params"]`` (computed once per Program, not per call).
    """
    out: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        prepare = getattr(get_rule(node), "prepare", None)
        if prepare is not None:
            out.update({f"{node.name}/{k}": v for k, v in prepare(node, host).items()})
    return out


def _referenced(graph: Graph, tensors: Mapping[str, np.ndarray]) -> list[str]:
    names = {name for node in graph.nodes for name in node.inputs}
    return sorted(n for n in names if n in tensors)
