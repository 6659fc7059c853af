"""Counters and histograms exported in Prometheus text format, under TF Serving's metric names.

TF Serving registers its metrics as ``/tensorflow/serving/request_count`` and so on; its Prometheus
exporter writes them with every character outside ``[a-zA-Z0-9_]`` replaced by ``:``, so
dashboards query ``:tensorflow:serving:request_count``.  The same names, labels and bucket limits
are used here (tensorflow_serving/servables/tensorflow/util.cc, batching/batching_util.h,
batching_session.cc; TensorFlow's saved_model loader for the load counters).  Metrics of our own
are under ``:fastnn:serving:``.
"""
import math
import re
import threading
from typing import Dict, Sequence, Tuple


def exponential_buckets(scale: float, growth: float, count: int) -> Tuple[float, ...]:
    """TensorFlow's Buckets::Exponential: ``count`` limits from ``scale``, then +Inf."""
    return tuple(scale * growth ** i for i in range(count)) + (math.inf,)


REQUEST_LATENCY_BUCKETS = exponential_buckets(10, 1.8, 33)     # microseconds
EXAMPLE_COUNT_BUCKETS = exponential_buckets(1, 2, 15)
BATCH_SIZE_BUCKETS = exponential_buckets(1, 2, 14)
QUEUING_LATENCY_BUCKETS = exponential_buckets(100, 1.2, 52)    # microseconds


def prometheus_name(name: str) -> str:
    """TF Serving's GetPrometheusMetricName."""
    name = re.sub(r"[^a-zA-Z0-9_]", ":", name)
    return "_" + name if name[:1].isdigit() else name


def _label_value(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"")


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return "%g" % value if value != int(value) or abs(value) >= 1e15 else "%d" % value


class _Histogram:
    __slots__ = ("limits", "counts", "sum")

    def __init__(self, limits):
        self.limits = limits
        self.counts = [0] * len(limits)
        self.sum = 0.0

    def add(self, value):
        for i, limit in enumerate(self.limits):
            if value < limit or i == len(self.limits) - 1:
                self.counts[i] += 1
                break
        self.sum += value


