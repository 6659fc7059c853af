"""Training data of the large-scale classifier: base64 line files, TFRecord, or mock data.

Base64 files hold one example per line, ``<base64 of the encoded JPEG/PNG>\\t<integer label>``,
and ``file_list.txt`` names them (one path per line, relative to the list's folder).
``tools/process_base64_files.py`` shuffles them globally into one file per worker.  TFRecord
files use the zoo's example layout (:mod:`images.datasets.example_codec`).

Images are decoded, resized to the image shape when they differ, flipped at random in training
and normalised to ``(x - 127.5) / 128``.
"""
import glob
import logging
import os

import numpy as np
import tensorflow.compat.v1 as tf

from images.datasets import example_codec, pipeline

log = logging.getLogger("fastnn")

FORMATS = ("base64", "tfrecord")
FILE_LIST = "file_list.txt"
AUTOTUNE = tf.data.experimental.AUTOTUNE


def normalize(images):
    """uint8 or float pixels in [0, 255] -> float32 ``(x - 127.5) / 128``."""
    return (tf.cast(images, tf.float32) - 127.5) / 128.0


def preprocess(image, height, width, is_training):
    """Decoded ``uint8 [h, w, C]`` -> float32 ``[height, width, C]``."""
    image = tf.image.resize(image, [height, width], method="bilinear")  # no-op size keeps values
    if is_training:
        image = tf.image.random_flip_left_right(image)
    return normalize(image)


def _read_list(list_path):
    folder = os.path.dirname(list_path)
    with open(list_path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    files = [n if os.path.isabs(n) else os.path.join(folder, n) for n in names]
    missing = [p for p in files if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError("%s names %d missing file(s), e.g. %s"
                                % (list_path, len(missing), missing[0]))
    if not files:
        raise ValueError("%s lists no files" % list_path)
    return files


def resolve_train_files(dataset_dir, data_format=None):
    """``(format, files)`` of the training data in ``dataset_dir``.

    Looks for ``file_list.txt`` in ``dataset_dir`` or ``dataset_dir/train``; without one, for
    ``*.tfrecord*`` files (``train*`` first).  The format is detected from the files' names unless
    given.

    Raises:
      FileNotFoundError: the folder or its data is missing.
      ValueError: an unknown format.
    """
    if data_format is not None and data_format not in FORMATS:
        raise ValueError("unknown dataset format %r; valid: %s" % (data_format,
                                                                   ", ".join(FORMATS)))
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError("dataset dir %s does not exist" % dataset_dir)
    for folder in (dataset_dir, os.path.join(dataset_dir, "train")):
        list_path = os.path.join(folder, FILE_LIST)
        if os.path.exists(list_path):
            files = _read_list(list_path)
            fmt = data_format or ("tfrecord" if all(".tfrecord" in os.path.basename(p)
                                                    for p in files) else "base64")
            return fmt, files
    records = sorted(glob.glob(os.path.join(dataset_dir, "train*.tfrecord*"))) or sorted(
        glob.glob(os.path.join(dataset_dir, "*.tfrecord*")))
    if records and data_format in (None, "tfrecord"):
        return "tfrecord", records
    raise FileNotFoundError(
        "no training data in %s: expected %s (base64 or TFRecord files, one per line) or "
        "*.tfrecord files" % (dataset_dir, FILE_LIST))


def decode_base64_line(line, channels):
    """``'<base64>\\t<label>'`` -> ``(uint8 image, int64 label)``.  Standard and URL-safe base64
    alphabets are both accepted."""
    # Both columns are required: a line without a tab or with a non-integer label fails with
    # decode_csv's error naming the field.
    b64, label = tf.io.decode_csv(tf.strings.strip(line),
                                  [tf.constant([], tf.string), tf.constant([], tf.int64)],
                                  field_delim="\t", use_quote_delim=False)
    # TF decodes the URL-safe alphabet: map '+' and '/' of standard base64 onto it.
    data = tf.strings.regex_replace(tf.strings.regex_replace(b64, r"\+", "-"), "/", "_")
    encoded = tf.io.decode_base64(data)
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    return tf.ensure_shape(image, [None, None, channels]), label


def count_examples(files, data_format):
    """Examples in ``files`` (lines of base64 files, records of TFRecord files)."""
    total = 0
    for path in files:
        if data_format == "base64":
            with open(path, "rb") as f:
                total += sum(1 for line in f if line.strip())
        else:
            total += sum(1 for _ in tf.io.tf_record_iterator(path))
    return total


def train_dataset(files, data_format, image_shape, batch_size, num_classes, num_workers=1,
                  worker_index=0, seed=None, shuffle_buffer_size=2048, num_parallel_calls=8):
    """An endless ``tf.data.Dataset`` of ``(images [B, H, W, C], labels int64 [B])``.

    Each worker reads its share of the files (every ``num_workers``-th from ``worker_index``)
    when there are at least as many files as workers, else every ``num_workers``-th line.

    Raises:
      (at run time) InvalidArgumentError naming the file when a label is outside
      ``[0, num_classes)``.
    """
    channels, height, width = image_shape
    files = list(files)
    by_file = len(files) >= num_workers
    if by_file:
        files = pipeline.shard_files(files, num_workers, worker_index)
    file_ds = tf.data.Dataset.from_tensor_slices(files)
    if len(files) > 1:
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def read(path):
        reader = (tf.data.TextLineDataset(path) if data_format == "base64"
                  else tf.data.TFRecordDataset(path))
        return reader.map(lambda r: (r, path))

    ds = file_ds.interleave(read, cycle_length=max(1, min(len(files), 4)), block_length=1)
    if data_format == "base64":
        ds = ds.filter(lambda r, _: tf.strings.length(tf.strings.strip(r)) > 0)
    if not by_file:
        ds = ds.shard(num_workers, worker_index)
    ds = ds.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True).repeat()

    def decode(record, path):
        if data_format == "base64":
            image, label = decode_base64_line(record, channels)
        else:
            image, label = example_codec.parse_example(record, channels=channels)
        ok = tf.debugging.assert_less(
            label, tf.constant(num_classes, tf.int64), data=[path, label], summarize=1,
            message="label outside [0, class_num) in file")
        ok_low = tf.debugging.assert_non_negative(
            label, data=[path, label], summarize=1, message="label outside [0, class_num) in file")
        with tf.control_dependencies([ok, ok_low]):
            label = tf.identity(label)
        return preprocess(image, height, width, is_training=True), label

    ds = ds.map(decode, num_parallel_calls=num_parallel_calls)
    return ds.batch(batch_size, drop_remainder=True).prefetch(4)


def mock_dataset(image_shape, batch_size, num_classes, seed=0):
    """A fixed random batch repeated forever (FastNN's mock data; labels differ per seed)."""
    channels, height, width = image_shape
    rng = np.random.RandomState(seed)
    images = rng.uniform(-1.0, 1.0, (batch_size, height, width, channels)).astype(np.float32)
    labels = rng.randint(0, num_classes, size=(batch_size,)).astype(np.int64)
    return tf.data.Dataset.from_tensors((tf.constant(images), tf.constant(labels))).repeat()
