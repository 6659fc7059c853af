"""Which version of the model is served: loading, warm-up, atomic switch, unloading.

The base path follows TF Serving's layout, ``BASE/<version>/saved_model.pb``, and the newest
version is served (TF Serving's default "latest" policy).  A poll thread looks at the base path
every ``poll_seconds``; a new version directory is loaded once its files have stayed the same
across two polls (so a directory still being copied is not loaded half-written), then warmed up
(each signature run once, on the last request the old version answered when there is one), and
only then does it replace the old version, in one assignment under a lock.  The old version
finishes the requests it holds before its session is closed.  A version that fails to load is
reported in the status with its error and the old one keeps serving; it is tried again when its
files change.
"""
import contextlib
import dataclasses
import functools
import io
import logging
import os
import threading
from typing import Dict, Iterable, Optional

import numpy as np

from images.serving import codec
from images.serving.batching import Batcher
from images.serving.servable import ModelLoadError, Servable, is_saved_model_dir

log = logging.getLogger("fastnn.serving")

# TF Serving's ManagerState names, as its status reply spells them.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"

_SAMPLE_MAX_BYTES = 1 << 20


class ModelNotFoundError(Exception):
    """No such model or version (HTTP 404)."""


class ModelUnavailableError(Exception):
    """The model exists but no version is loaded yet (HTTP 503)."""


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """How requests are merged (see :mod:`images.serving.batching`).

    Attributes:
      enabled: merge concurrent requests; when False (TF Serving's default) each request runs
        alone, up to ``num_threads`` at once.
      max_batch_size: most rows per model call.
      batch_timeout_s: how long a batch's first request waits for more.
      max_enqueued: most requests waiting per signature before the server answers 503.
      num_threads: model calls running at once per signature.
    """
    enabled: bool = False
    max_batch_size: int = 32
    batch_timeout_s: float = 0.0
    max_enqueued: int = 1024
    num_threads: int = 2

    def make_batcher(self, run_fn, name):
        if self.enabled:
            return Batcher(run_fn, self.max_batch_size, self.batch_timeout_s, self.max_enqueued,
                           self.num_threads, name)
        return Batcher(run_fn, 1, 0.0, self.max_enqueued, self.num_threads, name)


