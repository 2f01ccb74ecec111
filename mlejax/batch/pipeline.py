"""``score()``: rows from a source, through the model on every device, into a sink.

Three threads, joined by bounded queues, so that host memory is bounded by
the queue depth and the device is never waiting for the host::

    reader:  source pieces -> batches of batch_rows rows -> input matrix (padded) -> queue
    main:    copy batch k+1 to the devices, start it, then wait for batch k and copy it back -> queue
    writer:  named output columns (+ kept columns) -> sink, progress bar

An error or Ctrl-C in any thread stops all three; the sink's temporary file
is deleted and the error is raised from :func:`score`.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from ..format.errors import InputError
from ..model import Model, load_model
from .columns import ScoringSpec
from .devices import ShardedRunner, pick_batch_rows, select_devices
from .report import STAGES, ScoreReport, peak_rss_bytes
from .sinks import Sink, open_sink
from .sources import NumpyBlock, Source, keep_table, open_source

__all__ = ["score"]

#: Prepared batches waiting for the device, and results waiting for the writer.
QUEUE_DEPTH = 2
_END = object()


def score(
    model: Model | str | os.PathLike,
    source: Any,
    sink: str | os.PathLike | None = None,
    *,
    method: str | None = None,
    columns: Sequence[str] | None = None,
    keep: Sequence[str] = (),
    batch_rows: int | None = None,
    device: Any = None,
    progress: bool = True,
    overwrite: bool = False,
) -> ScoreReport:
    """Score every row of ``source`` with ``model`` and write the predictions to ``sink``, in input order.

    Args:
      model: a loaded :class:`~mlejax.Model` or the path of a ``.mle`` file.
      source: a Parquet file, directory or glob; a ``.csv``, ``.arrow``/``.feather``
        or ``.npy`` file (memory-mapped); a pandas or polars DataFrame; a
        ``pyarrow.Table``; a NumPy array; or an iterator of record batches.
      sink: a ``.parquet``, ``.csv``, ``.arrow``/``.feather`` or ``.npy`` path,
        or ``None`` to return the predictions as ``report.output`` (a ``pyarrow.Table``).
      method: ``predict_proba`` (default where the model has it, else ``predict``),
        ``predict``, ``decision_function``, ``transform``, ...
      columns: the input columns, in the model's order. Default: the model's
        ``feature_names_in_``, else every numeric column in source order but ``keep``.
      keep: columns copied unchanged to the output (row keys, to join on).
      batch_rows: rows per batch for all devices together; default: picked
        from the device memory (see :func:`~mlejax.batch.devices.pick_batch_rows`).
      device: ``None`` (every device of the model's platform), ``"cpu"``,
        ``"gpu"``, a ``jax.Device`` or a list of devices.
      progress: a progress bar on stderr (shown only on a terminal).
      overwrite: replace an existing output file.

    Output columns are named as :mod:`mlejax.batch.columns` describes. Missing
    columns and an existing output raise before any row is read; a bad value
    raises :class:`~mlejax.InputError` naming the column, the file and the row
    group. The output appears at ``sink`` only when every row was written.
    """
    start = time.perf_counter()
    src = open_source(source)
    if isinstance(model, Model):
        devices = select_devices(device, model.device.platform)
    else:
        devices = select_devices(device)
        model = load_model(model, device=devices[0])
    spec = ScoringSpec.resolve(model, src.schema.names, method=method, columns=columns, keep=keep,
                               numeric=src.numeric, positional=src.positional)
    if batch_rows is not None and batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    schema = _output_schema(spec, src.schema)
    runner = ShardedRunner(model, spec.output, devices)
    rows_per_batch = batch_rows or pick_batch_rows(model, spec.dtype.itemsize * len(spec.inputs) + 8 * len(spec.output_names), devices)
    bar = _progress_bar(progress, src.num_rows)
    try:
        run = _Run(spec, src, runner, open_sink(sink, schema, overwrite=overwrite), rows_per_batch, bar)
        result = run.go()
    finally:
        bar.close()
    return ScoreReport(
        rows=run.rows, seconds=time.perf_counter() - start, stages={k: run.stages[k] for k in STAGES},
        peak_rss_bytes=peak_rss_bytes(), devices=[str(d) for d in devices], method=spec.method, columns=list(spec.inputs),
        output_columns=list(spec.output_names), batch_rows=rows_per_batch, batches=run.batches, output=result,
    )


@dataclasses.dataclass
class _Batch:
    rows: int
    inputs: list[np.ndarray]  # every graph input, padded to the runner's size
    keep: pa.Table | None


class _Run:
    """One pass of the three-thread pipeline (see the module docstring)."""

    def __init__(self, spec: ScoringSpec, src: Source, runner: ShardedRunner, sink: Sink, batch_rows: int, bar: Any) -> None:
        self.spec, self.src, self.runner, self.sink, self.batch_rows, self.bar = spec, src, runner, sink, batch_rows, bar
        self.stages = dict.fromkeys(STAGES, 0.0)
        self.rows = self.batches = self.batches_read = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.to_device: queue.Queue = queue.Queue(QUEUE_DEPTH)
        self.to_writer: queue.Queue = queue.Queue(QUEUE_DEPTH)

    def go(self) -> Any:
        threads = [threading.Thread(target=self._guard(self._read), name="mlejax-score-reader", daemon=True),
                   threading.Thread(target=self._guard(self._write), name="mlejax-score-writer", daemon=True)]
        for t in threads:
            t.start()
        try:
            self._guard(self._device_loop)()
        finally:
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
        start = time.perf_counter()
        try:
            if self.error is not None:
                raise self.error
            result = self.sink.close()
        except BaseException:
            self.sink.abort()
            raise
        self.stages["write"] += time.perf_counter() - start
        return result

    # --- plumbing ----------------------------------------------------------------------
    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # Ctrl-C included: every thread stops, score() re-raises
                if self.error is None:
                    self.error = exc
                self.stop.set()
        return run

    def _put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def _get(self, q: queue.Queue) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                pass
        return _END

    # --- the three stages ----------------------------------------------------------------
    def _read(self) -> None:
        batches = self._batches()
        while True:
            start = time.perf_counter()
            batch = next(batches, _END)
            self.stages["read"] += time.perf_counter() - start
            if not self._put(self.to_device, batch) or batch is _END:
                return

    def _batches(self):
        """Batches of exactly ``batch_rows`` rows (the last one shorter), from pieces of any size."""
        columns = list(dict.fromkeys(self.spec.inputs + self.spec.keep))
        pending: list[tuple[Any, str]] = []
        buffered = 0
        for piece, where in self.src.pieces(columns, self.batch_rows):
            offset = 0
            while offset < piece.num_rows:
                take = min(piece.num_rows - offset, self.batch_rows - buffered)
                pending.append((piece.slice(offset, take), where))
                buffered += take
                offset += take
                if buffered == self.batch_rows:
                    yield self._prepare(pending, buffered)
                    pending, buffered = [], 0
        if buffered:
            # After a full batch, the last one runs in the full batch's (compiled) shape: computing a few
            # padding rows costs less than compiling another shape for a large model.
            yield self._prepare(pending, buffered, self.batch_rows if self.batches_read else buffered)

    def _prepare(self, pieces: list[tuple[Any, str]], rows: int, shape_rows: int | None = None) -> _Batch:
        spec = self.spec
        self.batches_read += 1
        X = np.empty((self.runner.padded(shape_rows or rows), len(spec.inputs)), spec.dtype)
        X[rows:] = 0
        offset = 0
        for piece, where in pieces:
            n = piece.num_rows
            try:
                if isinstance(piece, NumpyBlock) and piece.names == list(spec.inputs):
                    X[offset : offset + n] = piece.array
                else:
                    spec.matrix(piece, n, out=X[offset : offset + n])
            except (InputError, ValueError, TypeError) as exc:
                raise InputError(f"{where}: {exc}") from None
            offset += n
        inputs = spec.model_inputs(X)
        return _Batch(rows, inputs, keep_table([p for p, _ in pieces], spec.keep) if spec.keep else None)

    def _device_loop(self) -> None:
        """Copy batch k+1 to the devices and start it before waiting for batch k (async on accelerators)."""
        previous = None
        while True:
            batch = self._get(self.to_device)
            if batch is _END:
                break
            start = time.perf_counter()
            arrays = self.runner.put(batch.inputs)
            started = time.perf_counter()
            result = self.runner.dispatch(arrays)
            self.stages["host_to_device"] += started - start
            self.stages["compute"] += time.perf_counter() - started
            if previous is not None:
                self._collect(*previous)
            previous = (batch, result)
        if previous is not None and not self.stop.is_set():
            self._collect(*previous)
        self._put(self.to_writer, _END)

    def _collect(self, batch: _Batch, result: Any) -> None:
        start = time.perf_counter()
        result.block_until_ready()
        ready = time.perf_counter()
        values = self.spec.to_host(np.asarray(result)[: batch.rows])
        self.stages["compute"] += ready - start
        self.stages["device_to_host"] += time.perf_counter() - ready
        self._put(self.to_writer, (batch, values))

    def _write(self) -> None:
        while True:
            item = self._get(self.to_writer)
            if item is _END:
                return
            batch, values = item
            start = time.perf_counter()
            self.sink.write(_table(self.sink.schema, batch.keep, self.spec.outputs(values)))
            self.stages["write"] += time.perf_counter() - start
            self.rows += batch.rows
            self.batches += 1
            self.bar.update(batch.rows)


def _table(schema: pa.Schema, keep: pa.Table | None, outputs: dict[str, np.ndarray]) -> pa.Table:
    arrays = list(keep.columns) if keep is not None else []
    arrays += [pa.array(values, type=schema.field(name).type) for name, values in outputs.items()]
    return pa.Table.from_arrays(arrays, schema=schema)


def _output_schema(spec: ScoringSpec, source: pa.Schema) -> pa.Schema:
    """Kept columns (their source types), then the outputs."""
    dtype = spec.output_dtype
    out_type = pa.string() if dtype.kind in "OU" else pa.from_numpy_dtype(dtype)
    return pa.schema([source.field(k) for k in spec.keep] + [pa.field(n, out_type) for n in spec.output_names])


def _progress_bar(progress: bool, total: int | None) -> Any:
    """A tqdm bar on stderr with rows/s and ETA; off when ``progress`` is false or stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, unit="rows", unit_scale=True, desc="mle-score", disable=None if progress else True, smoothing=0.1)
