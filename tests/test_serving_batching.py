"""The batcher on its own: merging, splitting, isolation of failures, the queue bound, draining."""
import threading
import time

import numpy as np
import pytest

from images.serving.batching import Batcher, BatcherClosedError, QueueFullError


class Recorder:
    """A model function that doubles ``x`` and records the batch sizes it was called with."""

    def __init__(self, gate=None, fail_on=None):
        self.sizes = []
        self.gate = gate
        self.fail_on = fail_on

    def __call__(self, inputs):
        if self.gate is not None:
            self.gate.wait(10)
        x = inputs["x"]
        self.sizes.append(len(x))
        if self.fail_on is not None and np.any(x == self.fail_on):
            raise ValueError("bad value %r" % self.fail_on)
        return {"y": x * 2, "s": x.sum(axis=tuple(range(1, x.ndim)))}


def _submit_all(batcher, arrays):
    return [batcher.submit({"x": a}, len(a)) for a in arrays]


def test_requests_waiting_together_run_as_one_batch_and_split_back():
    gate = threading.Event()
    run = Recorder(gate)
    batcher = Batcher(run, max_batch_size=16, batch_timeout_s=0.0, num_threads=1)
    try:
        first = batcher.submit({"x": np.ones((1, 3))}, 1)  # occupies the only worker
        time.sleep(0.05)
        arrays = [np.full((n, 3), i, dtype=np.float32) for i, n in enumerate([1, 2, 3], 1)]
        futures = _submit_all(batcher, arrays)
        gate.set()
        first.result(5)
        for a, f in zip(arrays, futures):
            out = f.result(5)
            np.testing.assert_array_equal(out["y"], a * 2)
            np.testing.assert_array_equal(out["s"], a.sum(1))
        assert run.sizes == [1, 6]
        assert (batcher.batches_run, batcher.tasks_run, batcher.rows_run) == (2, 4, 7)
    finally:
        batcher.close()


def test_timeout_waits_for_more_requests_and_max_batch_size_caps_a_batch():
    run = Recorder()
    batcher = Batcher(run, max_batch_size=4, batch_timeout_s=0.5, num_threads=1)
    try:
        start = time.monotonic()
        futures = _submit_all(batcher, [np.ones((1, 2))] * 6)
        for f in futures:
            f.result(5)
        # Four fill the first batch at once; the last two wait out the timeout together.
        assert run.sizes == [4, 2]
        assert time.monotonic() - start >= 0.45
    finally:
        batcher.close()


def test_requests_of_different_shapes_or_without_batch_size_never_merge():
    gate = threading.Event()
    run = Recorder(gate)
    batcher = Batcher(run, max_batch_size=32, batch_timeout_s=0.0, num_threads=1)
    try:
        hold = batcher.submit({"x": np.ones((1, 2))}, 1)
        time.sleep(0.05)
        a = batcher.submit({"x": np.ones((2, 2))}, 2)
        b = batcher.submit({"x": np.ones((1, 5))}, 1)       # other inner shape
        c = batcher.submit({"x": np.ones((3, 2))}, None)    # no shared batch dimension
        d = batcher.submit({"x": np.ones((1, 2))}, 1)
        gate.set()
        for f in (hold, a, b, c, d):
            f.result(5)
        assert run.sizes == [1, 2, 1, 3, 1]
    finally:
        batcher.close()


def test_a_failing_request_gets_its_error_and_its_batch_mates_their_results():
    gate = threading.Event()
    run = Recorder(gate, fail_on=-1)
    batcher = Batcher(run, max_batch_size=16, num_threads=1)
    try:
        hold = batcher.submit({"x": np.ones((1, 2))}, 1)
        time.sleep(0.05)
        good1 = batcher.submit({"x": np.full((1, 2), 3.0)}, 1)
        bad = batcher.submit({"x": np.full((1, 2), -1.0)}, 1)
        good2 = batcher.submit({"x": np.full((2, 2), 4.0)}, 2)
        gate.set()
        hold.result(5)
        np.testing.assert_array_equal(good1.result(5)["y"], np.full((1, 2), 6.0))
        np.testing.assert_array_equal(good2.result(5)["y"], np.full((2, 2), 8.0))
        with pytest.raises(ValueError, match="bad value"):
            bad.result(5)
        assert run.sizes[:2] == [1, 4]  # the merged attempt, then one by one
    finally:
        batcher.close()


def test_batching_off_runs_every_request_alone():
    run = Recorder()
    batcher = Batcher(run, max_batch_size=1, num_threads=2)
    try:
        for f in _submit_all(batcher, [np.ones((1, 2))] * 5):
            f.result(5)
        assert run.sizes == [1] * 5
    finally:
        batcher.close()


def test_full_queue_refuses_and_close_drains_what_is_queued():
    gate = threading.Event()
    run = Recorder(gate)
    batcher = Batcher(run, max_batch_size=1, max_enqueued=2, num_threads=1)
    running = batcher.submit({"x": np.ones((1, 1))}, 1)
    time.sleep(0.05)  # the worker took it: it no longer counts as waiting
    queued = _submit_all(batcher, [np.ones((1, 1))] * 2)
    assert batcher.waiting == 2
    with pytest.raises(QueueFullError, match="limit is 2"):
        batcher.submit({"x": np.ones((1, 1))}, 1)
    gate.set()
    batcher.close()
    for f in [running] + queued:
        assert f.done() and f.result()["y"].shape == (1, 1)
    with pytest.raises(BatcherClosedError):
        batcher.submit({"x": np.ones((1, 1))}, 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_batch_size=0), "max_batch_size"),
    (dict(batch_timeout_s=-1), "batch_timeout_s"),
    (dict(max_enqueued=0), "max_enqueued"),
    (dict(num_threads=0), "num_threads"),
])
def test_bad_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Batcher(Recorder(), **kwargs)
