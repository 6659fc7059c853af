"""Server-side batching: concurrent requests for one signature run as one model call.

As in TF Serving, one pool of ``num_batch_threads`` threads (:class:`BatchScheduler`) serves every
queue (one :class:`BatchQueue` per model version and signature), taking the queues in turn.  A
queue's requests are merged when their inputs can be stacked (same names, dtypes and shapes after
the first dimension).  A queue has a batch ready when it holds ``max_batch_size`` examples or its
oldest request has waited ``batch_timeout_micros``; with a timeout of 0 a batch holds whatever
arrived while the threads were busy, so no request waits for company on an idle server.

Four choices make merged batches pay on a CPU (see docs/serving.md, "Batching"):

* **Enough batches in flight.**  One model run does not keep a core busy from start to end (the
  in-graph image decoding loop, small ops, the Python work between runs), so with one batch thread
  per core the cores idle between batches while unbatched requests, eight at a time, keep them
  busy.  The default is two batch threads per core.
* **Batch sizes measured to pay.**  A larger batch is not always better on a CPU: for
  resnet_v1_50 here, one batch of 8 costs less per image than one of 4, but four batches of 8
  at once serve fewer images per second than four of 4 (they share the caches and the memory
  bandwidth).  Each queue forms batches in few sizes (``allowed_batch_sizes``, or powers of two)
  and moves its cap by trials that compare the throughput of neighbouring sizes
  (:class:`BatchSizer`).  A batch of multi-example requests that cannot be filled exactly is
  padded up to an allowed size (with the first example repeated, as TF Serving pads) only when
  ``allowed_batch_sizes`` are given.
* **No hand-off when a batch thread is free.**  The thread that queues a request runs the batch
  a free batch thread would take at once (:meth:`BatchQueue._run_here`), in one of the
  ``num_batch_threads`` places: two thread wake-ups fewer per request.
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


class _Window:
    """Batches formed at one size during a trial, and what they served."""
    __slots__ = ("size", "formed", "closed", "running", "examples", "started", "reached", "ok")

    def __init__(self, size, started):
        self.size = size
        self.formed = 0
        self.closed = False  # has all its batches; the next window takes the other size
        self.running = 0
        self.examples = 0
        self.started = started
        self.reached = False  # a batch of the full size was formed: the size mattered
        self.ok = True  # no batch failed (and ran again one request at a time)


class BatchSizer:
    """The batch size a queue forms: climbs its sizes while a larger one serves more examples/s.

    What is compared is the queue's throughput, not the cost of single batches: on a CPU a
    larger batch can be cheaper per example alone and still lower the throughput when several
    run at once, because they share the caches and the memory bandwidth (resnet_v1_50 here:
    batches of 8 are cheaper per image than batches of 4 one at a time, and slower four at a
    time).  So the cap moves by trials between two neighbouring sizes: windows of ``window``
    batches formed at one size alternate with windows at the other (so both see the same
    machine, whose load changes from second to second; a window lasts at least ``min_seconds``,
    so that one of a fast model spans many scheduler time slices), and each window's throughput
    is its
    examples divided by the time from its first batch's start to its last batch's end.  A
    window counts only if at least one of its batches reached its size (a queue too short for
    that says nothing about the sizes) and none failed.  Batches are still formed from what is
    waiting, so a window of the larger size also holds smaller batches: the comparison is of the
    two caps as they serve the load that comes.  After ``windows`` windows of each, the larger
    size becomes the cap if it served more examples per second by ``margin``; then the next size
    up is tried.  A trial whose larger size is not reached in ``4 * windows`` of its windows ends
    at the smaller size: the load does not fill the larger one.  Once the cap has settled, every
    ``retry_after`` batches the step up and the step down are tried again, in turn, so the cap
    follows a machine whose load changes.

    Args:
      sizes: the sizes batches are formed in, ascending.
      window: batches in one window, at least (about two per batch thread).
      min_seconds: the shortest window.
      windows: windows of each size in a trial.
      margin: how much more throughput the larger size must give to win.
      retry_after: batches between trials once the cap has settled.
      clock: the time source (tests pass their own).
    """

    def __init__(self, sizes: Sequence[int], window: int = 8, min_seconds: float = 0.5,
                 windows: int = 2, margin: float = 0.05, retry_after: int = 500,
                 clock=time.monotonic):
        self.sizes = list(sizes)
        self.window = max(1, window)
        self.min_seconds = min_seconds
        self.windows = windows
        self.margin = margin
        self.retry_after = retry_after
        self.clock = clock
        self.level = 0
        self.batches = 0
        self.throughput: Dict[int, float] = {}  # examples/s of each size in its last trial
        self._trial = None  # (index of the smaller size, {size: [examples/s per window]})
        self._arm = 0
        self._open: Optional[_Window] = None  # the window taking batches
        self._settled_at = 0
        self._retries = 0
        self._unreached = 0
        if len(self.sizes) > 1:
            self._start(0)

    @property
    def cap(self) -> int:
        """The largest batch formed outside trials."""
        return self.sizes[self.level]

    def _start(self, low: int):
        self._trial = (low, {self.sizes[low]: [], self.sizes[low + 1]: []})
        self._arm = 0
        self._open = None
        self._unreached = 0

    def choose(self, available: int):
        """``(size, ticket)``: the size to form from ``available`` examples (None when even the
        smallest does not fit) and the ticket to hand to :meth:`done` with its run."""
        if self._trial is None:
            fits = [s for s in self.sizes[:self.level + 1] if s <= available]
            return (fits[-1] if fits else None), None
        low, _ = self._trial
        target = self.sizes[low + self._arm]
        fits = [s for s in self.sizes[:low + self._arm + 1] if s <= available]
        size = fits[-1] if fits else None
        if self._open is None:
            self._open = _Window(target, self.clock())
        window = self._open
        window.reached = window.reached or size == target
        window.formed += 1
        window.running += 1
        if window.formed >= self.window and \
                self.clock() - window.started >= self.min_seconds:
            window.closed = True  # the next batches make a window of the other size
            self._open = None
            self._arm ^= 1
        return size, window

    def done(self, ticket, size: int, ok: bool = True):
        """Reports the end of a batch formed under ``ticket``; may end a trial."""
        self.batches += 1
        if ticket is None:
            self._maybe_retry()
            return
        ticket.running -= 1
        ticket.examples += size
        ticket.ok = ticket.ok and ok
        if not ticket.closed or ticket.running or self._trial is None:
            return
        low, results = self._trial
        if ticket.size not in results:
            return
        if ticket.reached and ticket.ok:
            values = results[ticket.size]
            values.append(ticket.examples / max(1e-9, self.clock() - ticket.started))
            del values[:-self.windows]  # the latest windows of each size
            self._decide()
        elif ticket.size == self.sizes[low + 1]:
            self._unreached += 1
            if self._unreached >= 4 * self.windows:
                # The load never fills the larger size: it cannot help; stay below it.
                self._trial = None
                self._open = None
                self.level = low
                self._settled_at = self.batches

    def _decide(self):
        low, results = self._trial
        if any(len(v) < self.windows for v in results.values()):
            return
        small, big = self.sizes[low], self.sizes[low + 1]
        for size, values in results.items():
            self.throughput[size] = sum(values) / len(values)
        self._trial = None
        self._open = None
        if self.throughput[big] > self.throughput[small] * (1.0 + self.margin):
            self.level = low + 1
            if self.level + 1 < len(self.sizes):
                self._start(self.level)  # climbing: try the next size up at once
                return
        else:
            self.level = low
        self._settled_at = self.batches

    def _maybe_retry(self):
        if self._trial is not None or self.batches - self._settled_at < self.retry_after:
            return
        self._retries += 1
        if self._retries % 2 == 1 and self.level + 1 < len(self.sizes):
            self._start(self.level)
        elif self.level > 0:
            self._start(self.level - 1)
        else:
            self._settled_at = self.batches


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
      inline: let the submitting thread run the batch a free batch thread would run at once
        (see :meth:`submit`); then ``submit`` returns after that run.
    """

    def __init__(self, scheduler: "BatchScheduler", run_fn: RunFn, name: str,
                 max_batch_size=1000, batch_timeout_s=0.0, max_enqueued_batches=10,
                 allowed_batch_sizes: Sequence[int] = (), enable_large_batch_splitting=False,
                 max_execution_batch_size: Optional[int] = None, inline: bool = True):
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
        self.sizer = BatchSizer(self.sizes, window=2 * scheduler.num_threads)
        self.inline = inline
        self.batch_timeout_s = batch_timeout_s
        self.max_rows = max_enqueued_batches * self.execution_limit
        self.tasks = collections.deque()
        self.rows = 0
        self.closed = False
        self.running = 0
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

        With ``inline`` (the default) and a batch thread free, the calling thread runs the
        batch a batch thread would run now (see :meth:`_run_here`) before returning.

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
        self._enqueue([task], notify=not self.inline)
        if self.inline:
            self._run_here()
        return task.future

    def _run_here(self):
        """Runs the next batch on the calling thread when a batch thread is free to run it now.

        The request just queued would be taken at once by a free batch thread, in a batch with
        whatever else waits; taking that batch here instead saves two thread hand-offs, which
        on a busy machine cost about a millisecond each (a third of a small model's request).
        It still takes one of the ``num_batch_threads`` places, so no more batches run at once;
        when no place is free or no batch is ready (a batch timeout), the batch threads take it
        as usual.
        """
        scheduler = self.scheduler
        with scheduler.cond:
            if (scheduler.busy >= scheduler.num_threads or self.closed or scheduler.closing
                    or self.ready_at(time.monotonic()) != 0.0):
                scheduler.cond.notify()  # a batch thread takes it, now or when one is free
                return
            tasks, size, ticket = self.take()
            scheduler.busy += 1
            self.running += 1
        try:
            self.run(tasks, size, ticket)
        finally:
            with scheduler.cond:
                scheduler.busy -= 1
                self.running -= 1
                scheduler.place_freed(self)

    def _enqueue(self, tasks, notify=True):
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
            if notify:
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

    def take(self):
        """Removes the next batch's tasks; returns them, the size to run them at, and the
        :class:`BatchSizer`'s ticket for :meth:`run`."""
        head = self.tasks.popleft()
        if head.rows is None:
            self.rows -= 1
            return [head], None, None
        available = head.rows + sum(t.rows for t in self.tasks if t.key == head.key)
        size, ticket = self.sizer.choose(min(available, self.execution_limit))
        if size is None:
            size = self.sizes[0] if self.padding_allowed else available
        target = max(size, head.rows)
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
        return batch, max(padded, rows), ticket

    # -- running ------------------------------------------------------------------------------

    def run(self, tasks: List[_Task], size: Optional[int], ticket=None):
        """Runs one batch (on a scheduler thread, without the lock)."""
        served, ok = 0, False
        try:
            served, ok = self._run(tasks, size)
        finally:
            with self.scheduler.cond:
                self.sizer.done(ticket, served, ok)

    def _run(self, tasks, size):
        """Runs a batch; returns the examples it served and whether it ran as one batch."""
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
            return 0, False
        if len(live) == 1 and (size is None or size == live[0].rows):
            return live[0].rows or 0, self._run_alone(live[0])
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
            return total, False
        if pad:
            self.scheduler.metrics.add(m.PADDING_SIZE, pad, execution_batch_size=size)
        self._count(len(live), total)
        offset = 0
        for task in live:
            self._succeed(task, {k: v[offset:offset + task.rows] for k, v in outputs.items()})
            offset += task.rows
        return total, True

    def _timeout_ms(self, tasks):
        deadlines = [t.deadline for t in tasks if t.deadline is not None]
        if len(deadlines) < len(tasks) or not deadlines:
            return None
        return max(1, int((max(deadlines) - time.monotonic()) * 1000))

    def _timed(self, inputs, size, timeout_ms):
        outputs = self.run_fn(inputs, timeout_ms)
        self.scheduler.metrics.add(m.PROCESSED_BATCH_SIZE, size or 1)
        self.scheduler.metrics.add(m.WRAPPED_RUN_COUNT)
        return outputs

    def _run_alone(self, task) -> bool:
        try:
            outputs = self._timed(task.inputs, task.rows, self._timeout_ms([task]))
        except BaseException as e:  # noqa: BLE001  handed to the waiting request
            self._count(1, task.rows or 0)
            self._fail(task, e)
            return False
        self._count(1, task.rows or 0)
        self._succeed(task, outputs)
        return True

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
        self.num_threads = num_threads
        self.busy = 0  # batches running, on the batch threads or inline
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
                    if self.busy < self.num_threads:  # requests run inline hold places too
                        queue, wait = self._pick()
                        if queue is not None:
                            break
                    else:
                        queue, wait = None, None
                    if self.closing and wait is None and not self._waiting():
                        return
                    self.cond.wait(wait)
                tasks, size, ticket = queue.take()
                queue.running += 1
                self.busy += 1
            try:
                queue.run(tasks, size, ticket)
            except BaseException:  # noqa: BLE001  a thread must survive anything
                log.exception("batch of %s failed unexpectedly", queue.name)
            finally:
                with self.cond:
                    queue.running -= 1
                    self.busy -= 1
                    self.place_freed(queue)

    def place_freed(self, queue):
        """Wakes what may go on now that a batch ended (called with the lock held)."""
        if self.closing or queue.closed:
            self.cond.notify_all()  # close() waits for the queues to drain
        elif self._waiting():
            # One batch thread may take the next batch.  None is woken for nothing: on a busy
            # machine a thread that takes the interpreter lock and is then preempted stalls the
            # threads answering requests.
            self.cond.notify()

    def _waiting(self):
        return any(queue.tasks for queue in self.queues)

    def close(self, timeout=None):
        """Runs what is queued, then stops the threads."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
