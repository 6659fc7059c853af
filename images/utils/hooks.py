"""Session hooks selected by ``--hooks``."""
import logging
import time

import tensorflow.compat.v1 as tf

from images.utils import progress

HOOK_NAMES = ("StopAtStepHook", "ProfilerHook", "LoggingTensorHook", "CheckpointSaverHook")

log = logging.getLogger("fastnn")


def parse_hook_names(spec):
    """Splits ``--hooks`` into canonical hook names, in any letter case as FastNN accepts them.

    Raises:
      ValueError: an unknown name; the message lists the valid ones.
    """
    canonical = {n.lower(): n for n in HOOK_NAMES}
    names = [n.strip() for n in (spec or "").split(",") if n.strip()]
    unknown = [n for n in names if n.lower() not in canonical]
    if unknown:
        raise ValueError("unknown hook(s) %s in --hooks; valid: %s"
                         % (", ".join(unknown), ", ".join(HOOK_NAMES)))
    return [canonical[n.lower()] for n in names]


class ThroughputLoggingHook(tf.train.SessionRunHook):
    """FastNN's LoggingTensorHook: step, progress, loss, accuracy, learning rate, throughput, ETA.

    Logs one line at every global step that is a multiple of ``every_n_iter`` and at the run's
    last step; with ``total_steps`` known each line also gives the share done and the ETA.  On
    the chief it writes ``throughput/samples_per_sec`` and ``throughput/sec_per_step`` summaries.
    """

    def __init__(self, tensors, every_n_iter, global_batch_size, summary_dir=None,
                 total_steps=None):
        self._tensors = tensors
        self._every = max(1, int(every_n_iter))
        self._batch = global_batch_size
        self._summary_dir = summary_dir
        self._total = total_steps
        self._last_time = None
        self._last_step = None
        self._writer = None
        self._pending = None  # the last step's values when it was not logged

    def begin(self):
        if self._summary_dir:
            self._writer = tf.summary.FileWriterCache.get(self._summary_dir)

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._tensors)

    def after_run(self, run_context, run_values):
        values = run_values.results
        step = int(values["global_step"]) + 1
        now = time.time()
        if step % self._every == 0 or step == self._total:
            self._log(step, values, now)
            self._pending = None
        else:
            self._pending = (step, values, now)
        if self._last_time is None:
            # The first step of a session carries one-off set-up work; rates start after it.
            self._last_time, self._last_step = now, step

    def _log(self, step, values, now):
        line = "step=%d" % step
        if self._total:
            line += ", " + progress.share_text(step, self._total)
        line += "".join(", %s=%.5g" % (k, float(values[k]))
                        for k in ("loss", "accuracy", "learning_rate") if k in values)
        if self._last_time is not None and step > self._last_step and now > self._last_time:
            elapsed, steps = now - self._last_time, step - self._last_step
            sec_per_step = elapsed / steps
            samples_per_sec = self._batch * steps / elapsed
            line += ", sec/step=%.4f, samples/sec=%.1f" % (sec_per_step, samples_per_sec)
            if self._total:
                line += ", ETA " + progress.format_duration(
                    max(0, self._total - step) * sec_per_step)
            if self._writer is not None:
                summary = tf.Summary(value=[
                    tf.Summary.Value(tag="throughput/samples_per_sec",
                                     simple_value=samples_per_sec),
                    tf.Summary.Value(tag="throughput/sec_per_step", simple_value=sec_per_step)])
                self._writer.add_summary(summary, step)
            self._last_time, self._last_step = now, step
        log.info("%s", line)

    def end(self, session):
        if self._pending is not None:  # the run's last step, off the logging interval
            self._log(*self._pending)
            self._pending = None
        if self._writer is not None:
            self._writer.flush()


def build_hooks(names, *, log_tensors, train_dir, stop_at_step,
                log_every_n_iters, profile_every_n_iters, profile_this_worker, is_chief,
                global_batch_size, saver, save_checkpoints_steps, total_steps=None,
                summary_dir=None, profile_dir=None):
    """Builds the hooks named in ``names``.

    Checkpoints and throughput summaries are written by the chief only, profiles by the worker
    whose rank is ``profile_at_task``.  ``total_steps`` (the step the run ends at, when known)
    gives the log lines their share done and ETA; summaries go to ``summary_dir`` and profiles
    to ``profile_dir`` (both default to ``train_dir``).

    Returns:
      A list of ``SessionRunHook`` for ``MonitoredTrainingSession(hooks=...)``.
    """
    names = set(names)
    hooks = []
    if "StopAtStepHook" in names and stop_at_step:
        hooks.append(tf.train.StopAtStepHook(last_step=stop_at_step))
    if "LoggingTensorHook" in names and log_every_n_iters > 0:
        hooks.append(ThroughputLoggingHook(
            log_tensors, log_every_n_iters, global_batch_size,
            summary_dir=(summary_dir or train_dir) if is_chief else None,
            total_steps=total_steps))
    if "ProfilerHook" in names and profile_every_n_iters > 0 and profile_this_worker:
        # Chrome traces (timeline-<step>.json) open in chrome://tracing or Perfetto.
        hooks.append(tf.train.ProfilerHook(save_steps=profile_every_n_iters,
                                           output_dir=profile_dir or train_dir,
                                           show_memory=True))
    if "CheckpointSaverHook" in names and is_chief:
        hooks.append(tf.train.CheckpointSaverHook(train_dir, save_steps=save_checkpoints_steps,
                                                  saver=saver))
    return hooks