class Metrics:
    """A registry of labelled counters, gauges and histograms; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._kinds: Dict[str, Tuple[str, Sequence[str], tuple]] = {}
        self._values: Dict[str, Dict[tuple, object]] = {}

    def _declare(self, name, kind, labels, limits=()):
        self._kinds[name] = (kind, tuple(labels), limits)
        self._values[name] = {}

    def counter(self, name: str, *labels: str):
        self._declare(name, "counter", labels)

    def gauge(self, name: str, *labels: str):
        self._declare(name, "gauge", labels)

    def histogram(self, name: str, limits: Sequence[float], *labels: str):
        self._declare(name, "histogram", labels, tuple(limits))

    def add(self, name: str, value: float = 1, **labels):
        """Adds to a counter, or records ``value`` in a histogram."""
        kind, names, limits = self._kinds[name]
        key = tuple(str(labels[n]) for n in names)
        with self._lock:
            cells = self._values[name]
            if kind == "histogram":
                cell = cells.get(key)
                if cell is None:
                    cell = cells[key] = _Histogram(limits)
                cell.add(value)
            else:
                cells[key] = cells.get(key, 0) + value

    def set(self, name: str, value: float, **labels):
        """Sets a gauge."""
        kind, names, _ = self._kinds[name]
        with self._lock:
            self._values[name][tuple(str(labels[n]) for n in names)] = value

    def clear_labels(self, name: str, **labels):
        """Removes the cells of ``name`` whose labels include ``labels``."""
        _, names, _ = self._kinds[name]
        wanted = {names.index(k): str(v) for k, v in labels.items()}
        with self._lock:
            cells = self._values[name]
            for key in [k for k in cells if all(k[i] == v for i, v in wanted.items())]:
                del cells[key]

    def clear(self, name: str):
        with self._lock:
            self._values[name].clear()

    def value(self, name: str, **labels) -> float:
        """A counter's or gauge's value (a histogram's count), 0 when never set."""
        kind, names, _ = self._kinds[name]
        key = tuple(str(labels[n]) for n in names)
        with self._lock:
            cell = self._values[name].get(key)
            if cell is None:
                return 0
            return sum(cell.counts) if kind == "histogram" else cell

    def first_value(self, name: str) -> float:
        """The value of a metric's first cell (0 when none), as TF Serving's ReloadConfig reads
        the metrics a request names; unknown names are 0."""
        if name not in self._kinds:
            return 0
        kind = self._kinds[name][0]
        with self._lock:
            cells = self._values[name]
            if not cells:
                return 0
            cell = cells[sorted(cells)[0]]
            return sum(cell.counts) if kind == "histogram" else cell

    def render(self) -> str:
        """Prometheus text exposition format, as TF Serving's exporter writes it."""
        lines = []
        with self._lock:
            for name in sorted(self._kinds):
                kind, names, _ = self._kinds[name]
                prom = prometheus_name(name)
                lines.append("# TYPE %s %s" % (prom, kind))
                for key, cell in sorted(self._values[name].items()):
                    labels = ["%s=\"%s\"" % (prometheus_name(n), _label_value(v))
                              for n, v in zip(names, key)]
                    if kind != "histogram":
                        lines.append("%s{%s} %s" % (prom, ",".join(labels), _number(cell)))
                        continue
                    prefix = "%s_bucket{%s" % (prom, ",".join(labels) + ("," if labels else ""))
                    total = 0
                    for limit, count in zip(cell.limits, cell.counts):
                        total += count
                        lines.append("%sle=\"%s\"} %d" % (prefix, _number(limit), total))
                    lines.append("%s_sum{%s} %s" % (prom, ",".join(labels), repr(cell.sum)))
                    lines.append("%s_count{%s} %d" % (prom, ",".join(labels), total))
        return "\n".join(lines) + "\n"


# TF Serving's metric names.
REQUEST_COUNT = "/tensorflow/serving/request_count"
REQUEST_LATENCY = "/tensorflow/serving/request_latency"
RUNTIME_LATENCY = "/tensorflow/serving/runtime_latency"
EXAMPLE_COUNTS = "/tensorflow/serving/request_example_counts"
EXAMPLE_COUNT_TOTAL = "/tensorflow/serving/request_example_count_total"
INPUT_BATCH_SIZE = "/tensorflow/serving/batching_session/input_batch_size"
PROCESSED_BATCH_SIZE = "/tensorflow/serving/batching_session/processed_batch_size"
PADDING_SIZE = "/tensorflow/serving/batching_session/padding_size"
QUEUING_LATENCY = "/tensorflow/serving/batching_session/queuing_latency"
WRAPPED_RUN_COUNT = "/tensorflow/serving/batching_session/wrapped_run_count"
# TensorFlow's SavedModel loader metrics.
LOAD_ATTEMPT_COUNT = "/tensorflow/cc/saved_model/load_attempt_count"
LOAD_LATENCY = "/tensorflow/cc/saved_model/load_latency"
# Ours.
MODEL_VERSION_STATE = "/fastnn/serving/model_version_state"


def server_metrics() -> Metrics:
    """A registry with every metric the server records, declared."""
    m = Metrics()
    m.counter(REQUEST_COUNT, "model_name", "status")
    m.histogram(REQUEST_LATENCY, REQUEST_LATENCY_BUCKETS, "model_name", "API", "entrypoint")
    m.histogram(RUNTIME_LATENCY, REQUEST_LATENCY_BUCKETS, "model_name", "API", "runtime")
    m.histogram(EXAMPLE_COUNTS, EXAMPLE_COUNT_BUCKETS, "model")
    m.counter(EXAMPLE_COUNT_TOTAL, "model")
    m.histogram(INPUT_BATCH_SIZE, BATCH_SIZE_BUCKETS)
    m.histogram(PROCESSED_BATCH_SIZE, BATCH_SIZE_BUCKETS)
    m.histogram(PADDING_SIZE, BATCH_SIZE_BUCKETS, "execution_batch_size")
    m.histogram(QUEUING_LATENCY, QUEUING_LATENCY_BUCKETS, "thread_pool_name")
    m.counter(WRAPPED_RUN_COUNT)
    m.counter(LOAD_ATTEMPT_COUNT, "model_path", "status")
    m.counter(LOAD_LATENCY, "model_path")
    m.gauge(MODEL_VERSION_STATE, "model_name", "version", "state")
    return m
