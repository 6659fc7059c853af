"""Finetuning: warm-start the model's variables from a checkpoint through an assignment map.

Unlike FastNN (trainable variables only, no shape checks), every model variable is restored,
batch-norm moving statistics included.  A classifier whose class count differs from the
checkpoint's is left out automatically; any other shape mismatch is an error that lists the
variables.  A checkpoint already in train_dir wins: the run resumes instead.
"""
import logging
import os

import tensorflow.compat.v1 as tf

log = logging.getLogger("fastnn")


class CheckpointMismatchError(ValueError):
    """Shapes in the checkpoint differ from the model's in a way that cannot be finetuned."""


def resolve_checkpoint(model_dir, ckpt_file_name=None):
    """The checkpoint path in ``model_dir``: ``ckpt_file_name`` or the folder's latest.

    Raises:
      FileNotFoundError: no such checkpoint; says what was looked for.
    """
    if ckpt_file_name:
        path = ckpt_file_name if os.path.isabs(ckpt_file_name) else os.path.join(
            model_dir, ckpt_file_name)
        if not tf.train.checkpoint_exists(path):
            raise FileNotFoundError("no checkpoint %s (looked for %s.index or %s)"
                                    % (path, path, path))
        return path
    if tf.gfile.IsDirectory(model_dir):
        latest = tf.train.latest_checkpoint(model_dir)
        if latest:
            return latest
    elif tf.train.checkpoint_exists(model_dir):
        return model_dir
    raise FileNotFoundError("no checkpoint in %s; give --ckpt_file_name or a folder with a "
                            "'checkpoint' file" % model_dir)


def _is_classifier_mismatch(model_shape, ckpt_shape, num_classes):
    return (len(model_shape) == len(ckpt_shape) and model_shape[:-1] == ckpt_shape[:-1]
            and model_shape[-1] == num_classes and ckpt_shape[-1] != num_classes)


def build_assignment_map(checkpoint_path, variables, num_classes=None):
    """Maps checkpoint names to model variables, checking every shape.

    Args:
      checkpoint_path: the checkpoint to read.
      variables: model variables to restore (weights and batch-norm statistics).
      num_classes: the model's class count; a variable whose shape differs from the checkpoint's
        only in a last dimension equal to it is a classifier and is skipped.

    Returns:
      ``(assignment_map {ckpt name: variable}, skipped names, missing names)``.

    Raises:
      CheckpointMismatchError: lists each variable with both shapes.
    """
    reader = tf.train.load_checkpoint(checkpoint_path)
    ckpt_shapes = reader.get_variable_to_shape_map()
    assignment, skipped, missing, bad = {}, [], [], []
    for var in variables:
        name = var.op.name
        if name not in ckpt_shapes:
            missing.append(name)
            continue
        model_shape = var.shape.as_list()
        ckpt_shape = list(ckpt_shapes[name])
        if model_shape == ckpt_shape:
            assignment[name] = var
        elif num_classes and _is_classifier_mismatch(model_shape, ckpt_shape, num_classes):
            skipped.append("%s %s -> %s" % (name, ckpt_shape, model_shape))
        else:
            bad.append("  %s: checkpoint %s, model %s" % (name, ckpt_shape, model_shape))
    if bad:
        raise CheckpointMismatchError(
            "checkpoint %s does not fit the model:\n%s\nleave these variables out with "
            "--checkpoint_exclude_scopes=<scope>[,<scope>] (or check --model_name)"
            % (checkpoint_path, "\n".join(bad)))
    return assignment, skipped, missing


def warm_start_init_fn(model_dir, ckpt_file_name, train_dir, num_classes=None, variables=None):
    """Returns a ``Scaffold`` ``init_fn`` that restores the model from a checkpoint, or None.

    None when ``train_dir`` already has a checkpoint (the session resumes from it instead; the log
    says so).
    """
    if tf.train.latest_checkpoint(train_dir):
        log.info("train_dir %s already holds a checkpoint: resuming from it, not warm-starting "
                 "from %s", train_dir, model_dir)
        return None
    path = resolve_checkpoint(model_dir, ckpt_file_name)
    if variables is None:
        variables = tf.model_variables()
    assignment, skipped, missing = build_assignment_map(path, variables, num_classes)
    for line in skipped:
        log.info("class count differs from the checkpoint's: not restoring classifier %s", line)
    if missing:
        raise CheckpointMismatchError(
            "checkpoint %s lacks %d model variable(s), e.g. %s; check --model_name"
            % (path, len(missing), ", ".join(missing[:5])))
    log.info("warm-starting %d variables from %s", len(assignment), path)
    saver = tf.train.Saver(assignment)

    def init_fn(scaffold, session):
        del scaffold
        saver.restore(session, path)

    return init_fn
