"""Graph-building pieces of the trainer, taking plain arguments (the entry point reads flags)."""
import json
import logging
import os
import sys
import warnings

import tensorflow.compat.v1 as tf

from images.datasets import dataset_factory, pipeline
from images.models.common import features_from
from images.utils import losses, precision

log = logging.getLogger("fastnn")


def setup_logging(rank=0, verbose=True):
    """One log format for every entry point; each line carries the worker's rank."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%%(asctime)s [rank %d] %%(levelname)s %%(message)s" % rank, "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False
    tf.get_logger().setLevel(logging.WARNING)
    # TF 2.15's legacy layers, used by tf-slim, warn on every layer they build.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(tensorflow|tf_keras|keras)")


def write_run_flags(train_dir, flag_values, argv=None):
    """Writes the resolved flags of a run into ``train_dir``.

    ``flags.txt`` is a flag file: ``python train_image_classifiers.py --flagfile=flags.txt`` repeats
    the run.  ``flags.json`` holds the same values for programs.  Both are written under a
    temporary name and renamed.
    """
    os.makedirs(train_dir, exist_ok=True)
    lines = ["--%s=%s" % (k, v) for k, v in sorted(flag_values.items()) if v is not None]
    for name, text in (("flags.txt", "\n".join(lines) + "\n"),
                       ("flags.json", json.dumps({"flags": flag_values, "argv": argv or []},
                                                 indent=1, sort_keys=True, default=str) + "\n")):
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
                       cluster, seed, labels_offset, input_options, samples_per_epoch=None):
    """The ``tf.data.Dataset`` of ``(images, labels)`` for one worker.

    Mock data is a fixed random batch per worker (``channels`` wide), repeated for
    ``num_epochs`` epochs of ``samples_per_epoch`` examples over all workers, or forever when the
    epoch size is not given.  File datasets go through
    :func:`images.datasets.pipeline.build_dataset`, sharded over the cluster's workers.
    ``input_options`` holds the pipeline's tuning arguments.
    """
    if record.is_mock:
        num_batches = None
        if samples_per_epoch and num_epochs:
            num_batches = -(-num_epochs * samples_per_epoch // (batch_size * cluster.size))
        return pipeline.build_mock_dataset(image_size, channels, batch_size, num_classes,
                                           seed=(seed or 0) + cluster.rank,
                                           num_batches=num_batches)
    files = dataset_factory.resolve_files(record, dataset_dir, split_name, file_names)
    log.info("reading %d file(s) for split %r from %s", len(files), split_name, dataset_dir)
    return pipeline.build_dataset(
        files, record.parse_fn(), preprocessing_fn, image_size, batch_size, is_training,
        num_classes, num_epochs=num_epochs, num_workers=cluster.size, worker_index=cluster.rank,
        seed=seed, labels_offset=labels_offset, **input_options)


def build_network(network_fn, images, compute_dtype=tf.float32):
    """Runs the network in ``compute_dtype`` (float32 master weights) and returns float32 logits.

    ``network_fn`` is a registry network (:func:`images.models.model_factory.get_network_fn`)
    or any TF-slim network function of :mod:`images.models.nets`: an output of rank 4 (slim's
    ``[batch, 1, 1, n]`` logits or pre-logits features) becomes ``[batch, n]``.

    Returns:
      ``(logits float32, end_points, aux_logits float32 or None)``.
    """
    with precision.compute_dtype_scope(compute_dtype):
        logits, end_points = network_fn(tf.cast(images, compute_dtype))
        logits = features_from(logits, name="flat_logits")
    aux = end_points.get("AuxLogits")
    return (tf.cast(logits, tf.float32), end_points,
            None if aux is None else tf.cast(aux, tf.float32))


NON_FINITE_MARKER = "fastnn: non-finite training loss"


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the step's update was not applied."""


def build_train_op(optimizer, loss, global_step, var_list=None):
    """``optimizer.minimize`` that also runs the batch-norm moving-average updates.

    Every update depends on a check of ``loss``: a NaN or infinite loss fails the step before
    any variable changes, so the weights in the session, and every checkpoint, stay finite.
    """
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    loss_check = tf.debugging.check_numerics(loss, NON_FINITE_MARKER)
    grads_and_vars = optimizer.compute_gradients(loss, var_list=var_list)
    missing = [v.op.name for g, v in grads_and_vars if g is None]
    if missing:
        log.warning("no gradient reaches %d variable(s), e.g. %s", len(missing), missing[:3])
    with tf.control_dependencies([loss_check]):
        apply_op = optimizer.apply_gradients(grads_and_vars, global_step=global_step)
    with tf.control_dependencies([apply_op, loss_check] + update_ops):
        return tf.no_op(name="train_op")


def run_training_loop(sess, train_op, global_step):
    """Runs ``train_op`` until the session says stop; returns the last global step reached.

    Raises:
      NonFiniteLossError: naming the step whose loss was NaN or infinite.
    """
    step = sess.run_step_fn(lambda step_context: step_context.session.run(global_step))
    while not sess.should_stop():
        try:
            sess.run(train_op)
            step += 1  # every run advances the global step by one
        except tf.errors.InvalidArgumentError as e:
            if NON_FINITE_MARKER not in str(e):
                raise
            raise NonFiniteLossError(
                "loss is NaN or infinite at step %d; training stopped before applying that "
                "step's update. The last checkpoint in train_dir holds finite weights. Lower "
                "--learning_rate, set --max_gradient_norm, or use --loss_scale=dynamic with "
                "mixed precision." % (step + 1)) from None
    return step


def model_statistics(variables):
    """Lines describing each variable's shape and the total parameter count."""
    lines, total = [], 0
    for v in variables:
        n = v.shape.num_elements() or 0
        total += n
        lines.append("%-70s %-20s %d" % (v.op.name, v.shape.as_list(), n))
    lines.append("total parameters: %d (%.2f M)" % (total, total / 1e6))
    return lines


