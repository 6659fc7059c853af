"""Server-side batching: concurrent requests for one signature run as one model call.

As in TF Serving, one pool of ``num_batch_threads`` threads (:class:`BatchScheduler`) serves every
queue (one :class:`BatchQueue` per model version and signature), taking the queues in turn.  A
queue's requests are merged when their inputs can be stacked (same names, dtypes and shapes after
the first dimension).  A queue has a batch ready when it holds ``max_batch_size`` examples or its
oldest request has waited ``batch_timeout_micros``; with a timeout of 0 a batch holds whatever
arrived while the threads were busy, so no request waits for company on an idle server.

Three choices make merged batches pay on a CPU (see docs/serving.md, "Batching"):

* **Few distinct batch sizes.**  Every new batch size makes TensorFlow's CPU kernels (oneDNN)
  build new primitives for every layer, and a stream of ever-different sizes keeps rebuilding
  them.  Batches are formed in the sizes of ``allowed_batch_sizes`` or, when none are given,
  powers of two: a queue of 13 single-example requests runs as 8, then 4, then 1.  A batch that
  cannot be filled exactly (requests of several examples) is padded up, with the first example
  repeated, as TF Serving pads.
* **Merge only when cheaper.**  Each queue times its runs per batch size; a larger batch is
  formed only while its measured cost per example is below that of the smaller sizes, otherwise
  the requests are left for the other threads, which run them concurrently.
* **Bounded queues.**  Beyond ``max_enqueued_batches`` batches waiting, requests are refused at
  once (UNAVAILABLE) instead of queueing without limit.

When a merged batch fails, its requests run again one by one, so a bad request gets its own
error and the good ones in the same batch still get their results.
"""
import collections
import concurrent.futures
import itertools
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from images.serving import metrics as m
from images.serving.errors import ServingError, invalid

log = logging.getLogger("fastnn.serving")

RunFn = Callable[[Dict[str, np.ndarray], Optional[int]], Dict[str, np.ndarray]]


def default_batch_sizes(max_batch_size: int) -> List[int]:
    """Powers of two below ``max_batch_size``, and ``max_batch_size`` itself."""
    sizes = list(itertools.takewhile(lambda s: s < max_batch_size,
                                     (2 ** i for i in itertools.count())))
    return sizes + [max_batch_size]


class _Task:
    __slots__ = ("inputs", "rows", "future", "key", "enqueued", "deadline", "parent", "index")

    def __init__(self, inputs, rows, deadline, parent=None, index=0):
        self.inputs = inputs
        self.rows = rows
        self.future = concurrent.futures.Future()
        self.enqueued = time.monotonic()
        self.deadline = deadline
        self.parent = parent
        self.index = index
        # Requests without a common batch dimension never merge: a unique key.
        if rows is None:
            self.key = object()
        else:
            self.key = tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in inputs.items()))


class _Split:
    """Collects the pieces of a request split across batches and joins their outputs."""

    def __init__(self, future, count):
        self.future = future
        self.parts = [None] * count
        self.left = count
        self.lock = threading.Lock()

    def done(self, index, outputs=None, error=None):
        with self.lock:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
                return
            self.parts[index] = outputs
            self.left -= 1
            if self.left:
                return
        self.future.set_result({k: np.concatenate([p[k] for p in self.parts])
                                for k in self.parts[0]})


