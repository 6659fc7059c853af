"""Which versions of a model are served: loading, warm-up, switching, unloading.

The base path follows TF Serving's layout, ``BASE/<version>/saved_model.pb``.  The version policy
(TF Serving's ``model_version_policy``: the latest N, all, or specific versions) says which of the
versions on disk are served.  A poll thread looks at the base path every ``poll_seconds`` (0: only
at start-up, as TF Serving's ``--file_system_poll_wait_seconds``); a new version directory is
loaded once its files have stayed the same across two polls (so a directory still being copied is
not loaded half-written), warmed up, and only then served: as TF Serving's availability-preserving
policy, a new version is available before an old one is unloaded, and the old one finishes the
requests it holds before its session is closed.  A version that fails to load is reported in the
status with its error; it is tried again (at most ``max_num_load_retries`` times, at least
``load_retry_interval_s`` apart, and again whenever its files change).
"""
import concurrent.futures
import contextlib
import dataclasses
import functools
import io
import logging
import os
import threading
import time
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from images.serving import metrics as m
from images.serving.batching import BatchQueue, BatchScheduler
from images.serving.config import VersionPolicy
from images.serving.errors import ServingError, invalid
from images.serving.servable import ModelLoadError, Servable, is_saved_model_dir

log = logging.getLogger("fastnn.serving")

# TF Serving's ManagerState names, as its status reply spells them.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """How requests are merged (see :mod:`images.serving.batching`); TF Serving's defaults.

    Attributes:
      enabled: merge concurrent requests; when False (TF Serving's default) each request runs
        alone on the thread that received it.
      max_batch_size: most examples in one request or batch.
      batch_timeout_s: how long the oldest request waits for a batch to fill.
      max_enqueued_batches: queue bound per signature, in batches; beyond it UNAVAILABLE.
      num_threads: batches running at once, shared by every model (0: two per CPU core; see
        :mod:`images.serving.batching`).
      allowed_batch_sizes: the sizes batches are formed and padded in (default: powers of 2).
      enable_large_batch_splitting: split requests larger than ``max_execution_batch_size``.
      max_execution_batch_size: the largest batch run when splitting.
      thread_pool_name: name of the batch threads (a metric label).
    """
    enabled: bool = False
    max_batch_size: int = 1000
    batch_timeout_s: float = 0.0
    max_enqueued_batches: int = 10
    num_threads: int = 0
    allowed_batch_sizes: Tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: Optional[int] = None
    thread_pool_name: str = "model_server_batch_threads"

    @classmethod
    def from_parameters(cls, enabled, params):
        """From :class:`images.serving.config.BatchingParameters`."""
        return cls(enabled=enabled, max_batch_size=params.max_batch_size,
                   batch_timeout_s=params.batch_timeout_micros / 1e6,
                   max_enqueued_batches=params.max_enqueued_batches,
                   num_threads=params.num_batch_threads,
                   allowed_batch_sizes=tuple(params.allowed_batch_sizes),
                   enable_large_batch_splitting=params.enable_large_batch_splitting,
                   max_execution_batch_size=params.max_execution_batch_size,
                   thread_pool_name=params.thread_pool_name)

    def make_scheduler(self, metrics):
        if not self.enabled:
            return None
        return BatchScheduler(self.num_threads or default_batch_threads(), metrics,
                              self.thread_pool_name)

    def make_queue(self, scheduler, run_fn, name):
        return BatchQueue(scheduler, run_fn, name, self.max_batch_size, self.batch_timeout_s,
                          self.max_enqueued_batches, self.allowed_batch_sizes,
                          self.enable_large_batch_splitting, self.max_execution_batch_size)


def default_batch_threads() -> int:
    """Two batch threads per core: one run in flight per core leaves it idle between batches."""
    return 2 * (os.cpu_count() or 1)


class LoadedVersion:
    """A servable with its batch queues and a count of the requests using it."""

    def __init__(self, servable: Servable, model_name: str, batching: BatchingOptions,
                 scheduler: Optional[BatchScheduler]):
        self.servable = servable
        self.version = servable.version
        self.model_name = model_name
        self._batching = batching
        self._scheduler = scheduler
        self._queues: Dict[str, BatchQueue] = {}
        self._cond = threading.Condition()
        self._refs = 0

    def run(self, signature_name: str, inputs: Dict[str, np.ndarray],
            output_keys=None, timeout_ms: Optional[int] = None,
            deadline: Optional[float] = None, rows: Optional[int] = None):
        """Runs a signature: through its batch queue when batching, else on this thread.

        Raises:
          ServingError: queue full or shutting down; the request is larger than a batch.
          tf.errors.OpError: the run failed.
        """
        if self._scheduler is None or (output_keys is not None and set(output_keys) != set(
                self.servable.signatures[signature_name].outputs)):
            return self.servable.run(signature_name, inputs, output_keys, timeout_ms)
        outputs = self.queue(signature_name).submit(inputs, rows, deadline).result()
        if output_keys is not None:
            outputs = {k: outputs[k] for k in output_keys}
        return outputs

    def queue(self, signature_name: str) -> BatchQueue:
        with self._cond:
            queue = self._queues.get(signature_name)
            if queue is None:
                run = functools.partial(self._run_for_queue, signature_name)
                queue = self._batching.make_queue(
                    self._scheduler, run,
                    "%s-v%d-%s" % (self.model_name, self.version, signature_name))
                self._queues[signature_name] = queue
            return queue

    def _run_for_queue(self, signature_name, inputs, timeout_ms):
        return self.servable.run(signature_name, inputs, None, timeout_ms)

    def acquire(self):
        with self._cond:
            self._refs += 1

    def release(self):
        with self._cond:
            self._refs -= 1
            if self._refs == 0:
                self._cond.notify_all()

    def close(self, timeout=None):
        """Waits for the requests using this version, then frees its queues and session."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._refs == 0, timeout):
                log.warning("version %d still has %d requests after %ss; closing anyway",
                            self.version, self._refs, timeout)
            queues = list(self._queues.values())
        for queue in queues:
            queue.close(timeout)
        self.servable.close()

    def counters(self):
        with self._cond:
            queues = list(self._queues.values())
        return {"batches": sum(q.batches_run for q in queues),
                "requests": sum(q.tasks_run for q in queues),
                "rows": sum(q.rows_run for q in queues),
                "waiting": sum(q.waiting for q in queues)}


def _fingerprint(path):
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError:  # removed while we looked: the directory is still changing
                continue
            entries.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(entries))


