#!/usr/bin/env python
"""Exports a checkpoint for serving: a SavedModel in TF Serving's layout plus a frozen GraphDef.

    python export_inference_graph.py --model_name=resnet_v1_50 \
        --checkpoint_path=/tmp/train --output_dir=/tmp/serving/resnet

writes ``/tmp/serving/resnet/<version>/`` (``saved_model.pb``, ``variables/``, ``frozen_graph.pb``)
with the signatures ``serving_default`` (encoded image bytes) and ``predict_images`` (a float
tensor).  See docs/finetune_export.md.  Flags left out (model, image size, preprocessing, class
count, grayscale, channels) default to what the trainer recorded beside the checkpoint
(``flags.json``).
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from images.utils import onednn  # noqa: E402  (imports no TensorFlow)

ONEDNN = onednn.configure()  # before TensorFlow is imported: it reads the variable once

from absl import app, flags  # noqa: E402

from images import export, training  # noqa: E402
from images.utils import run_dir  # noqa: E402

flags.DEFINE_string("model_name", None, "Network registry name. Default: the training run's.")
flags.DEFINE_string("checkpoint_path", None, "Checkpoint file, or a folder (its latest).")
flags.DEFINE_string("output_dir", None, "Base folder of the exported model (TF Serving's "
                    "--model_base_path); the export goes to a new numbered version folder.")
flags.DEFINE_integer("num_classes", None, "Classifier width. Default: the training run's, else "
                     "read from the checkpoint. 0 exports embeddings (the pooled features) "
                     "instead of classes.")
flags.DEFINE_integer("image_size", None, "Network input side; defaults to the training run's, "
                     "else the model's.")
flags.DEFINE_float("moving_average_decay", None, "Export the weights' moving averages kept with "
                   "this decay during training (--moving_average_decay of the trainer).")
flags.DEFINE_integer("top_k", 5, "Classes in the 'probabilities' and 'top_k_classes' outputs.")
flags.DEFINE_string("preprocessing_name", None, "Defaults to the training run's, else the "
                    "model's (its evaluation transform runs in the graph).")
flags.DEFINE_boolean("use_grayscale", False, "Convert images to one channel, as in training "
                     "(default: as the training run did).")
flags.DEFINE_integer("channels", 3, "Channels the encoded images are decoded to: 3, or 1 for "
                     "models trained on grayscale records such as mnist (default: the training "
                     "run's dataset's).")
flags.DEFINE_integer("export_version", None, "Version folder number; default one more than the "
                     "highest in --output_dir.")
flags.DEFINE_string("output_json", None, "Also write a summary of the export as JSON here.")
flags.mark_flags_as_required(["checkpoint_path", "output_dir"])
flags.register_validator("top_k", lambda v: v >= 1, message="--top_k must be >= 1")
flags.register_validator("num_classes", lambda v: v is None or v >= 0,
                         message="--num_classes must be >= 0 (0 exports embeddings)")
flags.register_validator("channels", lambda v: v in (1, 3), message="--channels must be 1 or 3")
flags.register_validator("export_version", lambda v: v is None or v >= 1,
                         message="--export_version must be >= 1")
flags.register_validator("moving_average_decay", lambda v: v is None or 0.0 < v < 1.0,
                         message="--moving_average_decay must be in (0, 1)")
FLAGS = flags.FLAGS


# Flag -> the key of the training run's resolved settings it defaults to.
FROM_TRAINING_RUN = {"model_name": "model_name", "image_size": "image_size",
                     "preprocessing_name": "preprocessing_name", "num_classes": "num_classes",
                     "use_grayscale": "use_grayscale", "channels": "channels"}


def main(argv):
    del argv
    training.setup_logging()
    training.log.info("%s", ONEDNN)
    found = run_dir.run_defaults(FLAGS.checkpoint_path, {
        f: k for f, k in FROM_TRAINING_RUN.items() if not FLAGS[f].present})
    for name, value in found.items():
        setattr(FLAGS, name, value)
    if found:
        training.log.info("from the training run's %s: %s", run_dir.RUN_RECORD,
                          ", ".join("%s=%s" % kv for kv in sorted(found.items())))
    if not FLAGS.model_name:
        training.log.error("give --model_name: no %s from the trainer beside checkpoint %s to "
                           "take it from", run_dir.RUN_RECORD, FLAGS.checkpoint_path)
        return 2
    try:
        result = export.export(
            FLAGS.model_name, FLAGS.checkpoint_path, FLAGS.output_dir,
            num_classes=FLAGS.num_classes, image_size=FLAGS.image_size,
            moving_average_decay=FLAGS.moving_average_decay, top_k=FLAGS.top_k,
            preprocessing_name=FLAGS.preprocessing_name, use_grayscale=FLAGS.use_grayscale,
            channels=FLAGS.channels, version=FLAGS.export_version)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        training.log.error("%s", e)
        return 2
    print("exported %s version %d to %s (outputs: %s)"
          % (FLAGS.model_name, result.version, result.path, ", ".join(result.outputs)))
    if FLAGS.output_json:
        with open(FLAGS.output_json, "w", encoding="utf-8") as f:
            json.dump(result.__dict__, f, indent=1)
    return 0


if __name__ == "__main__":
    app.run(main)
