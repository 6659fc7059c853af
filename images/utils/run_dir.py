"""The training folder (``--train_dir``): its default, what a run left there, and who may resume it.

A run writes ``flags.json`` into its folder (:func:`images.training.write_run_flags`) with the
flags as given and, under ``resolved``, what they came to: the model, dataset, class count, task
type, image size, preprocessing and so on.  A later run in the same folder resumes its checkpoint,
so it must train the same thing: :func:`check_compatible` refuses, in one line, a run of another
model, dataset, class count or task type.  Evaluation and export read the same record
(:func:`read_resolved`) to default what they were not told.
"""
import json
import os
import tempfile

RUN_RECORD = "flags.json"

# What a resumed run must share with the run that wrote the checkpoint.
SAFETY_KEYS = ("model_name", "dataset_name", "num_classes", "task_type")


def default_train_dir(model_name, task_type="pretrain", temp_dir=None):
    """``<temp dir>/fastnn_train/<model_name>`` (``..._finetune`` for finetuning).

    One folder per model and task, so that the README's examples, run one after the other, do
    not resume each other's checkpoints (a finetune run reads the pretrain folder as
    ``--model_dir``).  The temporary folder is Python's (``$TMPDIR`` or ``/tmp``).
    """
    name = model_name + ("_finetune" if task_type == "finetune" else "")
    return os.path.join(temp_dir or tempfile.gettempdir(), "fastnn_train", name)


def _record_path(path):
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    return os.path.join(folder, RUN_RECORD)


def read_run_record(path):
    """The ``flags.json`` of the folder ``path`` (or of the checkpoint file ``path``), or None."""
    try:
        with open(_record_path(path), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_resolved(path):
    """The resolved settings of the run that trained in ``path``; ``{}`` when unknown.

    Records written before ``resolved`` existed give what their flags say for sure (model,
    dataset, task type, image size, preprocessing, grayscale).
    """
    record = read_run_record(path)
    if record is None:
        return {}
    if isinstance(record.get("resolved"), dict):
        return record["resolved"]
    flags = record.get("flags") or {}
    older = {"model_name": flags.get("model_name"), "dataset_name": flags.get("dataset_name"),
             "task_type": flags.get("task_type"), "image_size": flags.get("train_image_size"),
             "preprocessing_name": flags.get("preprocessing_name"),
             "use_grayscale": flags.get("use_grayscale")}
    return {k: v for k, v in older.items() if v is not None}


def run_defaults(path, wanted):
    """Values for flags the user left out, from the run that trained in ``path``.

    Args:
      path: the checkpoint folder, or a checkpoint file in it.
      wanted: ``{flag name: key of the resolved settings}`` for the flags not given.

    Returns:
      ``{flag name: value}`` for those the run's record knows.
    """
    resolved = read_resolved(path)
    return {flag: resolved[key] for flag, key in wanted.items()
            if resolved.get(key) not in (None, "")}


def check_compatible(train_dir, resolved, has_checkpoint):
    """Refuses to resume a run in ``train_dir`` that trained something else.

    Args:
      train_dir: the new run's folder.
      resolved: the new run's resolved settings (``SAFETY_KEYS`` among them).
      has_checkpoint: ``train_dir`` holds a checkpoint (which the new run would resume).

    Raises:
      ValueError: one line naming what differs, both values, and what to do.
    """
    if not has_checkpoint:
        return
    before = read_resolved(train_dir)
    differ = [k for k in SAFETY_KEYS
              if k in before and k in resolved and before[k] != resolved[k]]
    if not differ:
        return
    raise ValueError(
        "--train_dir %s holds a checkpoint of another run (%s); this run has %s. Give this run "
        "a new --train_dir (or remove %s to start over)" % (
            train_dir, ", ".join("%s=%s" % (k, before[k]) for k in differ),
            ", ".join("%s=%s" % (k, resolved[k]) for k in differ), train_dir))


_RESTORE_MARKERS = ("Restoring from checkpoint failed", "not found in checkpoint",
                    "Assign requires shapes of both tensors to match")


def _misfit_message(train_dir, detail):
    return ("the checkpoint in --train_dir %s does not fit this model (%s); it was written by "
            "another run: give this run a new --train_dir (or remove %s to start over)"
            % (train_dir, detail[:200] or "variables differ", train_dir))


def restore_error_message(error, train_dir):
    """One line for a checkpoint in ``train_dir`` that does not fit the graph, else None."""
    text = str(error)
    if not any(marker in text for marker in _RESTORE_MARKERS):
        return None
    detail = next((line.strip() for line in text.splitlines()
                   if "not found in checkpoint" in line or "shapes" in line), "")
    return _misfit_message(train_dir, detail)


def checkpoint_misfit(checkpoint, train_dir, network_fn, image_size, channels):
    """One line when ``checkpoint`` does not hold this network, else None.

    A restarted run that finds its last step already reached trains nothing and builds no
    graph; without the run's record, only this check says the checkpoint is the same model's.

    Args:
      checkpoint: the checkpoint's path prefix (the latest in ``train_dir``).
      train_dir: the folder holding it, for the message.
      network_fn: the network as the trainer builds it (``fn(images) -> (logits, end_points)``).
      image_size: the input side.
      channels: the input depth.
    """
    import tensorflow.compat.v1 as tf
    stored = dict(tf.train.list_variables(checkpoint))
    with tf.Graph().as_default():
        network_fn(tf.placeholder(tf.float32, [1, image_size, image_size, channels]))
        wanted = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    for name, shape in sorted(wanted.items()):
        if name not in stored:
            return _misfit_message(train_dir, "%s not found in checkpoint" % name)
        if list(stored[name]) != shape:
            return _misfit_message(train_dir, "%s has shape %s there, %s in this model"
                                   % (name, list(stored[name]), shape))
    return None