class BatchQueue:
    """The requests waiting for one model signature.

    Args:
      scheduler: the :class:`BatchScheduler` whose threads run this queue's batches.
      run_fn: ``fn(inputs, timeout_ms) -> outputs``; every output's first dimension must be the
        batch size for results to be split back.
      name: for metrics and logs (``model-v1-signature``).
      max_batch_size: most examples in one request or batch (TF Serving's input batch limit).
      batch_timeout_s: how long the oldest request waits for a batch to fill.
      max_enqueued_batches: queue bound, in batches.
      allowed_batch_sizes: sizes batches are formed in (default: powers of two).
      enable_large_batch_splitting: split a request larger than ``max_execution_batch_size``.
      max_execution_batch_size: the largest batch run at once when splitting.
    """

    def __init__(self, scheduler: "BatchScheduler", run_fn: RunFn, name: str,
                 max_batch_size=1000, batch_timeout_s=0.0, max_enqueued_batches=10,
                 allowed_batch_sizes: Sequence[int] = (), enable_large_batch_splitting=False,
                 max_execution_batch_size: Optional[int] = None):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1, got %d" % max_batch_size)
        if batch_timeout_s < 0:
            raise ValueError("batch_timeout_s must be >= 0, got %r" % batch_timeout_s)
        if max_enqueued_batches < 1:
            raise ValueError("max_enqueued_batches must be at least 1, got %d"
                             % max_enqueued_batches)
        self.scheduler = scheduler
        self.run_fn = run_fn
        self.name = name
        self.max_batch_size = max_batch_size
        self.split = bool(enable_large_batch_splitting)
        self.execution_limit = (max_execution_batch_size or max_batch_size) if self.split \
            else max_batch_size
        self.sizes = sorted(allowed_batch_sizes) or default_batch_sizes(self.execution_limit)
        self.padding_allowed = bool(allowed_batch_sizes)
        self.batch_timeout_s = batch_timeout_s
        self.max_rows = max_enqueued_batches * self.execution_limit
        self.tasks = collections.deque()
        self.rows = 0
        self.closed = False
        self.running = 0
        # Seconds per run by batch size, smoothed: the "is merging cheaper" evidence.
        self.cost: Dict[int, float] = {}
        # Counters read by the benchmark and tests (merging is observable).
        self.batches_run = 0
        self.tasks_run = 0
        self.rows_run = 0
        scheduler.add(self)

    @property
    def waiting(self):
        """Requests queued and not yet running."""
        return len(self.tasks)

    def submit(self, inputs: Dict[str, np.ndarray], rows: Optional[int],
               deadline: Optional[float] = None) -> concurrent.futures.Future:
        """Queues one request; returns a ``concurrent.futures.Future`` of its outputs.

        Args:
          inputs: arrays by input name.
          rows: the request's batch size (shared first dimension), or None when it has none;
            such requests run alone.
          deadline: ``time.monotonic()`` after which the request is dropped unrun.

        Raises:
          ServingError: the request is larger than a batch (INVALID_ARGUMENT), the queue is full
            or the server is shutting down (UNAVAILABLE).
        """
        if rows is not None and rows > self.max_batch_size:
            raise invalid("Task size %d is larger than maximum input batch size %d; send at "
                          "most %d examples per request (or raise max_batch_size in "
                          "--batching_parameters_file)" % (rows, self.max_batch_size,
                                                            self.max_batch_size))
        if rows is not None and rows > self.execution_limit:
            parent = concurrent.futures.Future()
            parent.set_running_or_notify_cancel()
            starts = list(range(0, rows, self.execution_limit))
            split = _Split(parent, len(starts))
            tasks = [_Task({k: v[s:s + self.execution_limit] for k, v in inputs.items()},
                           min(self.execution_limit, rows - s), deadline, split, i)
                     for i, s in enumerate(starts)]
            self._enqueue(tasks)
            return parent
        task = _Task(inputs, rows, deadline)
        self._enqueue([task])
        return task.future

    def _enqueue(self, tasks):
        rows = sum(t.rows or 1 for t in tasks)
        with self.scheduler.cond:
            if self.closed or self.scheduler.closing:
                raise ServingError("UNAVAILABLE", "the server is shutting down; retry on "
                                                  "another server")
            if self.rows + rows > self.max_rows:
                raise ServingError("UNAVAILABLE", "The batch scheduling queue to which this task "
                                   "was submitted is full (%d examples waiting for %s); retry "
                                   "later" % (self.rows, self.name))
            self.tasks.extend(tasks)
            self.rows += rows
            self.scheduler.cond.notify()
        for t in tasks:
            self.scheduler.metrics.add(m.INPUT_BATCH_SIZE, t.rows or 1)

    # -- called by the scheduler's threads with the lock held ---------------------------------

    def ready_at(self, now) -> Optional[float]:
        """0 when a batch can run now; the time one will be ready; None when empty."""
        if not self.tasks:
            return None
        if self.closed or self.rows >= self.execution_limit or self.batch_timeout_s <= 0:
            return 0.0
        head = self.tasks[0]
        if head.rows is None:
            return 0.0
        ready = head.enqueued + self.batch_timeout_s
        return 0.0 if ready <= now else ready

    def _target_size(self, available):
        """The batch size to form from ``available`` queued examples (see module docstring)."""
        fits = [s for s in self.sizes if s <= available]
        if not fits:
            return self.sizes[0] if self.padding_allowed else available
        target = fits[-1]
        if target in self.cost:
            # Merge only as far as it pays: the measured size with the lowest cost per example.
            known = [s for s in fits if s in self.cost]
            best = min(known, key=lambda s: self.cost[s] / s)
            if self.cost[best] / best < self.cost[target] / target * 0.97:
                target = best
        return target

    def take(self):
        """Removes and returns the next batch's tasks and the size to run them at."""
        head = self.tasks.popleft()
        if head.rows is None:
            self.rows -= 1
            return [head], None
        available = head.rows + sum(t.rows for t in self.tasks if t.key == head.key)
        target = max(self._target_size(min(available, self.execution_limit)), head.rows)
        batch, rows, rest = [head], head.rows, collections.deque()
        while self.tasks:
            task = self.tasks.popleft()
            if task.key == head.key and rows + task.rows <= target:
                batch.append(task)
                rows += task.rows
            else:
                rest.append(task)
            if rows == target:
                break
        rest.extend(self.tasks)
        self.tasks = rest
        self.rows -= rows
        if rows < target and not self.padding_allowed:
            target = rows
        padded = min([s for s in self.sizes if s >= rows] or [rows]) \
            if self.padding_allowed else target
        return batch, max(padded, rows)

    # -- running ------------------------------------------------------------------------------

    def run(self, tasks: List[_Task], size: Optional[int]):
        """Runs one batch (on a scheduler thread, without the lock)."""
        now = time.monotonic()
        live = []
        for task in tasks:
            if task.deadline is not None and task.deadline <= now:
                self._fail(task, ServingError(
                    "DEADLINE_EXCEEDED", "the request waited longer than its deadline for the "
                    "model (%s); retry, or allow more time" % self.name))
            elif task.parent is not None or task.future.set_running_or_notify_cancel():
                live.append(task)
                self.scheduler.metrics.add(m.QUEUING_LATENCY, (now - task.enqueued) * 1e6,
                                           thread_pool_name=self.scheduler.name)
        if not live:
            return
        if len(live) == 1 and (size is None or size == live[0].rows):
            self._run_alone(live[0])
            return
        total = sum(t.rows for t in live)
        pad = size - total
        try:
            merged = {k: np.concatenate([t.inputs[k] for t in live]
                                        + ([np.repeat(live[0].inputs[k][:1], pad, axis=0)]
                                           if pad else []))
                      for k in live[0].inputs}
            outputs = self._timed(merged, size, self._timeout_ms(live))
            for key, value in outputs.items():
                if np.ndim(value) == 0 or np.shape(value)[0] != size:
                    raise ValueError("output %r is not batched (shape %s for %d rows)"
                                     % (key, np.shape(value), size))
        except Exception as e:  # noqa: BLE001  each request gets its own outcome below
            log.debug("batch of %d failed (%s); running its requests one by one", len(live), e)
            for task in live:
                self._run_alone(task)
            return
        if pad:
            self.scheduler.metrics.add(m.PADDING_SIZE, pad, execution_batch_size=size)
        self._count(len(live), total)
        offset = 0
        for task in live:
            self._succeed(task, {k: v[offset:offset + task.rows] for k, v in outputs.items()})
            offset += task.rows

    def _timeout_ms(self, tasks):
        deadlines = [t.deadline for t in tasks if t.deadline is not None]
        if len(deadlines) < len(tasks) or not deadlines:
            return None
        return max(1, int((max(deadlines) - time.monotonic()) * 1000))

    def _timed(self, inputs, size, timeout_ms):
        start = time.monotonic()
        outputs = self.run_fn(inputs, timeout_ms)
        elapsed = time.monotonic() - start
        if size is not None:
            with self.scheduler.cond:
                old = self.cost.get(size)
                self.cost[size] = elapsed if old is None else 0.7 * old + 0.3 * elapsed
        self.scheduler.metrics.add(m.PROCESSED_BATCH_SIZE, size or 1)
        self.scheduler.metrics.add(m.WRAPPED_RUN_COUNT)
        return outputs

    def _run_alone(self, task):
        try:
            outputs = self._timed(task.inputs, task.rows, self._timeout_ms([task]))
        except BaseException as e:  # noqa: BLE001  handed to the waiting request
            self._count(1, task.rows or 0)
            self._fail(task, e)
            return
        self._count(1, task.rows or 0)
        self._succeed(task, outputs)

    @staticmethod
    def _succeed(task, outputs):
        if task.parent is not None:
            task.parent.done(task.index, outputs=outputs)
        else:
            task.future.set_result(outputs)

    @staticmethod
    def _fail(task, error):
        if task.parent is not None:
            task.parent.done(task.index, error=error)
        elif not task.future.done():
            if task.future.running() or task.future.set_running_or_notify_cancel():
                task.future.set_exception(error)

    def _count(self, tasks, rows):
        with self.scheduler.cond:
            self.batches_run += 1
            self.tasks_run += tasks
            self.rows_run += rows

    def close(self, timeout=None):
        """Stops taking requests and waits until the queued ones have run."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.scheduler.cond:
            self.closed = True
            self.scheduler.cond.notify_all()
            while self.tasks or self.running:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self.scheduler.cond.wait(remaining)
            self.scheduler.remove(self)


class BatchScheduler:
    """The batch threads shared by every queue (TF Serving's ``num_batch_threads``).

    Args:
      num_threads: batches that run at once.
      metrics: the server's :class:`~images.serving.metrics.Metrics`.
      name: the thread pool's name (``thread_pool_name``).
    """

    def __init__(self, num_threads: int, metrics: m.Metrics,
                 name: str = "model_server_batch_threads"):
        if num_threads < 1:
            raise ValueError("num_batch_threads must be positive; was %d" % num_threads)
        self.name = name
        self.metrics = metrics
        self.cond = threading.Condition()
        self.queues: List[BatchQueue] = []
        self.closing = False
        self._next = 0
        self._threads = [threading.Thread(target=self._work, name="%s_%d" % (name, i),
                                          daemon=True) for i in range(num_threads)]
        for thread in self._threads:
            thread.start()

    def add(self, queue: BatchQueue):
        with self.cond:
            self.queues.append(queue)

    def remove(self, queue: BatchQueue):
        with self.cond:
            if queue in self.queues:
                self.queues.remove(queue)

    def _pick(self):
        """The next ready queue, round robin; or how long to wait for one."""
        now = time.monotonic()
        wait = None
        count = len(self.queues)
        for i in range(count):
            queue = self.queues[(self._next + i) % count]
            ready = queue.ready_at(now)
            if ready == 0.0:
                self._next = (self._next + i + 1) % count
                return queue, None
            if ready is not None:
                wait = ready - now if wait is None else min(wait, ready - now)
        return None, wait

    def _work(self):
        while True:
            with self.cond:
                while True:
                    queue, wait = self._pick()
                    if queue is not None:
                        break
                    if self.closing and wait is None:
                        return
                    self.cond.wait(wait)
                tasks, size = queue.take()
                queue.running += 1
            try:
                queue.run(tasks, size)
            except BaseException:  # noqa: BLE001  a thread must survive anything
                log.exception("batch of %s failed unexpectedly", queue.name)
            finally:
                with self.cond:
                    queue.running -= 1
                    self.cond.notify_all()

    def close(self, timeout=None):
        """Runs what is queued, then stops the threads."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
