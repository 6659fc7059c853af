"""The update step of the large-scale classifier: which gradients are reduced, and how.

* FC shard variables of dist losses (and their optimizer slots): the gradient of the global loss
  is already complete on the worker that owns the shard, so it is applied as is: never averaged,
  and the variables are never broadcast.
* Every other variable (backbone, embedding layer; the FC layer of whole-layer losses): ordinary
  data parallel.  For dist losses each worker's gradient is its share of the gradient of the
  *global* mean loss (its own rows' contribution), so the shares are allreduce-SUMMED; for
  whole-layer losses each worker's loss is its local mean, so the gradients are AVERAGED.
* Regularisation terms are the same on every worker for shared variables and local for shards;
  they are added after the reduction, never reduced.
* With dynamic loss scaling, a non-finite gradient on any worker's shard skips the step on every
  worker (the shard gradients are poisoned everywhere), so workers never diverge.
"""
import logging

import tensorflow.compat.v1 as tf

from images import training

log = logging.getLogger("fastnn")


def piecewise_learning_rate(global_step, base_lr, boundaries, warmup_steps=0, decay=0.1):
    """``base_lr * decay ** (boundaries passed)``, rising linearly from 0 over ``warmup_steps``.

    (PLSC's schedule.  The zoo's :mod:`images.utils.learning_rate` spaces its decays evenly and
    has no list of boundaries.)
    """
    step = tf.cast(global_step, tf.float32)
    boundaries = sorted(int(b) for b in boundaries)
    lr = tf.constant(float(base_lr), tf.float32)
    for b in boundaries:
        lr = tf.where(step >= float(b), lr * decay, lr)
    if warmup_steps > 0:
        lr = tf.where(step < float(warmup_steps), lr * step / float(warmup_steps), lr)
    return tf.identity(lr, name="learning_rate")


def _poison(grad, flag):
    nan = tf.where(flag > 0, tf.constant(float("nan")), tf.constant(0.0))
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values + nan, grad.indices, grad.dense_shape)
    return grad + nan


def _is_finite(grad):
    values = grad.values if isinstance(grad, tf.IndexedSlices) else grad
    return tf.reduce_all(tf.math.is_finite(values))


def build_train_op(optimizer, data_loss, reg_loss, shard_variables, comm, distributed_loss,
                   global_step, dynamic_loss_scale=False, var_list=None):
    """The train op: routed gradients, the optimizer update and the batch-norm updates.

    Args:
      optimizer: a :class:`images.utils.precision.GradientPolicyOptimizer` (loss scaling).
      data_loss: the classification loss (global mean for dist losses, local mean otherwise),
        plus the FC layer's own L2 term, which reaches no shared variable.
      reg_loss: the L2 terms of the shared variables (scalar, the same on every worker), or
        None.
      shard_variables: variables that stay local (empty for whole-layer losses).
      comm: :class:`images.largescale.collectives.Collectives`.
      distributed_loss: whether ``data_loss`` is the global mean (sum the shared gradients).
      global_step: incremented by the update.
      dynamic_loss_scale: make a skipped step consistent across workers.
      var_list: trainable variables (default: all).

    Returns:
      The train op; it fails before any update when the loss is not finite.
    """
    var_list = list(var_list or tf.trainable_variables())
    shard_ids = {id(v) for v in shard_variables}
    loss_check = tf.debugging.check_numerics(data_loss, training.NON_FINITE_MARKER)
    data_grads = optimizer.compute_gradients(data_loss, var_list=var_list)
    reg_grads = tf.gradients(reg_loss, var_list) if reg_loss is not None else [None] * len(
        var_list)
    pairs, shard_grads = [], []
    for (grad, var), reg in zip(data_grads, reg_grads):
        if grad is None and reg is None:
            continue
        if id(var) in shard_ids:
            total = grad if reg is None else (reg if grad is None else _add(grad, reg))
            shard_grads.append(len(pairs))
        else:
            if grad is not None:
                name = "grad_" + var.op.name.replace("/", "_")
                grad = (comm.allreduce_sum_grad(grad, name=name) if distributed_loss
                        else comm.allreduce_mean_grad(grad, name=name))
            total = grad if reg is None else (reg if grad is None else _add(grad, reg))
        pairs.append((total, var))
    missing = [v.op.name for (g, v), r in zip(data_grads, reg_grads) if g is None and r is None]
    if missing:
        log.warning("no gradient reaches %d variable(s), e.g. %s", len(missing), missing[:3])
    if dynamic_loss_scale and comm.active and shard_grads:
        local_bad = tf.cast(tf.logical_not(tf.reduce_all(
            [_is_finite(pairs[i][0]) for i in shard_grads])), tf.float32)
        flag = comm.allreduce_sum(local_bad, name="shard_grads_nonfinite")
        for i in shard_grads:
            pairs[i] = (_poison(pairs[i][0], flag), pairs[i][1])
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies([loss_check]):
        apply_op = optimizer.apply_gradients(pairs, global_step=global_step)
    with tf.control_dependencies([apply_op, loss_check] + update_ops):
        return tf.no_op(name="train_op")


def _add(a, b):
    if isinstance(a, tf.IndexedSlices) or isinstance(b, tf.IndexedSlices):
        if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
            return tf.IndexedSlices(tf.concat([a.values, b.values], 0),
                                    tf.concat([a.indices, b.indices], 0), a.dense_shape)
        return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)
    return a + b
