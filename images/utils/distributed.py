"""Horovod glue: the PAISoar stand-in.

``--enable_paisoar`` (FastNN's name) switches the distributed optimizer on.  A process that no
launcher started as one of several ranks trains alone, without Horovod, so the same command works
outside ``horovodrun``.

Failure handling: Horovod's background thread on every worker exchanges a message with the others
every few milliseconds, whatever the Python side is doing, and Gloo gives up on a peer that has not
answered for ``HOROVOD_GLOO_TIMEOUT_SECONDS`` (30 by default).  So a worker that dies or hangs makes
the others' next collective fail within that time; the trainer turns the failure into a clear
message (:func:`lost_worker_message`) and a non-zero exit, and ``horovodrun`` then stops the
remaining workers and exits non-zero itself.  On several hosts the message names the host that
was lost (:mod:`images.utils.hosts`).
"""
import dataclasses
import os
from typing import Any, Optional, Tuple

import tensorflow.compat.v1 as tf

from images.utils import hosts as hosts_lib

_LAUNCHER_RANK_ENV = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_LAUNCHER_SIZE_ENV = ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")

COMPRESSIONS = ("none", "fp16")
CPU_CYCLE_TIME_MS = "10"  # HOROVOD_CYCLE_TIME for CPU-only workers unless the environment sets it
REDUCE_OPS = ("average", "adasum")

