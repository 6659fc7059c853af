"""Server-side batching: concurrent requests for one signature run as one model call.

One batch is *open* at a time.  A request joins it when its inputs can be stacked with the
batch's (same input names, dtypes and shapes after the first dimension) and the batch stays within
``max_batch_size`` rows; otherwise the open batch is closed and a new one opened.  A worker thread
takes the oldest closed batch, or the open one once it is full or ``batch_timeout_s`` has passed
since its first request arrived: with a timeout of 0 a batch holds whatever arrived while the
workers were busy.  ``max_batch_size=1`` turns batching off (every request runs alone, up to
``num_threads`` at once).

Waiting requests are bounded (``max_enqueued``): beyond it :meth:`Batcher.submit` raises
:class:`QueueFullError` at once instead of queueing without limit.

When a merged batch fails, its requests are run again one by one, so a bad request (say bytes that
are not an image) gets its own error and the good ones in the same batch still get their results.
"""
import collections
import concurrent.futures
import logging
import threading
import time
from typing import Callable, Dict, List, Optional

import numpy as np

log = logging.getLogger("fastnn.serving")


class QueueFullError(Exception):
    """More requests are waiting than the batcher may hold."""


class BatcherClosedError(Exception):
    """The batcher is shutting down and takes no new requests."""


class _Task:
    __slots__ = ("inputs", "rows", "future", "key", "enqueued")

    def __init__(self, inputs, rows):
        self.inputs = inputs
        self.rows = rows
        self.future = concurrent.futures.Future()
        self.enqueued = time.monotonic()
        # Requests without a common batch dimension never merge: a unique key.
        if rows is None:
            self.key = object()
        else:
            self.key = tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in inputs.items()))


class _Batch:
    __slots__ = ("tasks", "rows", "key", "deadline")

    def __init__(self, task, timeout_s):
        self.tasks = [task]
        self.rows = task.rows or 0
        self.key = task.key
        self.deadline = task.enqueued + timeout_s


class Batcher:
    """Merges requests for one model function into batches run by worker threads.

    Args:
      run_fn: ``fn(inputs: dict of arrays) -> dict of arrays``; every output's first dimension
        must be the batch size for results to be split back per request.
      max_batch_size: most rows in one call; 1 disables merging.
      batch_timeout_s: how long the first request of a batch waits for others.
      max_enqueued: most requests waiting (not yet running) before submit refuses.
      num_threads: model calls that may run at once.
      name: for thread names and logs.
    """

    def __init__(self, run_fn: Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]],
                 max_batch_size=32, batch_timeout_s=0.0, max_enqueued=1024, num_threads=2,
                 name="batcher"):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1, got %d" % max_batch_size)
        if batch_timeout_s < 0:
            raise ValueError("batch_timeout_s must be >= 0, got %r" % batch_timeout_s)
        if max_enqueued < 1:
            raise ValueError("max_enqueued must be at least 1, got %d" % max_enqueued)
        if num_threads < 1:
            raise ValueError("num_threads must be at least 1, got %d" % num_threads)
        self._run_fn = run_fn
        self.max_batch_size = max_batch_size
        self.batch_timeout_s = batch_timeout_s
        self.max_enqueued = max_enqueued
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._open: Optional[_Batch] = None
        self._closed_batches = collections.deque()
        self._waiting = 0
        self._closing = False
        # Counters read by the metrics endpoint and by tests (merging is observable).
        self.batches_run = 0
        self.tasks_run = 0
        self.rows_run = 0
        self._threads = [threading.Thread(target=self._work, name="%s-%d" % (name, i),
                                          daemon=True) for i in range(num_threads)]
        for thread in self._threads:
            thread.start()

    @property
    def waiting(self):
        """Requests queued and not yet running."""
        return self._waiting

    def submit(self, inputs: Dict[str, np.ndarray], rows: Optional[int]):
        """Queues one request; returns a ``concurrent.futures.Future`` of its outputs.

        Args:
          inputs: arrays by input name.
          rows: the request's batch size (shared first dimension), or None when it has none; such
            requests run alone.

        Raises:
          QueueFullError: ``max_enqueued`` requests are already waiting.
          BatcherClosedError: the batcher is shutting down.
        """
        task = _Task(inputs, rows)
        with self._cond:
            if self._closing:
                raise BatcherClosedError("the server is shutting down")
            if self._waiting >= self.max_enqueued:
                raise QueueFullError("%d requests are already waiting for the model (the limit "
                                     "is %d); retry later" % (self._waiting, self.max_enqueued))
            self._waiting += 1
            batch = self._open
            if (batch is not None and task.rows is not None and batch.key == task.key
                    and batch.rows + task.rows <= self.max_batch_size):
                batch.tasks.append(task)
                batch.rows += task.rows
            else:
                if batch is not None:
                    self._closed_batches.append(batch)
                self._open = batch = _Batch(task, self.batch_timeout_s)
            if task.rows is None or batch.rows >= self.max_batch_size:
                self._closed_batches.append(batch)
                self._open = None
            self._cond.notify()
        return task.future

    def close(self, timeout=None):
        """Stops taking requests, runs every queued one, then stops the workers."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    # -- workers -------------------------------------------------------------------------------

    def _next_batch(self):
        with self._cond:
            while True:
                if self._closed_batches:
                    batch = self._closed_batches.popleft()
                    break
                if self._open is not None:
                    remaining = self._open.deadline - time.monotonic()
                    if remaining <= 0 or self._closing:
                        batch, self._open = self._open, None
                        break
                    self._cond.wait(remaining)
                    continue
                if self._closing:
                    return None
                self._cond.wait()
            self._waiting -= len(batch.tasks)
            return batch

    def _work(self):
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch.tasks)

    def _run(self, tasks: List[_Task]):
        live = [t for t in tasks if t.future.set_running_or_notify_cancel()]
        if not live:
            return
        if len(live) == 1:
            self._run_alone(live[0])
            return
        try:
            merged = {k: np.concatenate([t.inputs[k] for t in live]) for k in live[0].inputs}
            outputs = self._run_fn(merged)
            total = sum(t.rows for t in live)
            for key, value in outputs.items():
                if np.ndim(value) == 0 or np.shape(value)[0] != total:
                    raise ValueError("output %r is not batched (shape %s for %d rows)"
                                     % (key, np.shape(value), total))
        except Exception as e:  # noqa: BLE001  each request gets its own outcome below
            log.debug("batch of %d failed (%s); running its requests one by one", len(live), e)
            for task in live:
                self._run_alone(task)
            return
        self._count(len(live), total)
        offset = 0
        for task in live:
            task.future.set_result({k: v[offset:offset + task.rows] for k, v in outputs.items()})
            offset += task.rows

    def _run_alone(self, task):
        try:
            outputs = self._run_fn(task.inputs)
        except BaseException as e:  # noqa: BLE001  handed to the waiting request
            task.future.set_exception(e)
            return
        finally:
            self._count(1, task.rows or 0)
        task.future.set_result(outputs)

    def _count(self, tasks, rows):
        with self._lock:
            self.batches_run += 1
            self.tasks_run += tasks
            self.rows_run += rows
