#!/usr/bin/env python
"""Downloads a dataset and converts it to TFRecord files plus labels.txt.

    python images/datasets/download_and_convert_data.py --dataset_name=cifar10 --dataset_dir=DIR
    python images/datasets/download_and_convert_data.py --dataset_name=custom \
        --image_dir=PHOTOS --dataset_dir=DIR --validation_fraction=0.1

With the default single shard the files are named as in FastNN's manual
(``cifar10_train.tfrecord``, ``cifar10_test.tfrecord``); ``--num_shards`` writes equal shards.
An archive already in dataset_dir is not downloaded again; an interrupted download resumes.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from absl import app, flags  # noqa: E402

from images.datasets import converters, download  # noqa: E402

flags.DEFINE_string("dataset_name", None, "Dataset to convert: %s." % ", ".join(
    converters.list_converters()))
flags.DEFINE_string("dataset_dir", None, "Where the archives and the TFRecord files go.")
flags.DEFINE_integer("num_shards", 1, "TFRecord files per split (equal record counts).")
flags.DEFINE_string("download_url", None, "Mirror to download from instead of the publisher: a "
                    "folder URL (http://, https:// or file://) holding the publisher's file "
                    "names, or the full URL of a single-archive dataset.")
flags.DEFINE_boolean("progress", True, "Show a download progress bar on stderr.")
flags.DEFINE_string("image_dir", None, "custom: folder with one sub-folder of JPEG/PNG images "
                    "per class.")
flags.DEFINE_float("validation_fraction", 0.1, "custom: fraction of each class put in the "
                   "validation split.")
flags.DEFINE_integer("num_workers", None, "custom, flowers: threads decoding images to check "
                     "them (default: one per CPU).")
flags.DEFINE_boolean("preflight_check", False, "After converting, read every record written "
                     "once (framing, image decoding, label range) and exit 2 listing any bad "
                     "record.")
flags.mark_flags_as_required(["dataset_name", "dataset_dir"])
flags.register_validator("num_shards", lambda v: v >= 1, message="--num_shards must be >= 1")
flags.register_validator("num_workers", lambda v: v is None or v >= 1,
                         message="--num_workers must be >= 1")
flags.register_validator("validation_fraction", lambda v: 0.0 <= v < 1.0,
                         message="--validation_fraction must be in [0, 1)")
FLAGS = flags.FLAGS

_OPTION_FLAGS = ("download_url", "progress", "image_dir", "validation_fraction", "num_workers")


def main(argv):
    del argv
    try:
        converter = converters.get_converter_record(FLAGS.dataset_name)
    except ValueError as e:
        raise app.UsageError(str(e))
    ignored = [n for n in _OPTION_FLAGS if FLAGS[n].present and n not in converter.options]
    if ignored:
        raise app.UsageError("--%s has no meaning for --dataset_name=%s (it reads: %s)" % (
            ", --".join(ignored), converter.name,
            ", ".join("--" + o for o in sorted(converter.options)) or "no options"))
    options = {n: FLAGS[n].value for n in converter.options}
    os.makedirs(FLAGS.dataset_dir, exist_ok=True)
    try:
        paths = converter.run(FLAGS.dataset_dir, num_shards=FLAGS.num_shards, **options)
    except (download.DownloadError, ValueError, OSError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    print("Finished converting the %s dataset into %s" % (FLAGS.dataset_name, FLAGS.dataset_dir))
    if FLAGS.preflight_check:
        return _preflight(FLAGS.dataset_name, FLAGS.dataset_dir, paths)
    return 0


def _preflight(dataset_name, dataset_dir, paths):
    """Checks every record written; 0 when all are good, else 2 with the problems."""
    from images.datasets import dataset_factory
    from images.utils import preflight
    record = dataset_factory.get_dataset(dataset_name)
    num_classes = dataset_factory.resolve_num_classes(record, dataset_dir, None)
    files = [p for p in paths if p.endswith(".tfrecord") or "-of-" in os.path.basename(p)]
    report = preflight.check_records(files, record.parse_fn(), num_classes,
                                     record.labels_offset)
    print(report.summary(num_classes))
    if report.problems:
        for line in report.problems[:preflight.MAX_LISTED]:
            print("error: %s" % line, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main)
