"""Horovod glue: the PAISoar stand-in.

``--enable_paisoar`` (FastNN's name) switches the distributed optimizer on.  Outside ``horovodrun``
Horovod initialises as one worker (rank 0 of 1), so the same command trains single-process.
"""
import dataclasses
import logging
import os
from typing import Any, Optional

import tensorflow.compat.v1 as tf

log = logging.getLogger("fastnn")

_LAUNCHER_ENV = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands in the job."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    hvd: Optional[Any] = None

    @property
    def is_chief(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.hvd is not None


def launched_by_horovodrun():
    """True when a launcher (horovodrun, mpirun) started this process as one of several ranks."""
    return any(k in os.environ for k in _LAUNCHER_ENV) and int(
        os.environ.get("HOROVOD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))) > 1


def init_cluster(enable_distributed):
    """Initialises Horovod when ``enable_distributed``; else a one-worker :class:`Cluster`.

    Raises:
      ValueError: several ranks were launched but the distributed optimizer is off, which would
        train independent copies of the model.
    """
    if not enable_distributed:
        if launched_by_horovodrun():
            raise ValueError("this process is one of several launched by horovodrun, but "
                             "--enable_paisoar=False turns the distributed optimizer off; the "
                             "workers would train separate models. Drop --enable_paisoar=False.")
        return Cluster()
    import horovod.tensorflow as hvd  # imported only when asked for: it loads its own ops.
    hvd.init()
    return Cluster(rank=hvd.rank(), size=hvd.size(), local_rank=hvd.local_rank(),
                   local_size=hvd.local_size(), hvd=hvd)


def distributed_optimizer(cluster, optimizer, compression="none", op="average",
                          backward_passes_per_step=1):
    """Wraps ``optimizer`` in ``hvd.DistributedOptimizer`` (gradients allreduced across workers).

    Args:
      cluster: from :func:`init_cluster`; with one plain worker the optimizer is returned as is.
      optimizer: the optimizer to wrap.
      compression: ``none`` or ``fp16`` (gradients travel as float16).
      op: ``average`` or ``adasum``.
      backward_passes_per_step: local gradient accumulation before each allreduce.
    """
    if not cluster.distributed:
        return optimizer
    hvd = cluster.hvd
    comp = {"none": hvd.Compression.none, "fp16": hvd.Compression.fp16}[compression]
    reduce_op = {"average": hvd.Average, "adasum": hvd.Adasum}[op]
    return hvd.DistributedOptimizer(optimizer, compression=comp, op=reduce_op,
                                    backward_passes_per_step=backward_passes_per_step)


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
