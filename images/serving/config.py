"""TF Serving's text-format configuration files, parsed into its own protos.

* ``--model_config_file``: a ``ModelServerConfig`` (tensorflow_serving/config/model_server_config.proto,
  shipped in the ``tensorflow-serving-api`` package): several models, each with a base path, a
  version policy (``latest``, ``all``, ``specific``) and version labels.
* ``--batching_parameters_file``: a ``BatchingParameters`` (session_bundle_config.proto).
* ``--monitoring_config_file``: a ``MonitoringConfig`` (monitoring_config.proto).
* ``--tensorflow_session_config_file``: a TensorFlow ``ConfigProto``.

The last three protos are not in the pip package; :mod:`images.serving.protos` declares them with the
same field names and numbers, so the same files parse with the same errors (an unknown field is
refused by name).
"""
import dataclasses
import os
from typing import Dict, List, Optional, Tuple

from google.protobuf import text_format

from images.serving import protos

PLATFORM = "tensorflow"


class ConfigError(Exception):
    """A configuration file or flag combination the server refuses; the message says why."""


def _read(path, what):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("cannot read the %s %s: %s" % (what, path, e))


def parse_text_proto(path, message, what):
    """Parses the text-format file ``path`` into ``message`` (returned).

    Raises:
      ConfigError: unreadable file or a parse error (the message names the line).
    """
    try:
        text_format.Parse(_read(path, what), message)
    except text_format.ParseError as e:
        raise ConfigError("%s %s is not a valid text-format %s: %s"
                          % (what, path, message.DESCRIPTOR.name, e))
    return message


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which versions on disk are served (FileSystemStoragePathSourceConfig.ServableVersionPolicy).

    Attributes:
      kind: ``latest``, ``all`` or ``specific``.
      num_versions: for ``latest``: how many of the newest versions.
      versions: for ``specific``: the version numbers.
    """
    kind: str = "latest"
    num_versions: int = 1
    versions: Tuple[int, ...] = ()

    def aspired(self, on_disk) -> List[int]:
        """The versions to serve out of the version numbers found on disk."""
        found = sorted(on_disk)
        if self.kind == "all":
            return found
        if self.kind == "specific":
            return [v for v in found if v in self.versions]
        return found[-self.num_versions:] if found else []

    def describe(self):
        if self.kind == "all":
            return "all versions"
        if self.kind == "specific":
            return "versions %s" % ", ".join(map(str, self.versions))
        return "the latest %d version%s" % (self.num_versions, "s" if self.num_versions > 1 else "")


@dataclasses.dataclass(frozen=True)
class ModelSpecConfig:
    """One model to serve: a ``ModelConfig`` entry after validation."""
    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: Tuple[Tuple[str, int], ...] = ()

    @property
    def label_map(self) -> Dict[str, int]:
        return dict(self.labels)


def _policy(config) -> VersionPolicy:
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy("all")
    if choice == "specific":
        if not policy.specific.versions:
            raise ConfigError("model '%s': model_version_policy { specific { } } lists no "
                              "versions; add versions: N" % config.name)
        return VersionPolicy("specific", versions=tuple(policy.specific.versions))
    num = policy.latest.num_versions if choice == "latest" else 0
    return VersionPolicy("latest", num_versions=num or 1)


def model_specs(server_config) -> List[ModelSpecConfig]:
    """Validated models of a ``ModelServerConfig`` (TF Serving's ServerCore checks).

    Raises:
      ConfigError: a custom_model_config, a repeated name, a relative base path, a platform other
        than ``tensorflow``, an empty specific policy.
    """
    kind = server_config.WhichOneof("config")
    if kind == "custom_model_config":
        raise ConfigError("custom_model_config is not supported; list the models in "
                          "model_config_list { config { ... } }")
    specs, seen = [], set()
    if kind is None:
        return specs
    for config in server_config.model_config_list.config:
        if not config.name:
            raise ConfigError("a model_config_list entry has no name")
        if config.name in seen:
            raise ConfigError("Illegal to list model %s multiple times in config list"
                              % config.name)
        seen.add(config.name)
        if config.model_type:
            raise ConfigError("model '%s' sets the deprecated model_type; use "
                              "model_platform: \"tensorflow\"" % config.name)
        if not config.model_platform:
            raise ConfigError("Illegal setting neither ModelServerConfig::model_type (deprecated)"
                              " nor ModelServerConfig::model_platform, model name is %s: add "
                              "model_platform: \"tensorflow\"" % config.name)
        if config.model_platform != PLATFORM:
            raise ConfigError("Model %s requests unsupported platform %s; this server serves "
                              "\"tensorflow\" SavedModels" % (config.name, config.model_platform))
        if not os.path.isabs(config.base_path):
            raise ConfigError("Expected model %s to have an absolute path or URI; got "
                              "base_path()=%s" % (config.name, config.base_path))
        if config.HasField("logging_config"):
            raise ConfigError("model '%s': logging_config (request logging) is not supported "
                              "by this server; remove it" % config.name)
        specs.append(ModelSpecConfig(
            name=config.name, base_path=config.base_path, policy=_policy(config),
            labels=tuple(sorted(config.version_labels.items()))))
    return specs


def read_model_config(path) -> List[ModelSpecConfig]:
    """The models of the ``--model_config_file`` at ``path``."""
    from tensorflow_serving.config import model_server_config_pb2
    config = parse_text_proto(path, model_server_config_pb2.ModelServerConfig(),
                              "--model_config_file")
    specs = model_specs(config)
    if not specs:
        raise ConfigError("--model_config_file %s lists no model; add model_config_list "
                          "{ config { name: ... base_path: ... model_platform: \"tensorflow\" } }"
                          % path)
    return specs


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's BatchingParameters with its defaults (SharedBatchScheduler's QueueOptions).

    Attributes:
      max_batch_size: most examples in one batch (1000).
      batch_timeout_micros: how long a batch waits to fill (0).
      max_enqueued_batches: queue bound, in batches (10); beyond it requests get UNAVAILABLE.
      num_batch_threads: batches running at once, shared by every model (0: two per CPU
        core; TF Serving's default is one per core).
      allowed_batch_sizes: batch sizes a merged batch is padded up to (none: no padding).
      enable_large_batch_splitting: split a request larger than a batch across batches.
      max_execution_batch_size: the largest batch run when splitting.
      thread_pool_name: name of the batch threads.
    """
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 0
    allowed_batch_sizes: Tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: Optional[int] = None
    thread_pool_name: str = "model_server_batch_threads"

    def validate(self):
        if self.max_batch_size < 1:
            raise ConfigError("max_batch_size must be positive; was %d" % self.max_batch_size)
        if self.batch_timeout_micros < 0:
            raise ConfigError("batch_timeout_micros must be non-negative; was %d"
                              % self.batch_timeout_micros)
        if self.max_enqueued_batches < 1:
            raise ConfigError("max_enqueued_batches must be positive; was %d"
                              % self.max_enqueued_batches)
        if self.num_batch_threads < 0:
            raise ConfigError("num_batch_threads must be positive; was %d"
                              % self.num_batch_threads)
        sizes = self.allowed_batch_sizes
        if sizes:
            if list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
                raise ConfigError("allowed_batch_sizes must be positive and increasing; got %s"
                                  % list(sizes))
            limit = self.execution_limit
            if sizes[-1] != limit:
                raise ConfigError("Last entry in allowed_batch_sizes must match max_batch_size; "
                                  "last entry was %d; expected %d" % (sizes[-1], limit))
        if self.max_execution_batch_size is not None and self.max_execution_batch_size < 1:
            raise ConfigError("max_execution_batch_size must be positive")
        return self

    @property
    def execution_limit(self) -> int:
        """The largest batch run at once."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size


def read_batching_parameters(path: Optional[str]) -> BatchingParameters:
    """The ``--batching_parameters_file`` (or TF Serving's defaults when ``path`` is empty)."""
    if not path:
        return BatchingParameters().validate()
    proto = parse_text_proto(path, protos.BatchingParameters(), "--batching_parameters_file")
    if proto.pad_variable_length_inputs:
        raise ConfigError("pad_variable_length_inputs is not supported by this server: requests "
                          "of different lengths run in separate batches instead; remove it from "
                          "%s" % path)
    values = {}
    for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                  "num_batch_threads", "max_execution_batch_size"):
        if proto.HasField(field):
            values[field] = getattr(proto, field).value
    if proto.HasField("thread_pool_name"):
        values["thread_pool_name"] = proto.thread_pool_name.value
    if proto.HasField("enable_large_batch_splitting"):
        values["enable_large_batch_splitting"] = proto.enable_large_batch_splitting.value
    values["allowed_batch_sizes"] = tuple(proto.allowed_batch_sizes)
    try:
        return BatchingParameters(**values).validate()
    except ConfigError as e:
        raise ConfigError("--batching_parameters_file %s: %s" % (path, e))


PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def read_monitoring_config(path: Optional[str]) -> Optional[str]:
    """The Prometheus path to export, or None (TF Serving exports nothing without the file)."""
    if not path:
        return None
    config = parse_text_proto(path, protos.MonitoringConfig(), "--monitoring_config_file")
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    metrics_path = prometheus.path or PROMETHEUS_PATH
    if not metrics_path.startswith("/") or metrics_path.lower().startswith("/v1/"):
        raise ConfigError("prometheus_config path %r must start with / and lie outside /v1/"
                          % metrics_path)
    return metrics_path


def read_session_config(path: Optional[str]):
    """The ``--tensorflow_session_config_file`` as a ``tf.compat.v1.ConfigProto``."""
    from tensorflow.core.protobuf import config_pb2
    if not path:
        return config_pb2.ConfigProto()
    return parse_text_proto(path, config_pb2.ConfigProto(), "--tensorflow_session_config_file")
