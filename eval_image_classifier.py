#!/usr/bin/env python
"""Evaluates a checkpoint: top-1 and top-5 accuracy over a whole dataset split.

    python eval_image_classifier.py --checkpoint_path=/tmp/train --dataset_name=digits \
        --dataset_dir=/tmp/digits --dataset_split_name=test --model_name=lenet

Flags left out (model, dataset, image size, preprocessing, class count, ...) default to what the
trainer recorded in the checkpoint's folder (``flags.json``), so ``--checkpoint_path=<train_dir>``
alone evaluates a run as it was trained; the trainer's ``--eval_files`` are evaluated unless a
split is named.

With ``--eval_interval_secs`` it runs beside a training job, as slim's evaluation loop: every new
checkpoint in the ``--checkpoint_path`` folder is evaluated once and its summaries written for
TensorBoard, until ``--eval_timeout`` seconds pass without a new one.
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from images.utils import onednn  # noqa: E402  (imports no TensorFlow)

ONEDNN = onednn.configure()  # before TensorFlow is imported: it reads the variable once

from absl import app, flags  # noqa: E402

import tensorflow.compat.v1 as tf  # noqa: E402

from images import evaluation, training  # noqa: E402
from images.datasets import pipeline  # noqa: E402
from images.utils import run_dir  # noqa: E402

flags.DEFINE_string("checkpoint_path", None, "Checkpoint file, or a folder (its latest).")
flags.DEFINE_string("model_name", None, "Network registry name. Default: the training run's.")
flags.DEFINE_string("dataset_name", None, "Dataset registry name. Default: the training run's.")
flags.DEFINE_string("dataset_dir", None, "Folder of the TFRecord files. Default: the training "
                    "run's.")
flags.DEFINE_string("dataset_split_name", "test", "Split to evaluate.")
flags.DEFINE_string("eval_files", None, "Comma-separated files (or glob patterns) inside "
                    "--dataset_dir to evaluate instead of a split (FastNN's flag). Default: the "
                    "training run's --eval_files when no --dataset_split_name is given.")
flags.DEFINE_string("eval_dir", None, "Where the summary goes (default: <checkpoint "
                    "folder>/eval_<split>).")
flags.DEFINE_integer("batch_size", 100, "Examples per batch.")
flags.DEFINE_integer("eval_image_size", None, "Input side; defaults to the training run's, else "
                     "the model's.")
flags.DEFINE_string("preprocessing_name", None, "Defaults to the training run's, else the "
                    "model's.")
flags.DEFINE_integer("num_classes", None, "Classes of the mock dataset. Default: the training "
                     "run's.")
flags.DEFINE_integer("labels_offset", None, "Subtracted from stored labels; defaults to the "
                     "training run's, else the dataset's.")
flags.DEFINE_boolean("use_grayscale", False, "Convert images to one channel, as in training "
                     "(default: as the training run did).")
flags.DEFINE_integer("max_num_batches", None, "Evaluate at most this many batches.")
flags.DEFINE_float("moving_average_decay", None, "Evaluate the weights' moving averages kept "
                   "with this decay during training.")
flags.DEFINE_integer("num_preprocessing_threads", 4, "Parallel decode calls.")
flags.DEFINE_boolean("skip_corrupt_records", False, "Skip (and log) unreadable records and "
                     "undecodable images instead of stopping; the result says how many examples "
                     "were scored.")
flags.DEFINE_string("output_json", None, "Also write the result as JSON to this file.")
flags.mark_flags_as_required(["checkpoint_path"])
flags.DEFINE_integer("eval_interval_secs", None, "Continuous mode: poll the --checkpoint_path "
                     "folder this often and evaluate every new checkpoint once (slim's "
                     "evaluation loop). Unset: evaluate one checkpoint and exit.")
flags.DEFINE_integer("eval_timeout", None, "Continuous mode: stop after this many seconds "
                     "without a new checkpoint (default: wait forever).")
flags.register_validator("eval_interval_secs", lambda v: v is None or v > 0,
                         message="--eval_interval_secs must be > 0")
flags.register_validator("eval_timeout", lambda v: v is None or v > 0,
                         message="--eval_timeout must be > 0")
flags.register_multi_flags_validator(
    ["eval_timeout", "eval_interval_secs"],
    lambda f: f["eval_timeout"] is None or f["eval_interval_secs"] is not None,
    message="--eval_timeout ends the continuous mode: give --eval_interval_secs too")
flags.register_validator("batch_size", lambda v: v > 0, message="--batch_size must be > 0")
FLAGS = flags.FLAGS


# Flag -> the key of the training run's resolved settings it defaults to.
FROM_TRAINING_RUN = {"model_name": "model_name", "dataset_name": "dataset_name",
                     "dataset_dir": "dataset_dir", "eval_image_size": "image_size",
                     "preprocessing_name": "preprocessing_name", "num_classes": "num_classes",
                     "labels_offset": "labels_offset", "use_grayscale": "use_grayscale"}


def apply_training_run_defaults():
    """Fills the flags left out from the training run's ``flags.json``; logs what it took.

    Raises:
      ValueError: the model or dataset is still unknown (no record, and not given).
    """
    wanted = {f: k for f, k in FROM_TRAINING_RUN.items() if not FLAGS[f].present}
    if not FLAGS["dataset_split_name"].present and not FLAGS["eval_files"].present:
        wanted["eval_files"] = "eval_files"
    run = run_dir.read_resolved(FLAGS.checkpoint_path)
    if FLAGS.dataset_name and FLAGS.dataset_name != run.get("dataset_name"):
        for name in ("dataset_dir", "labels_offset", "eval_files"):  # another dataset's
            wanted.pop(name, None)
    found = run_dir.run_defaults(FLAGS.checkpoint_path, wanted)
    for name, value in found.items():
        setattr(FLAGS, name, value)
    if found:
        training.log.info("from the training run's %s: %s", run_dir.RUN_RECORD,
                          ", ".join("%s=%s" % kv for kv in sorted(found.items())))
    trained = run.get("image_size")
    if trained and FLAGS.eval_image_size and FLAGS.eval_image_size != trained:
        training.log.warning("evaluating at %dx%d a model trained at %dx%d",
                             FLAGS.eval_image_size, FLAGS.eval_image_size, trained, trained)
    missing = [f for f in ("model_name", "dataset_name") if not getattr(FLAGS, f)]
    if missing:
        raise ValueError("give %s: no %s from the trainer beside checkpoint %s to take them "
                         "from" % (" and ".join("--" + f for f in missing), run_dir.RUN_RECORD,
                                   FLAGS.checkpoint_path))


def main(argv):
    del argv
    training.setup_logging()
    training.log.info("%s", ONEDNN)
    try:
        apply_training_run_defaults()
    except ValueError as e:
        training.log.error("%s", e)
        return 2
    eval_dir = FLAGS.eval_dir
    if eval_dir is None:
        base = FLAGS.checkpoint_path if (os.path.isdir(FLAGS.checkpoint_path) or
                                         FLAGS.eval_interval_secs) else (
            os.path.dirname(FLAGS.checkpoint_path))
        eval_dir = os.path.join(base, "eval_" + FLAGS.dataset_split_name)
    try:
        if FLAGS.eval_interval_secs:
            result = _continuous(eval_dir)
        else:
            result = evaluation.evaluate(FLAGS.checkpoint_path, eval_dir=eval_dir,
                                         **_evaluator_args())
            _report(result)
    except (ValueError, FileNotFoundError) as e:
        training.log.error("%s", e)
        return 2
    except tf.errors.OpError as e:
        message = pipeline.data_error_message(e)  # corrupt file, bad image or label
        if message is None:
            raise
        training.log.error("bad input data: %s", message)
        return 2
    if FLAGS.output_json:
        with open(FLAGS.output_json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


def _evaluator_args():
    return dict(model_name=FLAGS.model_name, dataset_name=FLAGS.dataset_name,
                dataset_dir=FLAGS.dataset_dir, split_name=FLAGS.dataset_split_name,
                batch_size=FLAGS.batch_size, image_size=FLAGS.eval_image_size,
                preprocessing_name=FLAGS.preprocessing_name, num_classes=FLAGS.num_classes,
                labels_offset=FLAGS.labels_offset, use_grayscale=FLAGS.use_grayscale,
                max_num_batches=FLAGS.max_num_batches,
                moving_average_decay=FLAGS.moving_average_decay,
                num_preprocessing_threads=FLAGS.num_preprocessing_threads,
                skip_corrupt_records=FLAGS.skip_corrupt_records, file_names=FLAGS.eval_files)


def _report(result):
    print("eval/%s top1=%.4f top5=%.4f over %d examples (checkpoint %s, step %d)"
          % (FLAGS.dataset_split_name if not FLAGS.eval_files else "eval_files", result["top1"],
             result["top5"], result["count"], result["checkpoint"], result["global_step"]),
          flush=True)


def _continuous(eval_dir):
    """--eval_interval_secs: every new checkpoint of the folder, once; the list of results."""
    if not os.path.isdir(FLAGS.checkpoint_path) and (
            os.path.isfile(FLAGS.checkpoint_path) or
            os.path.exists(FLAGS.checkpoint_path + ".index")):
        raise ValueError("--eval_interval_secs watches a training folder: --checkpoint_path %s "
                         "is a file; give its folder" % FLAGS.checkpoint_path)
    evaluator = evaluation.Evaluator(**_evaluator_args())
    return evaluation.evaluate_continuously(
        FLAGS.checkpoint_path, evaluator, interval_secs=FLAGS.eval_interval_secs,
        timeout_secs=FLAGS.eval_timeout, eval_dir=eval_dir, on_result=_report)


if __name__ == "__main__":
    app.run(main)
