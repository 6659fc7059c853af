"""Graph-building pieces of the trainer, taking plain arguments (the entry point reads flags)."""
import contextlib
import json
import logging
import os
import sys
import warnings

import tensorflow.compat.v1 as tf

from images.datasets import dataset_factory, pipeline
from images.models.common import features_from
from images.utils import finite_guard, keyed_random, losses, precision, resume_state

log = logging.getLogger("fastnn")


class _DeprecationFilter(logging.Filter):
    """Drops TensorFlow's deprecation notices (about TF's own internals, not the user's code)."""

    def filter(self, record):
        return not (record.filename == "deprecation.py"
                    or "Instructions for updating" in record.getMessage())


def setup_logging(rank=0, verbose=True):
    """One log format for every entry point; each line carries the worker's rank.

    Entry points call this (library code never does): our INFO lines show, TensorFlow's logger
    keeps its warnings but prints each once and drops its deprecation notices, which speak of
    TensorFlow's and tf-slim's internals and, under horovodrun, made up a third of the log.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%%(asctime)s [rank %d] %%(levelname)s %%(message)s" % rank, "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False
    tf_logger = tf.get_logger()
    tf_logger.setLevel(logging.WARNING)
    if tf_logger.handlers and logging.getLogger().handlers:
        # TensorFlow added its own handler before absl put one on the root logger: every
        # TensorFlow warning came out twice.
        tf_logger.propagate = False
    if not any(isinstance(f, _DeprecationFilter) for f in tf_logger.filters):
        tf_logger.addFilter(_DeprecationFilter())
    # TF 2.15's legacy layers, used by tf-slim, warn on every layer they build.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(tensorflow|tf_keras|keras)")


def write_run_flags(train_dir, flag_values, argv=None, resolved=None):
    """Writes the resolved flags of a run into ``train_dir``.

    ``flags.txt`` is a flag file: ``python train_image_classifiers.py --flagfile=flags.txt`` repeats
    the run.  ``flags.json`` holds the same values for programs, and under ``resolved`` what they
    came to (model, dataset, class count, image size, ...: :mod:`images.utils.run_dir`).  Both
    are written under a temporary name and renamed.
    """
    os.makedirs(train_dir, exist_ok=True)
    lines = ["--%s=%s" % (k, v) for k, v in sorted(flag_values.items()) if v is not None]
    record = {"flags": flag_values, "argv": argv or [], "resolved": resolved or {}}
    for name, text in (("flags.txt", "\n".join(lines) + "\n"),
                       ("flags.json", json.dumps(record, indent=1, sort_keys=True,
                                                 default=str) + "\n")):
        path = os.path.join(train_dir, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def session_config(num_intra_threads=0, num_inter_threads=0, log_device_placement=False):
    """A ConfigProto with the thread counts and placement logging asked for."""
    return tf.ConfigProto(intra_op_parallelism_threads=num_intra_threads,
                          inter_op_parallelism_threads=num_inter_threads,
                          log_device_placement=log_device_placement,
                          allow_soft_placement=True)


def make_input_dataset(record, *, dataset_dir, split_name, file_names, preprocessing_fn,
                       image_size, batch_size, is_training, num_classes, channels, num_epochs,
                       cluster, seed, labels_offset, input_options, samples_per_epoch=None,
                       start_step=0, epoch_size=None):
    """The ``tf.data.Dataset`` of ``(images, labels)`` for one worker.

    Mock data is a fixed random batch per worker (``channels`` wide), repeated for
    ``num_epochs`` epochs of ``samples_per_epoch`` examples over all workers, or forever when the
    epoch size is not given.  File datasets go through
    :func:`images.datasets.pipeline.build_dataset`, sharded over the cluster's workers.
    ``input_options`` holds the pipeline's tuning arguments.  A run resumed at ``start_step``
    (training) continues the stream where that step left it; ``epoch_size`` is this worker's
    records per epoch when already counted.
    """
    if record.is_mock:
        num_batches = resume_state.mock_batches(num_epochs, samples_per_epoch, batch_size,
                                                cluster.size)
        return pipeline.build_mock_dataset(
            image_size, channels, batch_size, num_classes, seed=(seed or 0) + cluster.rank,
            num_batches=None if num_batches is None else max(0, num_batches - start_step))
    files = dataset_factory.resolve_files(record, dataset_dir, split_name, file_names)
    log.info("reading %d file(s) for split %r from %s", len(files), split_name, dataset_dir)
    extra = dict(start_batch=start_step, epoch_size=epoch_size) if is_training else {}
    return pipeline.build_dataset(
        files, record.parse_fn(), preprocessing_fn, image_size, batch_size, is_training,
        num_classes, num_epochs=num_epochs, num_workers=cluster.size, worker_index=cluster.rank,
        seed=seed, labels_offset=labels_offset, **input_options, **extra)


def build_network(network_fn, images, compute_dtype=tf.float32, random_key=None):
    """Runs the network in ``compute_dtype`` (float32 master weights) and returns float32 logits.

    ``network_fn`` is a registry network (:func:`images.models.model_factory.get_network_fn`)
    or any TF-slim network function of :mod:`images.models.nets`: an output of rank 4 (slim's
    ``[batch, 1, 1, n]`` logits or pre-logits features) becomes ``[batch, n]``.
    With ``random_key`` (see :func:`step_random_key`) the network's random ops (dropout,
    drop-path) draw from that key instead of from generators that a restart resets.

    Returns:
      ``(logits float32, end_points, aux_logits float32 or None)``.
    """
    with precision.compute_dtype_scope(compute_dtype), (
            keyed_random.keyed_random_ops(random_key) if random_key is not None
            else contextlib.nullcontext()):
        logits, end_points = network_fn(tf.cast(images, compute_dtype))
        logits = features_from(logits, name="flat_logits")
    aux = end_points.get("AuxLogits")
    return (tf.cast(logits, tf.float32), end_points,
            None if aux is None else tf.cast(aux, tf.float32))


def step_random_key(seed, rank, global_step):
    """The key of a step's random ops: the run's seed, the worker and the global step (None
    without a seed: the draws then come from TensorFlow's generators)."""
    if seed is None:
        return None
    return keyed_random.fold(keyed_random.base_key(seed, keyed_random.STEP_SALT, rank),
                             global_step.read_value())


NON_FINITE_MARKER = "fastnn: non-finite training loss"


class NonFiniteLossError(RuntimeError):
    """The training loss, a gradient or an update became NaN or infinite; no checkpoint holds
    the result."""


def build_train_op(optimizer, loss, global_step, var_list=None, check_gradients=None):
    """``optimizer.minimize`` that also runs the batch-norm moving-average updates.

    Every update depends on a check of ``loss`` and of the gradients (``check_gradients``;
    by default unless a dynamic loss scaler owns non-finite gradients and skips such steps): a
    NaN or infinite one fails the step before any variable changes.  After the update every
    float variable is checked (:mod:`images.utils.finite_guard`), so an update that overflows
    fails its step too, before a checkpoint can hold it.
    """
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    loss_check = tf.debugging.check_numerics(loss, NON_FINITE_MARKER)
    grads_and_vars = optimizer.compute_gradients(loss, var_list=var_list)
    missing = [v.op.name for g, v in grads_and_vars if g is None]
    if missing:
        log.warning("no gradient reaches %d variable(s), e.g. %s", len(missing), missing[:3])
    checks = [loss_check]
    if check_gradients is None:
        check_gradients = not finite_guard.scaler_skips_non_finite(optimizer)
    if check_gradients:
        with tf.control_dependencies([loss_check]):  # a bad loss is reported as such
            checks.append(finite_guard.gradients_check(grads_and_vars))
    with tf.control_dependencies(checks):
        apply_op = optimizer.apply_gradients(grads_and_vars, global_step=global_step)
    with tf.control_dependencies([apply_op] + checks + update_ops):
        variables_ok = finite_guard.variables_check()
    with tf.control_dependencies([apply_op, variables_ok] + checks + update_ops):
        return tf.no_op(name="train_op")


def run_training_loop(sess, train_op, global_step, train_dir=None):
    """Runs ``train_op`` until the session says stop; returns the last global step reached.

    Args:
      train_dir: where checkpoints are written (on the worker that writes them): a non-finite
        failure then says what the last checkpoint holds.

    Raises:
      NonFiniteLossError: naming the step whose loss, gradient or update was NaN or infinite.
    """
    step = sess.run_step_fn(lambda step_context: step_context.session.run(global_step))
    while not sess.should_stop():
        try:
            sess.run(train_op)
            step += 1  # every run advances the global step by one
        except tf.errors.InvalidArgumentError as e:
            guard = finite_guard.explain(e, step + 1, train_dir)
            if guard is not None:
                raise NonFiniteLossError(guard) from None
            if NON_FINITE_MARKER not in str(e):
                raise
            raise NonFiniteLossError(
                "loss is NaN or infinite at step %d; training stopped before applying that "
                "step's update. %s Lower --learning_rate, set --max_gradient_norm, or use "
                "--loss_scale=dynamic with mixed precision." % (
                    step + 1, finite_guard.checkpoint_report(train_dir) if train_dir else
                    "The worker that writes checkpoints reports on the last one.")) from None
    return step


def model_statistics(variables, what="parameters"):
    """Lines describing each variable's shape and the total count of ``what``."""
    lines, total = [], 0
    for v in variables:
        n = v.shape.num_elements() or 0
        total += n
        lines.append("%-70s %-20s %d" % (v.op.name, v.shape.as_list(), n))
    lines.append("total %s: %d (%.2f M)" % (what, total, total / 1e6))
    return lines


