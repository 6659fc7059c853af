"""What the trainer tells its user while it runs: start-up times, progress, ETA, the outcome.

The trainer marks when graph building starts and ends (:class:`StartupClock`); a hook logs when
the session is ready and training starts (:class:`RunClockHook`); the logging hook
(:class:`images.utils.hooks.ThroughputLoggingHook`) writes step/total and % (:func:`share_text`),
throughput and the ETA (:func:`format_duration`); :func:`outcome_text` says at the end what was trained and saved,
without claiming a checkpoint that was never written.
"""
import logging
import time

import tensorflow.compat.v1 as tf

log = logging.getLogger("fastnn")


def format_duration(seconds):
    """``45s``, ``12m05s``, ``3h07m``: a duration for a log line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    hours, rest = divmod(seconds, 3600)
    return "%dh%02dm" % (hours, rest // 60)


def share_text(step, total_steps):
    """``12.0% of 1000 steps``: how far the run is."""
    return "%.1f%% of %d steps" % (100.0 * min(step, total_steps) / total_steps, total_steps)


class StartupClock:
    """Times the trainer's start-up: graph building, then session creation."""

    def __init__(self):
        self.started = time.time()
        self.graph_built = None

    def mark_graph_built(self):
        self.graph_built = time.time()

    def build_seconds(self):
        return (self.graph_built or time.time()) - self.started


class RunClockHook(tf.train.SessionRunHook):
    """Logs, once the session is ready, the step training starts at and how long set-up took.

    It also follows the global step, so the closing line can say where the run ended however it
    ended (the step limit, or the end of the data, which leaves the loop by an exception).

    Attributes:
      start_step: the global step the session started at.
      start_time: when it was ready (``time.time()``).
      last_step: the global step after the last completed run.
    """

    def __init__(self, clock, total_steps=None, announce=True):
        self._clock = clock
        self._total = total_steps
        self._announce = announce
        self._global_step = None
        self.start_step = 0
        self.start_time = None
        self.last_step = 0

    def begin(self):
        self._global_step = tf.train.get_or_create_global_step()

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._global_step)

    def after_run(self, run_context, run_values):
        self.last_step = int(run_values.results) + 1  # read before this run's increment

    def after_create_session(self, session, coord):
        del coord
        self.start_step = self.last_step = int(session.run(self._global_step))
        self.start_time = time.time()
        if self._announce:
            until = (" until step %d" % self._total) if self._total else ""
            log.info("training starts at step %d%s (graph built in %.1f s, session ready in "
                     "%.1f s)", self.start_step, until, self._clock.build_seconds(),
                     self.start_time - (self._clock.graph_built or self._clock.started))


def outcome_text(first_step, last_step, seconds, train_dir, latest_checkpoint,
                 checkpoint_hook_on):
    """The closing line: steps run, and what the run left in ``train_dir`` (honestly).

    Args:
      first_step: the global step the run started at.
      last_step: the global step it ended at.
      seconds: wall time of the training loop.
      train_dir: the run's folder.
      latest_checkpoint: ``tf.train.latest_checkpoint(train_dir)`` after the run, or None.
      checkpoint_hook_on: CheckpointSaverHook was in ``--hooks``.
    """
    steps = last_step - first_step
    text = "training done at step %d (%d step(s) in %s)" % (last_step, steps,
                                                            format_duration(seconds))
    saved_step = int(latest_checkpoint.rsplit("-", 1)[1]) if latest_checkpoint else None
    if saved_step == last_step:
        return text + "; checkpoint %s" % latest_checkpoint
    if not checkpoint_hook_on:
        why = "no checkpoint saved: CheckpointSaverHook is not in --hooks"
    else:
        why = "the last checkpoint does not hold the final step"
    if saved_step is None:
        return text + "; %s, so %s holds no trained weights" % (why, train_dir)
    return text + "; %s: the latest in %s is from step %d" % (why, train_dir, saved_step)
