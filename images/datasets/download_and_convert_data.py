#!/usr/bin/env python
"""Downloads a dataset and converts it to TFRecord files plus labels.txt.

    python images/datasets/download_and_convert_data.py --dataset_name=digits --dataset_dir=DIR

With the default single shard the files are named as in FastNN's manual
(``cifar10_train.tfrecord``, ``cifar10_test.tfrecord``); ``--num_shards`` writes equal shards.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from absl import app, flags  # noqa: E402

from images.datasets import converters  # noqa: E402

flags.DEFINE_string("dataset_name", None, "Dataset to convert: %s." % ", ".join(
    converters.list_converters()))
flags.DEFINE_string("dataset_dir", None, "Where the archives and the TFRecord files go.")
flags.DEFINE_integer("num_shards", 1, "TFRecord files per split (equal record counts).")
flags.mark_flags_as_required(["dataset_name", "dataset_dir"])
flags.register_validator("num_shards", lambda v: v >= 1, message="--num_shards must be >= 1")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        converter = converters.get_converter(FLAGS.dataset_name)
    except ValueError as e:
        raise app.UsageError(str(e))
    os.makedirs(FLAGS.dataset_dir, exist_ok=True)
    paths = converter(FLAGS.dataset_dir, num_shards=FLAGS.num_shards)
    for p in paths:
        print(p)
    print("Finished converting the %s dataset into %s" % (FLAGS.dataset_name, FLAGS.dataset_dir))


if __name__ == "__main__":
    app.run(main)