# Fragments of the errors a collective raises when a peer is gone (Gloo timeouts, closed
# connections, Horovod's shutdown after a rank failed).
_LOST_PEER_MARKERS = ("Horovod has been shut down", "Timed out waiting", "Connection closed by peer",
                      "Connection reset by peer", "Horovod background loop")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands in the job."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    hvd: Optional[Any] = None
    # (host name, address) of every rank, by rank; empty when unknown (one worker, no horovodrun).
    hosts: Tuple[Tuple[str, str], ...] = ()

    @property
    def is_chief(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.hvd is not None


def launched_size(environ=None):
    """Number of ranks the launcher (horovodrun, mpirun) started, 1 when there is none."""
    environ = os.environ if environ is None else environ
    if not any(k in environ for k in _LAUNCHER_RANK_ENV):
        return 1
    for key in _LAUNCHER_SIZE_ENV:
        if key in environ:
            return int(environ[key])
    return 1


def launched_by_horovodrun(environ=None):
    """True when a launcher (horovodrun, mpirun) started this process as one of several ranks."""
    return launched_size(environ) > 1


def reproducible_sums_env(seeded, environ=None):
    """``HOROVOD_FUSION_THRESHOLD=0`` for a seeded launch of more than two workers, else ``{}``.

    Horovod fuses the gradients that are ready in one cycle into one buffer, and which ones share
    a buffer depends on timing; the ring allreduce then sums an element's contributions in an
    order set by its offset in that buffer.  Two workers' sum is exact in either order; from three
    on, float rounding then differs from run to run (up to 1e-2 in a momentum slot of lenet after
    six steps, through ReLU and dropout thresholds), so ``--random_seed``'s promise (a resumed run
    ends with the uninterrupted run's weights, bit for bit) would not hold.  Each tensor reduced
    alone is summed in one fixed order.  An explicit ``--tensor_fusion_max_bytes`` or
    ``HOROVOD_FUSION_THRESHOLD`` wins.

    Args:
      seeded: ``--random_seed`` was given.
      environ: the environment to inspect (default ``os.environ``), after the flags' own
        Horovod variables were applied.
    """
    environ = os.environ if environ is None else environ
    if not seeded or "HOROVOD_FUSION_THRESHOLD" in environ or launched_size(environ) <= 2:
        return {}
    return {"HOROVOD_FUSION_THRESHOLD": "0"}


def init_cluster(enable_distributed, environ=None):
    """Initialises Horovod for a multi-rank launch; else returns a one-worker :class:`Cluster`.

    Args:
      enable_distributed: ``--enable_paisoar``.
      environ: the environment to inspect (default ``os.environ``).

    Raises:
      ValueError: several ranks were launched but the distributed optimizer is off (they would
        train independent copies of the model), or Horovod cannot be imported under a launcher.
    """
    size = launched_size(environ)
    if not enable_distributed:
        if size > 1:
            raise ValueError("this process is one of %d launched by horovodrun, but "
                             "--enable_paisoar=False turns the distributed optimizer off; the "
                             "workers would train separate models. Drop --enable_paisoar=False, "
                             "or run without horovodrun for local training." % size)
        return Cluster()
    if size == 1:
        # Not launched as one of several ranks: a plain one-worker run needs no collectives.
        return Cluster()
    if "HOROVOD_CYCLE_TIME" not in os.environ and not tf.config.list_physical_devices("GPU"):
        # Horovod's background thread wakes every millisecond by default; on a CPU-only worker
        # that burnt 0.10-0.15 of a core each here (idle), taken from the training threads.  At
        # 10 ms it burns 0.02, and a step of seconds waits a few ms more at most.
        os.environ["HOROVOD_CYCLE_TIME"] = CPU_CYCLE_TIME_MS
    try:
        import horovod.tensorflow as hvd  # imported only when needed: it loads its own ops.
    except ImportError as e:
        raise ValueError("horovodrun started %d workers but Horovod does not import (%s); "
                         "install it with `make install` (README)" % (size, e)) from None
    hvd.init()
    # Learnt now, while every host is there: after a failure it tells which host was lost.
    hosts = hosts_lib.gather(hvd.rank(), hvd.size()) if hvd.cross_size() > 1 else ()
    return Cluster(rank=hvd.rank(), size=hvd.size(), local_rank=hvd.local_rank(),
                   local_size=hvd.local_size(), hvd=hvd, hosts=hosts)


def distributed_optimizer(cluster, optimizer, compression="none", op="average",
                          backward_passes_per_step=1):
    """Wraps ``optimizer`` in ``hvd.DistributedOptimizer`` (gradients allreduced across workers).

    With ``backward_passes_per_step`` k > 1 each worker sums k batches' gradients locally, the
    allreduce and the update happen every k-th run, and the gradient is the mean over the k
    batches (``average``), so k accumulation steps act like one batch k times larger.

    Args:
      cluster: from :func:`init_cluster`; with one plain worker the optimizer is returned as is.
      optimizer: the optimizer to wrap.
      compression: ``none`` or ``fp16`` (gradients travel as float16).
      op: ``average`` or ``adasum``.
      backward_passes_per_step: local gradient accumulation before each allreduce.

    Raises:
      ValueError: an unknown compression or op.
    """
    if compression not in COMPRESSIONS:
        raise ValueError("unknown gradient compression %r; valid: %s"
                         % (compression, ", ".join(COMPRESSIONS)))
    if op not in REDUCE_OPS:
        raise ValueError("unknown allreduce op %r; valid: %s" % (op, ", ".join(REDUCE_OPS)))
    if backward_passes_per_step < 1:
        raise ValueError("backward_passes_per_step must be >= 1, got %d"
                         % backward_passes_per_step)
    if not cluster.distributed:
        return optimizer
    hvd = cluster.hvd
    if op == "adasum" and not hvd.mpi_enabled():
        # Measured with Horovod 0.28.1 + Gloo: each worker kept its own gradient, silently.
        raise ValueError("--allreduce_op=adasum needs Horovod's MPI controller (horovodrun --mpi "
                         "with a Horovod built with MPI); under Gloo the workers' gradients are "
                         "not combined. Use --allreduce_op=average.")
    comp = {"none": hvd.Compression.none, "fp16": hvd.Compression.fp16}[compression]
    kwargs = {}
    if op == "average" and backward_passes_per_step > 1:
        kwargs["average_aggregated_gradients"] = True  # Adasum refuses this option.
    return hvd.DistributedOptimizer(
        optimizer, compression=comp, op={"average": hvd.Average, "adasum": hvd.Adasum}[op],
        backward_passes_per_step=backward_passes_per_step, **kwargs)


def configure_session(cluster, config):
    """Per-worker defaults in ``config`` (a ``tf.ConfigProto``) for a distributed run.

    Each worker sees only the GPU of its local rank, and thread pools left at 0 (TensorFlow's
    choice: one thread per core) get this machine's cores divided among its workers, so the
    workers of one machine do not oversubscribe it.
    """
    if not cluster.distributed:
        return config
    config.gpu_options.visible_device_list = str(cluster.local_rank)
    share = max(1, (os.cpu_count() or 1) // max(1, cluster.local_size))
    if config.intra_op_parallelism_threads == 0:
        config.intra_op_parallelism_threads = share
    if config.inter_op_parallelism_threads == 0:
        config.inter_op_parallelism_threads = share
    return config


def broadcast_hook(cluster, variables=None):
    """A hook that copies rank 0's variables to every worker once the session starts.

    Variables restored from a checkpoint on rank 0 thereby reach all workers.
    """
    if not cluster.distributed:
        return None
    if variables is None:
        return cluster.hvd.BroadcastGlobalVariablesHook(0)
    return BroadcastVariablesHook(cluster.hvd, variables)


class BroadcastVariablesHook(tf.train.SessionRunHook):
    """Broadcasts the given variables from rank 0 once the session exists.

    Used instead of Horovod's hook when some variables (model-parallel shards) must stay local.
    """

    def __init__(self, hvd, variables):
        self._hvd, self._vars, self._op = hvd, list(variables), None

    def begin(self):
        self._op = self._hvd.broadcast_variables(self._vars, root_rank=0)

    def after_create_session(self, session, coord):
        session.run(self._op)


def lost_worker_message(cluster, error, probe=hosts_lib.silent_hosts):
    """A clear message when ``error`` means another worker is gone; None for other errors.

    On several hosts every other host is probed (a few seconds at most): a host that no longer
    answers is named as the lost one; if all answer, the message lists which ranks run where, so
    the rank horovodrun reports can be placed.

    Args:
      cluster: this process's :class:`Cluster`.
      error: an exception raised by a session run.
      probe: ``(hosts, own_address) -> (silent, answering)`` (tests replace it).
    """
    if not cluster.distributed or not isinstance(error, tf.errors.OpError):
        return None
    text = str(error)
    if not any(marker in text for marker in _LOST_PEER_MARKERS):
        return None
    first = next(line.strip() for line in text.splitlines()
                 if any(marker in line for marker in _LOST_PEER_MARKERS))
    detail = "(%s: %s)" % (type(error).__name__, first[:300])
    timeout = os.environ.get("HOROVOD_GLOO_TIMEOUT_SECONDS", "30")
    generic = ("so another worker died, was killed, hung for more than "
               "HOROVOD_GLOO_TIMEOUT_SECONDS=%s s, or ran out of data earlier than this one (see "
               "its log)" % timeout)
    restart = "restart the job to resume from rank 0's last checkpoint"
    groups = hosts_lib.by_host(cluster.hosts)
    if len(groups) < 2:
        return ("worker %d of %d: a collective with the other workers failed, %s. Stopping this "
                "worker too; %s. %s" % (cluster.rank, cluster.size, generic, restart, detail))
    own_name, own_address = cluster.hosts[cluster.rank]
    silent, _ = probe(groups, own_address)
    if silent:
        one = len(silent) == 1
        return ("worker %d of %d on %s: a collective with the other workers failed: lost host%s "
                "%s, which no longer answer%s on the network (no reply within %g s: %s). Stopping "
                "this worker too; restart the job once %s back, or with -H without %s, to resume "
                "from rank 0's last checkpoint. %s"
                % (cluster.rank, cluster.size, own_name, "" if one else "s",
                   ", ".join(h.describe() for h in silent), "s" if one else "",
                   hosts_lib.PROBE_TIMEOUT,
                   "it died, or its link is down" if one else "they died, or their links are down",
                   " and ".join(h.name for h in silent) + (" is" if one else " are"),
                   "it" if one else "them", detail))
    return ("worker %d of %d on %s: a collective with the other workers failed, %s; every host "
            "still answers on the network, so look for the worker process that died or hung "
            "(horovodrun names its rank; hosts: %s). Stopping this worker too; %s. %s"
            % (cluster.rank, cluster.size, own_name, generic,
               ", ".join(h.describe() for h in groups), restart, detail))