class LoadedVersion:
    """A servable with its batchers and a count of the requests using it."""

    def __init__(self, servable: Servable, batching: BatchingOptions, model_name: str):
        self.servable = servable
        self.version = servable.version
        self._batching = batching
        self._model_name = model_name
        self._batchers: Dict[str, Batcher] = {}
        self._cond = threading.Condition()
        self._refs = 0

    def batcher(self, signature_name: str) -> Batcher:
        with self._cond:
            batcher = self._batchers.get(signature_name)
            if batcher is None:
                batcher = self._batching.make_batcher(
                    functools.partial(self.servable.run, signature_name),
                    "%s-v%d-%s" % (self._model_name, self.version, signature_name))
                self._batchers[signature_name] = batcher
            return batcher

    def acquire(self):
        with self._cond:
            self._refs += 1

    def release(self):
        with self._cond:
            self._refs -= 1
            if self._refs == 0:
                self._cond.notify_all()

    def close(self, timeout=None):
        """Waits for the requests using this version, then frees its batchers and session."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._refs == 0, timeout):
                log.warning("version %d still has %d requests after %ss; closing anyway",
                            self.version, self._refs, timeout)
            batchers = list(self._batchers.values())
        for batcher in batchers:
            batcher.close()
        self.servable.close()

    def counters(self):
        with self._cond:
            batchers = list(self._batchers.values())
        return {"batches": sum(b.batches_run for b in batchers),
                "requests": sum(b.tasks_run for b in batchers),
                "rows": sum(b.rows_run for b in batchers),
                "waiting": sum(b.waiting for b in batchers)}


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
        if name.isdigit() and os.path.isdir(path) and is_saved_model_dir(path):
            versions[int(name)] = path
    return versions


def _warmup_image():
    from PIL import Image  # the project's own dependency; only needed without a recorded request
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
    """Serves the newest version of one model and reloads when a newer one appears.

    Args:
      model_name: the name clients use in ``/v1/models/NAME``.
      base_path: directory of numbered version directories.
      tags: SavedModel MetaGraph tags to load.
      batching: :class:`BatchingOptions`.
      poll_seconds: seconds between looks at ``base_path``; 0 disables reloading.
      session_config: ``tf.ConfigProto`` for every version's session, or None.
      warmup: run each signature once before a new version serves.
    """

    def __init__(self, model_name: str, base_path: str, tags: Iterable[str] = ("serve",),
                 batching: BatchingOptions = BatchingOptions(), poll_seconds: float = 1.0,
                 session_config=None, warmup: bool = True):
        self.model_name = model_name
        self.base_path = os.path.abspath(base_path)
        self.tags = tuple(tags)
        self.batching = batching
        self.poll_seconds = poll_seconds
        self.session_config = session_config
        self.warmup = warmup
        self._lock = threading.Lock()
        self._current: Optional[LoadedVersion] = None
        self._states: Dict[int, tuple] = {}
        self._pending: Dict[int, tuple] = {}
        self._failed: Dict[int, tuple] = {}
        self._samples: Dict[str, Dict[str, np.ndarray]] = {}
        self._retired = {"batches": 0, "requests": 0, "rows": 0}
        self._unloaders = []
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None
        self._warned_empty = False
        self.started = False

    # -- life cycle ----------------------------------------------------------------------------

    def start(self):
        """Loads the newest version now (if any) and starts watching the base path.

        Raises:
          ModelLoadError: the base path is missing or is itself a version directory, or the
            newest version does not load.
        """
        if not os.path.isdir(self.base_path):
            raise ModelLoadError("--model_base_path=%s does not exist (it should hold numbered "
                                 "version directories such as %s/1/saved_model.pb)"
                                 % (self.base_path, self.base_path))
        if is_saved_model_dir(self.base_path):
            raise ModelLoadError(
                "%s holds a SavedModel itself, but the base path must hold numbered version "
                "directories (TF Serving's layout): move it into %s/1/ or pass a parent whose "
                "subdirectory names are version numbers" % (self.base_path, self.base_path))
        self.started = True
        versions = scan_versions(self.base_path)
        if versions:
            latest = max(versions)
            if not self._load(latest, versions[latest], _fingerprint(versions[latest])):
                raise ModelLoadError(self._states[latest][1])
        else:
            log.warning("no version of model '%s' in %s yet; waiting for a numbered directory",
                        self.model_name, self.base_path)
        if self.poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll_loop, name="version-poller",
                                            daemon=True)
            self._poller.start()

    def stop(self, timeout=30.0):
        """Stops watching, lets every request in flight finish, frees every session."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
        with self._lock:
            current, self._current = self._current, None
        if current is not None:
            self._set_state(current.version, UNLOADING)
            current.close(timeout)
            self._set_state(current.version, END)
        for thread in self._unloaders:
            thread.join(timeout)

    # -- requests ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def use(self, version: Optional[int] = None):
        """Holds the served version (or the one asked for) while a request uses it.

        Raises:
          ModelNotFoundError: ``version`` is not the one being served.
          ModelUnavailableError: nothing is loaded yet.
        """
        with self._lock:
            current = self._current
            if current is None:
                raise ModelUnavailableError(
                    "no version of model '%s' is loaded yet: waiting for a numbered SavedModel "
                    "directory in %s" % (self.model_name, self.base_path))
            if version is not None and version != current.version:
                state = self._states.get(version)
                raise ModelNotFoundError(
                    "version %d of model '%s' is not being served (%s); version %d is"
                    % (version, self.model_name,
                       "no such version" if state is None else "its state is " + state[0],
                       current.version))
            current.acquire()
        try:
            yield current
        finally:
            current.release()

    def record_sample(self, signature_name: str, inputs: Dict[str, np.ndarray]):
        """Keeps a small recent request per signature to warm up the next version with."""
        if sum(a.nbytes for a in inputs.values()) <= _SAMPLE_MAX_BYTES:
            self._samples[signature_name] = inputs

    @property
    def current_version(self) -> Optional[int]:
        current = self._current
        return None if current is None else current.version

    def status(self, version: Optional[int] = None):
        """TF Serving's ``model_version_status`` list (newest first).

        Raises:
          ModelNotFoundError: ``version`` was never seen.
        """
        with self._lock:
            states = dict(self._states)
        if version is not None:
            if version not in states:
                raise ModelNotFoundError(
                    "model '%s' has no version %d; known versions: %s"
                    % (self.model_name, version, ", ".join(map(str, sorted(states))) or "none"))
            states = {version: states[version]}
        return [{"version": str(v), "state": state,
                 "status": {"error_code": "OK" if not error else "UNKNOWN",
                            "error_message": error}}
                for v, (state, error) in sorted(states.items(), reverse=True)]

    def counters(self):
        """Cumulative batching counters over every version served so far."""
        with self._lock:
            totals = dict(self._retired, waiting=0)
            current = self._current
        if current is not None:
            for key, value in current.counters().items():
                totals[key] += value
        return totals

    # -- versions ------------------------------------------------------------------------------

    def _set_state(self, version, state, error=""):
        with self._lock:
            self._states[version] = (state, error)

    def _poll_loop(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001  a bad poll must not stop future ones
                log.exception("polling %s failed", self.base_path)

    def poll_once(self) -> bool:
        """Looks at the base path once; returns True when a new version was switched to."""
        versions = scan_versions(self.base_path)
        if not versions:
            if not self._warned_empty:
                log.warning("no version directories left in %s; still serving version %s",
                            self.base_path, self.current_version)
                self._warned_empty = True
            return False
        self._warned_empty = False
        latest = max(versions)
        if latest == self.current_version:
            self._pending.clear()
            return False
        fingerprint = _fingerprint(versions[latest])
        if self._failed.get(latest) == fingerprint:
            return False
        if self._pending.get(latest) != fingerprint:
            # First sight, or still changing: wait one more poll before trusting it.
            self._pending = {latest: fingerprint}
            self._set_state(latest, START)
            return False
        return self._load(latest, versions[latest], fingerprint)

    def _load(self, version, path, fingerprint) -> bool:
        self._set_state(version, LOADING)
        log.info("loading version %d of model '%s' from %s", version, self.model_name, path)
        try:
            servable = Servable(path, version, self.tags, self.session_config)
        except ModelLoadError as e:
            self._failed[version] = fingerprint
            self._set_state(version, END, str(e))
            log.error("version %d of model '%s' failed to load; %s: %s", version,
                      self.model_name, "still serving version %s" % self.current_version
                      if self.current_version is not None else "nothing is served", e)
            return False
        loaded = LoadedVersion(servable, self.batching, self.model_name)
        if self.warmup:
            self._warm(servable)
        with self._lock:
            old, self._current = self._current, loaded
            self._states[version] = (AVAILABLE, "")
            if old is not None:
                self._states[old.version] = (UNLOADING, "")
        self._pending.clear()
        log.info("serving version %d of model '%s'", version, self.model_name)
        if old is not None:
            thread = threading.Thread(target=self._unload, args=(old,), daemon=True,
                                      name="unload-v%d" % old.version)
            self._unloaders.append(thread)
            thread.start()
        return True

    def _unload(self, old: LoadedVersion):
        old.close()
        counters = old.counters()
        with self._lock:
            for key in self._retired:
                self._retired[key] += counters[key]
            self._states[old.version] = (END, "")
        log.info("unloaded version %d of model '%s'", old.version, self.model_name)

    def _warm(self, servable: Servable):
        for name, signature in servable.signatures.items():
            inputs = self._samples.get(name)
            if inputs is not None:
                try:
                    if set(inputs) != set(signature.inputs):
                        raise codec.RequestError("inputs changed")
                    for key, array in inputs.items():
                        spec = signature.inputs[key]
                        if array.dtype != spec.dtype:
                            raise codec.RequestError("dtype changed")
                        codec.check_shape(array, spec, key)
                except codec.RequestError:
                    inputs = None
            if inputs is None:
                inputs = synthetic_inputs(signature)
            try:
                servable.run(name, inputs)
            except Exception as e:  # noqa: BLE001  warm-up is best effort
                log.info("warm-up of signature '%s' of version %d skipped: %s", name,
                         servable.version, str(e).splitlines()[0] if str(e) else e)
