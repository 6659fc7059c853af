"""The served models: TF Serving's ServerCore, shared by the REST and gRPC front ends.

One :class:`~images.serving.manager.ModelManager` per configured model (``--model_name`` and
``--model_base_path``, or every entry of ``--model_config_file``), one batch scheduler shared by
all of them, one metrics registry.  A config reload (``HandleReloadConfigRequest`` or a changed
``--model_config_file`` under ``--model_config_file_poll_wait_seconds``) adds, updates and removes
models as TF Serving does.
"""
import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
from typing import Dict, List, Optional

from images.serving import metrics as m
from images.serving.config import ConfigError, ModelSpecConfig
from images.serving.errors import ServingError
from images.serving.inference import Inference
from images.serving.manager import BatchingOptions, ModelManager

log = logging.getLogger("fastnn.serving")


@dataclasses.dataclass
class CoreOptions:
    """Settings shared by every model (the command-line flags of tensorflow_model_server)."""
    tags: tuple = ("serve",)
    batching: BatchingOptions = BatchingOptions()
    poll_seconds: float = 1.0
    session_config: object = None
    warmup: bool = True
    warmup_iterations: int = 1
    max_num_load_retries: int = 5
    load_retry_interval_s: float = 60.0
    allow_unavailable_labels: bool = False
    max_image_pixels: int = 0
    method_name_check: bool = False
    num_load_threads: int = 0
    num_unload_threads: int = 0


class ServerCore:
    """The models being served, by name.

    Args:
      options: :class:`CoreOptions`.
      managers: already-made managers to serve (used by :func:`single`).
    """

    def __init__(self, options: CoreOptions = CoreOptions(),
                 managers: Optional[List[ModelManager]] = None):
        self.options = options
        self.metrics = managers[0].metrics if managers else m.server_metrics()
        self.scheduler = (managers[0].scheduler if managers
                          else options.batching.make_scheduler(self.metrics))
        self.inference = Inference(self.metrics, options.max_image_pixels,
                                   options.method_name_check)
        self.unloader = (concurrent.futures.ThreadPoolExecutor(
            options.num_unload_threads, thread_name_prefix="unload")
            if options.num_unload_threads else None)
        self.models: Dict[str, ModelManager] = {m_.model_name: m_ for m_ in managers or []}
        self.specs: Dict[str, ModelSpecConfig] = {}
        self._lock = threading.Lock()
        self.started = False

    @classmethod
    def single(cls, manager: ModelManager, max_image_pixels: int = 0) -> "ServerCore":
        """A core serving one already-made :class:`ModelManager`."""
        return cls(CoreOptions(max_image_pixels=max_image_pixels), [manager])

    def _manager(self, spec: ModelSpecConfig) -> ModelManager:
        o = self.options
        return ModelManager(spec.name, spec.base_path, o.tags, o.batching, o.poll_seconds,
                            o.session_config, o.warmup, spec.policy, spec.label_map,
                            self.metrics, self.scheduler, o.max_num_load_retries,
                            o.load_retry_interval_s, o.warmup_iterations,
                            o.allow_unavailable_labels, self.unloader)

    def start(self, specs: Optional[List[ModelSpecConfig]] = None):
        """Loads the configured models (or starts the managers given at construction).

        Raises:
          ModelLoadError, ServingError: a model does not load, or a label names an unavailable
            version; the message names the model.
        """
        if specs is not None:
            self.reload(specs)
        else:
            for manager in self.models.values():
                if not manager.started:
                    manager.start()
        self.started = True

    def reload(self, specs: List[ModelSpecConfig]):
        """Serves exactly ``specs``: new models are loaded, changed ones updated, others unloaded.

        Raises:
          ConfigError: a repeated name.
          ModelLoadError, ServingError: a new model does not load, or a label is invalid.
        """
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError("Illegal to list a model multiple times in config list: %s"
                              % names)
        with self._lock:
            old = dict(self.models)
            new_models, to_start = {}, []
            for spec in specs:
                manager = old.get(spec.name)
                previous = self.specs.get(spec.name)
                if manager is not None and previous is not None \
                        and previous.base_path == spec.base_path:
                    if previous != spec:
                        manager.update(spec.policy, spec.label_map)
                        manager.check_labels()
                    new_models[spec.name] = manager
                    continue
                manager = self._manager(spec)
                new_models[spec.name] = manager
                to_start.append(manager)
            self._start_all(to_start)
            removed = [mgr for name, mgr in old.items()
                       if name not in new_models or new_models[name] is not mgr]
            self.models = new_models
            self.specs = {s.name: s for s in specs}
        for manager in removed:
            log.info("model '%s' is no longer in the config: unloading it", manager.model_name)
            threading.Thread(target=manager.stop, daemon=True).start()

    def _start_all(self, managers):
        """Starts new models: one after the other, or on ``num_load_threads`` threads."""
        if self.options.num_load_threads and len(managers) > 1:
            with concurrent.futures.ThreadPoolExecutor(self.options.num_load_threads) as pool:
                futures = [pool.submit(mgr.start) for mgr in managers]
            errors = [f.exception() for f in futures if f.exception() is not None]
        else:
            errors = []
            for mgr in managers:
                try:
                    mgr.start()
                except Exception as e:  # noqa: BLE001  re-raised below after clean-up
                    errors.append(e)
                    break
        if errors:
            for mgr in managers:
                mgr.stop(1.0)
            raise errors[0]

    def stop(self, timeout=30.0):
        """Unloads every model after its requests in flight, then stops the batch threads."""
        with self._lock:
            managers = list(self.models.values())
        for manager in managers:
            manager.stop(timeout)
        if self.scheduler is not None:
            self.scheduler.close(timeout)

    def manager(self, name: str) -> Optional[ModelManager]:
        return self.models.get(name)

    @contextlib.contextmanager
    def use(self, name: str, version: Optional[int] = None, label: Optional[str] = None):
        """Holds the version of model ``name`` that a request names.

        Raises:
          ServingError: NOT_FOUND (unknown model or version), INVALID_ARGUMENT (unknown label,
            or both a version and a label).
        """
        if not name:
            raise ServingError("INVALID_ARGUMENT", "ModelSpec has no name specified.")
        manager = self.models.get(name)
        if manager is None:
            if version is not None:
                raise ServingError("NOT_FOUND", "Servable not found for request: Specific(%s, %d)"
                                   % (name, version))
            raise ServingError("NOT_FOUND", "Servable not found for request: Latest(%s)" % name)
        with manager.use(version, label) as loaded:
            yield loaded

    def status(self, name: str, version: Optional[int] = None, label: Optional[str] = None):
        """``(name, [(version, state, error)])`` for GetModelStatus."""
        manager = self.models.get(name)
        if label is not None:
            if manager is None or label not in manager.labels:
                raise ServingError("INVALID_ARGUMENT", "Unrecognized servable version label: %s"
                                   % label)
            version = manager.labels[label]
        if manager is None:
            if version is not None:
                raise ServingError("NOT_FOUND", "Could not find version %d of model %s"
                                   % (version, name))
            raise ServingError("NOT_FOUND", "Could not find any versions of model %s" % name)
        return manager.status(version)

    def counters(self):
        """Batching counters summed over every model."""
        totals = {"batches": 0, "requests": 0, "rows": 0, "waiting": 0}
        for manager in list(self.models.values()):
            for key, value in manager.counters().items():
                totals[key] += value
        return totals
