"""Training data of the large-scale classifier: base64 line files, TFRecord, PLSC's label.txt
with image files, or mock data.

Base64 files hold one example per line, ``<base64 of the encoded JPEG/PNG>\\t<integer label>``,
and ``file_list.txt`` names them (one path per line, relative to the list's folder).
``tools/process_base64_files.py`` shuffles them globally into one file per worker.  TFRecord
files use the zoo's example layout (:mod:`images.datasets.example_codec`).  PLSC's default
layout is ``label.txt`` (``<image path> <label>`` per line, paths relative to the dataset dir)
beside the image files.

Images are decoded by TensorFlow (:func:`decode_encoded`, the decoder of every path: training,
verification, ``predict`` and the served model), resized to the image shape when they differ,
flipped at random in training and normalised to ``(x - 127.5) / 128``.
"""
import glob
import logging
import os

import numpy as np
import tensorflow.compat.v1 as tf

from images.datasets import example_codec, pipeline

log = logging.getLogger("fastnn")

FORMATS = ("base64", "tfrecord", "label_txt")
FILE_LIST = "file_list.txt"
LABEL_FILE = "label.txt"
AUTOTUNE = tf.data.experimental.AUTOTUNE


def normalize(images):
    """uint8 or float pixels in [0, 255] -> float32 ``(x - 127.5) / 128``."""
    return (tf.cast(images, tf.float32) - 127.5) / 128.0


def decode_encoded(encoded, channels):
    """Encoded JPEG/PNG/BMP/GIF bytes (a scalar string tensor) -> uint8 ``[h, w, channels]``."""
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    return tf.ensure_shape(image, [None, None, channels])


def decode_batch(encoded, image_shape, normalized=True):
    """A string vector of encoded images -> float32 ``[N, H, W, C]`` resized to ``image_shape``
    ``(C, H, W)``, normalised as in training unless ``normalized`` is False (then pixels in
    [0, 255]).  The served model and every numpy-side decoder use this."""
    channels, height, width = image_shape

    def one(data):
        image = tf.image.resize(decode_encoded(data, channels), [height, width],
                                method="bilinear")
        return normalize(image) if normalized else image

    return tf.map_fn(one, encoded, fn_output_signature=tf.float32)


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
    label_file = os.path.join(dataset_dir, LABEL_FILE)
    if os.path.exists(label_file) and data_format in (None, "label_txt"):
        return "label_txt", [label_file]
    records = sorted(glob.glob(os.path.join(dataset_dir, "train*.tfrecord*"))) or sorted(
        glob.glob(os.path.join(dataset_dir, "*.tfrecord*")))
    if records and data_format in (None, "tfrecord"):
        return "tfrecord", records
    raise FileNotFoundError(
        "no training data in %s: expected %s (base64 or TFRecord files, one per line), %s "
        "(PLSC's '<image path> <label>' lines beside the images) or *.tfrecord files"
        % (dataset_dir, FILE_LIST, LABEL_FILE))


def read_label_file(path):
    """``(image paths, labels)`` of a PLSC ``label.txt``; paths relative to its folder.

    Raises:
      ValueError: a line that is not ``<path> <integer label>``, naming file and line.
    """
    folder = os.path.dirname(os.path.abspath(path))
    paths, labels = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            # The path may contain spaces; the label is the last field.
            parts = text.rsplit(None, 1)
            if len(parts) != 2:
                raise ValueError("%s:%d: expected '<image path> <label>', got %r"
                                 % (path, lineno, text[:80]))
            try:
                label = int(parts[1])
            except ValueError:
                raise ValueError("%s:%d: label %r is not an integer"
                                 % (path, lineno, parts[1][:20])) from None
            name = parts[0]
            paths.append(name if os.path.isabs(name) else os.path.join(folder, name))
            labels.append(label)
    if not paths:
        raise ValueError("%s lists no images" % path)
    return paths, np.asarray(labels, np.int64)


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
    return decode_encoded(tf.io.decode_base64(data), channels), label


def count_examples(files, data_format):
    """Examples in ``files`` (lines of base64 files, records of TFRecord files)."""
    total = 0
    for path in files:
        if data_format == "label_txt":
            total += len(read_label_file(path)[0])
        elif data_format == "base64":
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
    if data_format == "label_txt":
        return _label_file_dataset(files[0], image_shape, batch_size, num_classes, num_workers,
                                   worker_index, seed, shuffle_buffer_size, num_parallel_calls)
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
        label = _checked_label(label, num_classes, path)
        return preprocess(image, height, width, is_training=True), label

    ds = ds.map(decode, num_parallel_calls=num_parallel_calls)
    return ds.batch(batch_size, drop_remainder=True).prefetch(4)


def _checked_label(label, num_classes, path):
    ok = tf.debugging.assert_less(
        label, tf.constant(num_classes, tf.int64), data=[path, label], summarize=1,
        message="label outside [0, class_num) in file")
    ok_low = tf.debugging.assert_non_negative(
        label, data=[path, label], summarize=1, message="label outside [0, class_num) in file")
    with tf.control_dependencies([ok, ok_low]):
        return tf.identity(label)


def _label_file_dataset(label_file, image_shape, batch_size, num_classes, num_workers,
                        worker_index, seed, shuffle_buffer_size, num_parallel_calls):
    """PLSC's default reader: the images a ``label.txt`` names, every ``num_workers``-th of a
    seeded global permutation on each worker (so the workers' shares differ and are stable)."""
    channels, height, width = image_shape
    paths, labels = read_label_file(label_file)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise ValueError("%s: image %s has label %d, outside [0, class_num=%d)"
                         % (label_file, paths[bad[0]], labels[bad[0]], num_classes))
    order = np.random.RandomState(seed or 0).permutation(len(paths))
    order = order[worker_index::num_workers]
    if not len(order):
        raise ValueError("%s lists %d images, fewer than the %d workers"
                         % (label_file, len(paths), num_workers))
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths)[order], labels[order]))
    ds = ds.shuffle(min(len(order), shuffle_buffer_size), seed=seed,
                    reshuffle_each_iteration=True).repeat()

    def decode(path, label):
        image = decode_encoded(tf.io.read_file(path), channels)
        label = _checked_label(label, num_classes, path)
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


def inference_dataset(files, data_format, image_shape, batch_size, num_workers=1,
                      worker_index=0):
    """One pass over this worker's share of the training data, in file order, decoded and
    normalised as in training but without flips: float32 ``[B, H, W, C]`` batches (the last one
    possibly shorter).  PLSC's ``predict()`` embedded its training reader's images."""
    channels, height, width = image_shape
    if data_format == "label_txt":
        paths, _ = read_label_file(files[0])
        ds = tf.data.Dataset.from_tensor_slices(paths[worker_index::num_workers])
        ds = ds.map(lambda p: decode_encoded(tf.io.read_file(p), channels))
    else:
        files = list(files)
        if len(files) >= num_workers:
            files, shard = pipeline.shard_files(files, num_workers, worker_index), False
        else:
            shard = True
        if data_format == "base64":
            ds = tf.data.TextLineDataset(files)
            ds = ds.filter(lambda r: tf.strings.length(tf.strings.strip(r)) > 0)
        else:
            ds = tf.data.TFRecordDataset(files)
        if shard:
            ds = ds.shard(num_workers, worker_index)
        if data_format == "base64":
            ds = ds.map(lambda r: decode_base64_line(r, channels)[0])
        else:
            ds = ds.map(lambda r: example_codec.parse_example(r, channels=channels)[0])
    ds = ds.map(lambda image: preprocess(image, height, width, is_training=False))
    return ds.batch(batch_size)
