"""Dynamic batching: concurrent requests for one model method merged into one call.

One :class:`Batcher` per (model version, method). Requests wait in a bounded
queue; one worker task takes what is queued, up to ``max_batch_rows`` rows,
waits at most ``max_delay_ms`` for more when the batch is not full, runs the
merged batch once in a thread (the event loop keeps serving), and hands each
caller its own rows. A full queue refuses new requests (:class:`QueueFull`)
instead of growing. While one batch runs, the next one gathers, so under load
batches form even with ``max_delay_ms=0`` (the default of :func:`~mlejax.serve.create_app`),
which adds no latency when requests are few.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from typing import Callable, Sequence

import numpy as np

__all__ = ["Batcher", "QueueFull"]


class QueueFull(Exception):
    """The batcher's queue holds ``max_queue`` requests; retry later."""


class _Item:
    __slots__ = ("arrays", "rows", "future")

    def __init__(self, arrays: Sequence[np.ndarray], future: asyncio.Future) -> None:
        self.arrays = arrays
        self.rows = int(arrays[0].shape[0])
        self.future = future


class Batcher:
    """Merge concurrent calls of ``fn(*arrays) -> array`` (arrays sharing the row dimension) into batches.

    Args:
      fn: the model method; it sees at most ``max_batch_rows`` rows per call.
      executor: the threads that run ``fn``.
      max_batch_rows: rows per merged call (a request carries at most this many).
      max_delay_ms: how long a batch that is not full waits for more requests.
      max_queue: requests that may wait; past it :meth:`submit` raises :class:`QueueFull`.
      on_batch: called with the rows of each batch run (for metrics).
      on_depth: called with the queue depth whenever it changes (for metrics).
    """

    def __init__(
        self,
        fn: Callable[..., np.ndarray],
        executor: concurrent.futures.Executor,
        *,
        max_batch_rows: int,
        max_delay_ms: float,
        max_queue: int,
        on_batch: Callable[[int], None] = lambda rows: None,
        on_depth: Callable[[int], None] = lambda depth: None,
    ) -> None:
        self.fn = fn
        self.executor = executor
        self.max_batch_rows = max_batch_rows
        self.max_delay_s = max_delay_ms / 1e3
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.on_depth = on_depth
        self._items: collections.deque[_Item] = collections.deque()
        self._waiter: asyncio.Future | None = None  # the worker sleeps on it; submit and close wake it
        self._task: asyncio.Task | None = None
        self._closed = False

    @property
    def depth(self) -> int:
        """Requests waiting (not yet in a running batch)."""
        return len(self._items)

    def submit(self, *arrays: np.ndarray) -> asyncio.Future:
        """Queue one request (at most ``max_batch_rows`` rows); the future gets its rows of the result.

        Called from the event loop; queuing happens now, so a request is never
        queued on a batcher closed after this call returned.
        """
        if self._closed:
            raise RuntimeError("batcher is closed")
        if len(self._items) >= self.max_queue:
            raise QueueFull(f"{len(self._items)} requests are queued (the server's --max-queue)")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._run())
        item = _Item(arrays, loop.create_future())
        self._items.append(item)
        self.on_depth(len(self._items))
        self._wake()
        return item.future

    async def close(self) -> None:
        """Stop taking requests; return once every queued request has been answered."""
        self._closed = True
        if self._task is not None:
            self._wake()
            await self._task

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep(self, loop: asyncio.AbstractEventLoop, seconds: float | None) -> None:
        """Until :meth:`_wake` (or ``seconds`` pass)."""
        self._waiter = loop.create_future()
        timer = None if seconds is None else loop.call_later(seconds, self._wake)
        await self._waiter
        if timer is not None:
            timer.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._items:
                if self._closed:
                    return
                await self._sleep(loop, None)
                continue
            batch = await self._gather(loop)
            if batch:
                await self._execute(loop, batch)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> list[_Item]:
        """Take queued items up to ``max_batch_rows`` rows, waiting up to ``max_delay_ms`` to fill the batch."""
        batch: list[_Item] = []
        rows = 0
        deadline = loop.time() + self.max_delay_s
        while rows < self.max_batch_rows:
            if not self._items:
                remaining = deadline - loop.time()
                if remaining <= 0 or self._closed:
                    break
                await self._sleep(loop, remaining)
                continue
            if batch and rows + self._items[0].rows > self.max_batch_rows:
                break
            item = self._items.popleft()
            if not item.future.done():  # a caller that went away is skipped
                batch.append(item)
                rows += item.rows
        self.on_depth(len(self._items))
        return batch

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        self.on_batch(sum(item.rows for item in batch))
        try:
            result = await loop.run_in_executor(self.executor, _call, self.fn, [item.arrays for item in batch])
        except Exception as exc:  # every caller of the batch gets the error
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        start = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result(result[start : start + item.rows])
            start += item.rows


def _call(fn: Callable[..., np.ndarray], parts: list[Sequence[np.ndarray]]) -> np.ndarray:
    """``fn`` on the row-wise concatenation of each input over the requests of a batch."""
    if len(parts) == 1:
        return np.asarray(fn(*parts[0]))
    return np.asarray(fn(*(np.concatenate(column) for column in zip(*parts))))
