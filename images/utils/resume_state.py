"""Where a run starts and where it ends, decided before anything is built or written.

A run resumes at its checkpoint's global step; the input position follows from that step
(:mod:`images.datasets.positions`) and the random draws from the step too
(:mod:`images.utils.keyed_random`), so nothing else needs saving.  The run ends at the first of
``--stop_at_step`` and the end of ``--num_epochs`` (the step where the shortest worker's data
runs out).  A train_dir whose checkpoint is already at or past that end is a finished run: the
trainer says so and exits without touching a file (a job scheduler may restart a finished job).

Under Horovod rank 0 reads the checkpoint (the others may not see train_dir) and every worker
counts its own shard; one allgather gives every worker the same plan.
"""
import dataclasses
import logging
import os
from typing import Optional, Sequence

import tensorflow.compat.v1 as tf

from images.datasets import positions

log = logging.getLogger("fastnn")


def checkpoint_step(path):
    """The global step in a checkpoint prefix's name (``model.ckpt-60`` -> 60), else None."""
    tail = os.path.basename(path or "").rsplit("-", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def mock_batches(num_epochs, samples_per_epoch, batch_size, num_workers):
    """Steps of a mock run with an epoch size (rounded up), else None (it never ends)."""
    if not (samples_per_epoch and num_epochs):
        return None
    return -(-int(num_epochs) * int(samples_per_epoch) // (int(batch_size) * int(num_workers)))


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a (re)started run does.

    Attributes:
      start_step: the step of the checkpoint it resumes (0 without one).
      checkpoint: that checkpoint's path, on rank 0 (None elsewhere or without one).
      last_step: the step it stops at; None when nothing ends it.
      reason: which limit sets ``last_step`` (a phrase naming the flag).
      epoch_size: this worker's records per epoch (None for generated data).
      data_ends_first: the data ends before ``--stop_at_step``: the trainer stops every worker
        there (else the workers with more data would wait in a collective for the others).
    """
    start_step: int
    checkpoint: Optional[str]
    last_step: Optional[int]
    reason: str
    epoch_size: Optional[int]
    data_ends_first: bool = False

    @property
    def complete(self):
        """True when the checkpoint is already at or past the run's last step."""
        return self.last_step is not None and self.start_step >= self.last_step


def _exchange(cluster, step, epoch_size):
    """(rank 0's step, every worker's epoch size) on every worker."""
    if not cluster.distributed:
        return step, [epoch_size]
    from horovod.tensorflow import functions as hvd_functions
    gathered = hvd_functions.allgather_object((step, epoch_size), name="fastnn_run_plan")
    return gathered[0][0], [g[1] for g in gathered]


def plan_run(cluster, train_dir, *, batch_size, stop_at_step=None, num_epochs=None,
             files: Optional[Sequence[str]] = None, mock_steps=None):
    """The :class:`RunPlan` of this worker.

    Args:
      cluster: :class:`images.utils.distributed.Cluster`.
      train_dir: where the run's checkpoints are.
      batch_size: examples per step per worker.
      stop_at_step: ``--stop_at_step`` when a StopAtStepHook enforces it, else None or 0.
      num_epochs: passes over the data.
      files: the training files (every worker's full list), None for generated data.
      mock_steps: steps that generated data lasts (None: forever).

    Raises:
      ValueError: the files give no full batch in ``num_epochs`` epochs.
    """
    latest = tf.train.latest_checkpoint(train_dir) if cluster.is_chief and train_dir else None
    step = (checkpoint_step(latest) or 0) if latest else 0
    epoch_size = (positions.worker_epoch_size(files, cluster.size, cluster.rank)
                  if files else None)
    step, sizes = _exchange(cluster, step, epoch_size)
    ends = []
    if stop_at_step:
        ends.append((int(stop_at_step), "--stop_at_step=%d" % stop_at_step))
    if files and num_epochs:
        end = positions.data_end_step(sizes, num_epochs, batch_size)
        if end == 0:  # the partial last batch is dropped: there is no step to train
            raise ValueError(
                "--num_epochs=%d of %s record(s) per worker gives no full batch of %d: lower "
                "--batch_size or raise --num_epochs" % (
                    num_epochs, "/".join(str(n) for n in sizes), batch_size))
        ends.append((end, "the end of --num_epochs=%d (%s record(s) per epoch per worker, "
                          "batch %d)" % (num_epochs, "/".join(str(n) for n in sizes),
                                         batch_size)))
    elif mock_steps:
        ends.append((int(mock_steps), "the end of --num_epochs=%s of generated data"
                     % num_epochs))
    last, reason = min(ends) if ends else (None, "nothing: it runs until stopped")
    data_first = bool(ends) and (not stop_at_step or last < int(stop_at_step))
    return RunPlan(int(step), latest, last, reason, epoch_size, data_first)


def completion_message(plan, train_dir):
    """The line a finished run prints instead of training."""
    return ("run complete: %s holds a checkpoint at step %d%s, at or past the run's last step "
            "%d (%s); nothing to train, no file changed. Raise --stop_at_step or --num_epochs "
            "to train further, or give a new --train_dir to start again"
            % (train_dir, plan.start_step,
               " (%s)" % os.path.basename(plan.checkpoint) if plan.checkpoint else "",
               plan.last_step, plan.reason))


def data_end_hooks(plan):
    """``[hook]`` stopping every worker where the data ends, when that comes before
    ``--stop_at_step``; else ``[]``."""
    if plan.last_step is None or not plan.data_ends_first:
        return []
    return [tf.train.StopAtStepHook(last_step=plan.last_step)]