def scan_versions(base_path) -> Dict[int, str]:
    """``{version: directory}`` for the numbered SavedModel directories under ``base_path``."""
    versions = {}
    try:
        names = os.listdir(base_path)
    except OSError:
        return versions
    for name in names:
        path = os.path.join(base_path, name)
        # ASCII digits only ("²".isdigit() is true); TF Serving takes any int64 name.
        if name.isascii() and name.isdigit() and len(name) < 19 and os.path.isdir(path) \
                and is_saved_model_dir(path):
            versions[int(name)] = path
    return versions


def _warmup_image():
    from PIL import Image  # the project's own dependency
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (128, 128, 128)).save(buf, format="PNG")
    return buf.getvalue()


def synthetic_inputs(signature):
    """One example per input: zeros, or a small grey PNG for string inputs (image models)."""
    inputs = {}
    for key, spec in signature.inputs.items():
        shape = spec.shape if spec.shape is not None else (1,)
        shape = tuple((1 if i == 0 else 32) if d == -1 else d for i, d in enumerate(shape))
        if spec.is_string:
            array = np.empty(shape, dtype=object)
            array.fill(_warmup_image())
        else:
            array = np.zeros(shape, dtype=spec.dtype)
        inputs[key] = array
    return inputs


class ModelManager:
    """Serves the versions of one model that its policy asks for, and follows the base path.

    Args:
      model_name: the name clients use (``/v1/models/NAME``, ``ModelSpec.name``).
      base_path: directory of numbered version directories.
      tags: SavedModel MetaGraph tags to load.
      batching: :class:`BatchingOptions`.
      poll_seconds: seconds between looks at ``base_path``; 0: only at start-up.
      session_config: ``tf.ConfigProto`` for every version's session, or None.
      warmup: warm each new version up before it serves (TF Serving's
        ``--enable_model_warmup``): its ``assets.extra/tf_serving_warmup_requests`` are replayed
        when it has them, otherwise every signature runs once on a synthetic example.
      policy: which versions on disk to serve (:class:`~images.serving.config.VersionPolicy`).
      labels: ``{label: version}``.
      metrics: the server's :class:`~images.serving.metrics.Metrics` (a private one if None).
      scheduler: the shared :class:`~images.serving.batching.BatchScheduler` (made here when
        batching is enabled and none is given).
      max_num_load_retries, load_retry_interval_s: retries of a failed load.
      warmup_iterations: times each warm-up request is replayed.
      allow_unavailable_labels: labels may name versions that are not (yet) available.
      unloader: where old versions are unloaded (TF Serving's ``--num_unload_threads``); None:
        on the poll thread, which waits for the old version's requests in flight.
    """

    def __init__(self, model_name: str, base_path: str, tags: Iterable[str] = ("serve",),
                 batching: BatchingOptions = BatchingOptions(), poll_seconds: float = 1.0,
                 session_config=None, warmup: bool = True,
                 policy: VersionPolicy = VersionPolicy(), labels: Optional[Dict[str, int]] = None,
                 metrics: Optional[m.Metrics] = None, scheduler: Optional[BatchScheduler] = None,
                 max_num_load_retries: int = 5, load_retry_interval_s: float = 60.0,
                 warmup_iterations: int = 1, allow_unavailable_labels: bool = False,
                 unloader: Optional[concurrent.futures.Executor] = None):
        self.model_name = model_name
        self.base_path = os.path.abspath(base_path)
        self.tags = tuple(tags)
        self.batching = batching
        self.poll_seconds = poll_seconds
        self.session_config = session_config
        self.warmup = warmup
        self.policy = policy
        self.labels = dict(labels or {})
        self.metrics = metrics or m.server_metrics()
        self._own_scheduler = scheduler is None and batching.enabled
        self.scheduler = scheduler if scheduler is not None else batching.make_scheduler(
            self.metrics)
        self.max_num_load_retries = max_num_load_retries
        self.load_retry_interval_s = load_retry_interval_s
        self.warmup_iterations = max(1, warmup_iterations)
        self.allow_unavailable_labels = allow_unavailable_labels
        self.unloader = unloader
        self._lock = threading.Lock()
        self._loaded: Dict[int, LoadedVersion] = {}
        self._states: Dict[int, Tuple[str, str]] = {}
        self._pending: Dict[int, tuple] = {}
        self._failed: Dict[int, Tuple[tuple, int, float]] = {}
        self._retired = {"batches": 0, "requests": 0, "rows": 0}
        self._unloaders: List[concurrent.futures.Future] = []
        self._stop = threading.Event()
        self._poll_lock = threading.Lock()
        self._poller: Optional[threading.Thread] = None
        self._warned_empty = False
        self.started = False

    # -- life cycle ----------------------------------------------------------------------------

    def start(self):
        """Loads the aspired versions now and starts watching the base path.

        Raises:
          ModelLoadError: the base path is missing or is itself a version directory, or an
            aspired version does not load.
        """
        if not os.path.isdir(self.base_path):
            raise ModelLoadError("the base path %s of model '%s' does not exist (it should hold "
                                 "numbered version directories such as %s/1/saved_model.pb)"
                                 % (self.base_path, self.model_name, self.base_path))
        if is_saved_model_dir(self.base_path):
            raise ModelLoadError(
                "%s holds a SavedModel itself, but the base path must hold numbered version "
                "directories (TF Serving's layout): move it into %s/1/ or pass a parent whose "
                "subdirectory names are version numbers" % (self.base_path, self.base_path))
        self.started = True
        versions = scan_versions(self.base_path)
        aspired = self.policy.aspired(versions)
        for version in aspired:
            if not self._load(version, versions[version], _fingerprint(versions[version])):
                raise ModelLoadError(self._states[version][1])
        if not aspired:
            log.warning("no version of model '%s' (%s) in %s yet; waiting for one",
                        self.model_name, self.policy.describe(), self.base_path)
        self.check_labels()
        if self.poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll_loop, daemon=True,
                                            name="poll-%s" % self.model_name)
            self._poller.start()

    def stop(self, timeout=30.0):
        """Stops watching, lets every request in flight finish, frees every session."""
        self._stop.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout)
        with self._lock:
            loaded, self._loaded = dict(self._loaded), {}
            for version in loaded:
                self._states[version] = (UNLOADING, "")
        for version, item in loaded.items():
            item.close(timeout)
            self._set_state(version, END)
        concurrent.futures.wait(self._unloaders, timeout)
        if self._own_scheduler and self.scheduler is not None:
            self.scheduler.close(timeout)

    def check_labels(self):
        """Raises ServingError (FAILED_PRECONDITION) for a label naming an unavailable version."""
        if self.allow_unavailable_labels:
            return
        with self._lock:
            available = set(self._loaded)
        for label, version in sorted(self.labels.items()):
            if version not in available:
                raise ServingError(
                    "FAILED_PRECONDITION",
                    "Request to assign label to version %d of model %s, which is not currently "
                    "available for inference (label '%s'); pass "
                    "--allow_version_labels_for_unavailable_models to allow it"
                    % (version, self.model_name, label))

    def update(self, policy: VersionPolicy, labels: Dict[str, int]):
        """Applies a new policy and labels (a config reload); loads and unloads at once."""
        self.policy = policy
        self.labels = dict(labels)
        self.poll_once(force=True)

    # -- requests ------------------------------------------------------------------------------

    def resolve(self, version: Optional[int] = None, label: Optional[str] = None) -> int:
        """The version a request names (by number or label), or the latest available one.

        Raises:
          ServingError: unknown label (INVALID_ARGUMENT), version not available (NOT_FOUND).
        """
        if label is not None:
            if label not in self.labels:
                raise invalid("Unrecognized servable version label: %s" % label)
            version = self.labels[label]
        with self._lock:
            available = sorted(self._loaded)
        if version is None:
            if not available:
                raise ServingError("NOT_FOUND", "Servable not found for request: Latest(%s); no "
                                   "version of it is loaded (yet): %s"
                                   % (self.model_name, self._waiting_text()))
            return available[-1]
        if version not in available:
            raise ServingError("NOT_FOUND", "Servable not found for request: Specific(%s, %d)"
                               % (self.model_name, version))
        return version

    def _waiting_text(self):
        with self._lock:
            errors = [(v, e) for v, (s, e) in self._states.items() if e]
        if errors:
            return "version %d failed to load: %s" % max(errors)
        return "waiting for %s in %s" % (self.policy.describe(), self.base_path)

    @contextlib.contextmanager
    def use(self, version: Optional[int] = None, label: Optional[str] = None):
        """Holds one loaded version while a request uses it (see :meth:`resolve`)."""
        number = self.resolve(version, label)
        with self._lock:
            loaded = self._loaded.get(number)
            if loaded is None:
                raise ServingError("NOT_FOUND", "Servable not found for request: Specific(%s, %d)"
                                   % (self.model_name, number))
            loaded.acquire()
        try:
            yield loaded
        finally:
            loaded.release()

    @property
    def current_version(self) -> Optional[int]:
        """The latest available version (None when none is)."""
        with self._lock:
            return max(self._loaded) if self._loaded else None

    @property
    def versions(self) -> List[int]:
        with self._lock:
            return sorted(self._loaded)

    def status(self, version: Optional[int] = None):
        """``[(version, state, error_message)]``, newest first (TF Serving's GetModelStatus).

        Raises:
          ServingError: NOT_FOUND, with TF Serving's messages.
        """
        with self._lock:
            states = dict(self._states)
        if version is not None:
            if version not in states:
                raise ServingError("NOT_FOUND", "Could not find version %d of model %s"
                                   % (version, self.model_name))
            states = {version: states[version]}
        if not states:
            raise ServingError("NOT_FOUND", "Could not find any versions of model %s"
                               % self.model_name)
        return [(v, state, error) for v, (state, error) in sorted(states.items(), reverse=True)]

    def counters(self):
        """Cumulative batching counters over every version served so far."""
        with self._lock:
            totals = dict(self._retired, waiting=0)
            loaded = list(self._loaded.values())
        for item in loaded:
            for key, value in item.counters().items():
                totals[key] += value
        return totals

    # -- versions ------------------------------------------------------------------------------

    def _set_state(self, version, state, error=""):
        with self._lock:
            self._states[version] = (state, error)
        self.metrics.clear_labels(m.MODEL_VERSION_STATE, model_name=self.model_name,
                                  version=version)
        self.metrics.set(m.MODEL_VERSION_STATE, 1, model_name=self.model_name, version=version,
                         state=state)

    def _poll_loop(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001  a bad poll must not stop future ones
                log.exception("polling %s failed", self.base_path)

    def poll_once(self, force=False) -> bool:
        """Looks at the base path once; returns True when the served versions changed.

        Args:
          force: load new aspired versions without waiting for their files to settle.
        """
        with self._poll_lock:
            return self._poll(force)

    def _poll(self, force):
        versions = scan_versions(self.base_path)
        aspired = set(self.policy.aspired(versions))
        if not versions and not self._warned_empty:
            log.warning("no version directories in %s; still serving %s", self.base_path,
                        self.versions or "nothing")
            self._warned_empty = True
        elif versions:
            self._warned_empty = False
        changed = False
        loaded = set(self.versions)
        for version in sorted(aspired - loaded):
            path = versions[version]
            fingerprint = _fingerprint(path)
            failed = self._failed.get(version)
            if failed is not None:
                old_fingerprint, attempts, when = failed
                if old_fingerprint == fingerprint and (
                        attempts > self.max_num_load_retries
                        or time.monotonic() - when < self.load_retry_interval_s):
                    continue
            if not force and self._pending.get(version) != fingerprint:
                # First sight, or still changing: wait one more poll before trusting it.
                self._pending[version] = fingerprint
                if version not in self._states:
                    self._set_state(version, START)
                continue
            changed |= self._load(version, path, fingerprint)
        # Availability first: unload only versions no longer aspired, and never the last one
        # serving while its successor is not available (an empty base path keeps it too).
        remaining = set(self.versions)
        for version in sorted(remaining - aspired):
            if not aspired or not (aspired & remaining):
                continue
            self._retire(version)
            changed = True
        return changed

    def _load(self, version, path, fingerprint) -> bool:
        self._set_state(version, LOADING)
        log.info("loading version %d of model '%s' from %s", version, self.model_name, path)
        start = time.monotonic()
        try:
            servable = Servable(path, version, self.tags, self.session_config)
        except ModelLoadError as e:
            _, attempts, _ = self._failed.get(version, (None, 0, 0.0))
            self._failed[version] = (fingerprint, attempts + 1, time.monotonic())
            self._set_state(version, END, str(e))
            self.metrics.add(m.LOAD_ATTEMPT_COUNT, model_path=path, status="fail")
            log.error("version %d of model '%s' failed to load: %s", version, self.model_name, e)
            return False
        self.metrics.add(m.LOAD_ATTEMPT_COUNT, model_path=path, status="success")
        self.metrics.add(m.LOAD_LATENCY, int((time.monotonic() - start) * 1e6),
                         model_path=path)
        self._failed.pop(version, None)
        self._pending.pop(version, None)
        if self.warmup:
            self._warm(servable)
        loaded = LoadedVersion(servable, self.model_name, self.batching, self.scheduler)
        with self._lock:
            self._loaded[version] = loaded
        self._set_state(version, AVAILABLE)
        log.info("serving version %d of model '%s'", version, self.model_name)
        return True

    def _retire(self, version):
        with self._lock:
            item = self._loaded.pop(version, None)
        if item is None:
            return
        self._set_state(version, UNLOADING)
        if self.unloader is None:
            self._unload(item)
        else:
            self._unloaders.append(self.unloader.submit(self._unload, item))

    def _unload(self, item: LoadedVersion):
        item.close()
        counters = item.counters()
        with self._lock:
            for key in self._retired:
                self._retired[key] += counters[key]
        self._set_state(item.version, END)
        log.info("unloaded version %d of model '%s'", item.version, self.model_name)

    def _warm(self, servable: Servable):
        from images.serving import warmup
        path = os.path.join(servable.export_dir, WARMUP_FILE)
        if os.path.isfile(path):
            try:
                count = warmup.replay(servable, path, self.warmup_iterations)
                log.info("warm-up of version %d: replayed %d requests", servable.version, count)
            except Exception as e:  # noqa: BLE001  TF Serving fails the load; we serve cold
                log.warning("warm-up requests of version %d could not be replayed: %s",
                            servable.version, e)
            return
        for name, signature in servable.signatures.items():
            if name.startswith("__") or not signature.inputs:
                continue
            try:
                servable.run(name, synthetic_inputs(signature))
            except Exception as e:  # noqa: BLE001  warm-up is best effort
                log.info("warm-up of signature '%s' of version %d skipped: %s", name,
                         servable.version, str(e).splitlines()[0] if str(e) else e)
