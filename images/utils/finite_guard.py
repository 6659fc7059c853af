"""The finite-update guard: no checkpoint ever holds a NaN or an infinity.

A finite loss does not make a finite update: with ``--learning_rate=1e39`` every gradient is
finite and every weight becomes infinite.  The train op therefore checks, in the same step:

* the gradients, before the update is applied (left to the loss scaler under dynamic loss
  scaling, which skips such a step instead);
* every float variable (weights, optimizer slots, batch-norm statistics) after the update.

A failed check fails the session's ``run``; the checkpoint saver runs after a step only when the
step succeeded, so the non-finite values never reach a file.  :func:`explain` turns the failure
into a message that says what was checked about the last checkpoint.
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

GRADIENT_MARKER = "fastnn: non-finite gradient"
WEIGHT_MARKER = "fastnn: non-finite variable after update"
MARKERS = (GRADIENT_MARKER, WEIGHT_MARKER)
_NAMES_SHOWN = 5


def _all_finite_check(tensors, names, marker):
    flags = tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])
    bad = tf.boolean_mask(tf.constant(names), tf.logical_not(flags))
    return tf.debugging.Assert(tf.reduce_all(flags), [marker, bad], summarize=_NAMES_SHOWN,
                               name="finite_guard")


def scaler_skips_non_finite(optimizer):
    """Whether a dynamic loss scaler inside ``optimizer`` (possibly wrapped by Horovod's
    distributed optimizer) owns non-finite gradients: it skips those steps itself."""
    for _ in range(4):
        config = getattr(optimizer, "loss_scale_config", None)
        if config is not None:
            return config.mode == "dynamic"
        optimizer = getattr(optimizer, "_optimizer", None)
    return False


def gradients_check(grads_and_vars):
    """An op failing with :data:`GRADIENT_MARKER` (and the variables' names) when a gradient
    holds a NaN or an infinity."""
    pairs = [(g, v) for g, v in grads_and_vars if g is not None]
    if not pairs:
        return tf.no_op()
    grads = [g.values if isinstance(g, tf.IndexedSlices) else g for g, _ in pairs]
    return _all_finite_check(grads, [v.op.name for _, v in pairs], GRADIENT_MARKER)


def variables_check(variables=None):
    """An op failing with :data:`WEIGHT_MARKER` when a float variable (default: every global
    one) holds a NaN or an infinity; build it under a control dependency on the update."""
    variables = [v for v in (tf.global_variables() if variables is None else variables)
                 if v.dtype.base_dtype.is_floating]
    if not variables:
        return tf.no_op()
    return _all_finite_check([v.read_value() if hasattr(v, "read_value") else v
                              for v in variables], [v.op.name for v in variables], WEIGHT_MARKER)


def checkpoint_report(train_dir):
    """A sentence on the newest checkpoint in ``train_dir``, its values checked for NaN/inf."""
    latest = tf.train.latest_checkpoint(train_dir) if train_dir else None
    if not latest:
        return "No checkpoint was written."
    try:
        reader = tf.train.load_checkpoint(latest)
        bad = []
        for name, dtype in sorted(reader.get_variable_to_dtype_map().items()):
            if dtype.is_floating and not np.all(np.isfinite(reader.get_tensor(name))):
                bad.append(name)
    except (tf.errors.OpError, ValueError) as e:
        return "The last checkpoint, %s, could not be read to check it (%s)." % (
            latest, str(e).splitlines()[0])
    if bad:
        return ("The last checkpoint, %s, holds non-finite values in %s: resume from an earlier "
                "one (edit %s)." % (latest, ", ".join(bad[:_NAMES_SHOWN]),
                                    os.path.join(train_dir, "checkpoint")))
    return "The last checkpoint, %s, holds finite values only (checked)." % latest


def explain(error, step, train_dir=None):
    """The message for a guard failure at ``step`` (None when ``error`` is not one).

    Args:
      error: the ``InvalidArgumentError`` the session raised.
      step: the step whose update was checked.
      train_dir: where the checkpoints are (None on workers that do not write them).
    """
    text = str(error)
    marker = next((m for m in MARKERS if m in text), None)
    if marker is None:
        return None
    listed = text.split(marker, 1)[1].split("\n")[0].strip(" ]}[{'\"")
    more = "..." in listed
    names = ", ".join(n.strip("'\".") for n in listed.replace("...", " ").split()
                      if n.strip("'\"."))
    if more:
        names += " and others"
    if marker == GRADIENT_MARKER:
        what = ("a gradient is NaN or infinite at step %d (%s); the update was not applied"
                % (step, names))
    else:
        what = ("the update of step %d made %s NaN or infinite; training stopped before any "
                "checkpoint held them" % (step, names))
    where = checkpoint_report(train_dir) if train_dir else (
        "The worker that writes checkpoints reports on the last one.")
    return ("%s. %s Lower --learning_rate, set --max_gradient_norm, or use --loss_scale=dynamic "
            "with mixed precision." % (what, where))
