"""Session hooks selected by ``--hooks``."""
import logging
import time

import tensorflow.compat.v1 as tf

HOOK_NAMES = ("StopAtStepHook", "ProfilerHook", "LoggingTensorHook", "CheckpointSaverHook")

log = logging.getLogger("fastnn")


def parse_hook_names(spec):
    """Splits ``--hooks`` and checks each name; an unknown name raises with the valid ones."""
    names = [n.strip() for n in (spec or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in HOOK_NAMES]
    if unknown:
        raise ValueError("unknown hook(s) %s in --hooks; valid: %s"
                         % (", ".join(unknown), ", ".join(HOOK_NAMES)))
    return names


class ThroughputLoggingHook(tf.train.SessionRunHook):
    """FastNN's LoggingTensorHook: step, loss, accuracy, learning rate, sec/step, samples/sec.

    Every ``every_n_iter`` steps it logs one line and, on the chief,
    writes ``throughput/samples_per_sec`` and ``throughput/sec_per_step`` summaries.
    """

    def __init__(self, tensors, every_n_iter, global_batch_size, summary_dir=None):
        self._tensors = tensors
        self._every = max(1, int(every_n_iter))
        self._batch = global_batch_size
        self._summary_dir = summary_dir
        self._last_time = None
        self._last_step = None
        self._writer = None

    def begin(self):
        if self._summary_dir:
            self._writer = tf.summary.FileWriterCache.get(self._summary_dir)

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._tensors)

    def after_run(self, run_context, run_values):
        values = run_values.results
        step = int(values["global_step"]) + 1
        now = time.time()
        if self._last_time is None:
            self._last_time, self._last_step = now, step
            return
        if step - self._last_step < self._every:
            return
        elapsed = now - self._last_time
        steps = step - self._last_step
        sec_per_step = elapsed / steps
        samples_per_sec = self._batch * steps / elapsed if elapsed > 0 else float("inf")
        extras = "".join(", %s=%.5g" % (k, float(values[k]))
                         for k in ("loss", "accuracy", "learning_rate") if k in values)
        log.info("step=%d%s, sec/step=%.4f, samples/sec=%.1f",
                 step, extras, sec_per_step, samples_per_sec)
        if self._writer is not None:
            summary = tf.Summary(value=[
                tf.Summary.Value(tag="throughput/samples_per_sec", simple_value=samples_per_sec),
                tf.Summary.Value(tag="throughput/sec_per_step", simple_value=sec_per_step)])
            self._writer.add_summary(summary, step)
        self._last_time, self._last_step = now, step

    def end(self, session):
        if self._writer is not None:
            self._writer.flush()


def build_hooks(names, *, log_tensors, train_dir, stop_at_step,
                log_every_n_iters, profile_every_n_iters, profile_this_worker, is_chief,
                global_batch_size, saver, save_checkpoints_steps):
    """Builds the hooks named in ``names``.

    Checkpoints and throughput summaries are written by the chief only, profiles by the worker
    whose rank is ``profile_at_task``.

    Returns:
      A list of ``SessionRunHook`` for ``MonitoredTrainingSession(hooks=...)``.
    """
    names = set(names)
    hooks = []
    if "StopAtStepHook" in names and stop_at_step:
        hooks.append(tf.train.StopAtStepHook(last_step=stop_at_step))
    if "LoggingTensorHook" in names and log_every_n_iters > 0:
        hooks.append(ThroughputLoggingHook(log_tensors, log_every_n_iters, global_batch_size,
                                           summary_dir=train_dir if is_chief else None))
    if "ProfilerHook" in names and profile_every_n_iters > 0 and profile_this_worker:
        # Chrome traces (timeline-<step>.json) open in chrome://tracing or Perfetto.
        hooks.append(tf.train.ProfilerHook(save_steps=profile_every_n_iters,
                                           output_dir=train_dir, show_memory=True))
    if "CheckpointSaverHook" in names and is_chief:
        hooks.append(tf.train.CheckpointSaverHook(train_dir, save_steps=save_checkpoints_steps,
                                                  saver=saver))
    return hooks
