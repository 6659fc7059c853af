"""The tf.data input pipeline: files -> worker shard -> records -> decode/preprocess -> batches.

Sharding across Horovod workers: by file when there are at least as many files as workers (worker i
takes files i, i+n, ... of the sorted list, as FastNN did), else by record.
"""
import numpy as np
import tensorflow.compat.v1 as tf

AUTOTUNE = tf.data.experimental.AUTOTUNE


def shard_files(files, num_workers, worker_index):
    """Files of one worker when sharding by file: every ``num_workers``-th from ``worker_index``."""
    return list(files)[worker_index::num_workers]


def build_dataset(files, parse_fn, preprocess_fn, image_size, batch_size, is_training,
                  num_classes, num_epochs=None, shuffle_buffer_size=1024, num_parallel_batches=8,
                  num_preprocessing_threads=16, prefetch_buffer_size=32, use_caching=False,
                  num_workers=1, worker_index=0, seed=None, labels_offset=0,
                  drop_remainder=None):
    """Builds a ``tf.data.Dataset`` of ``(images float32 [B, S, S, C], labels int64 [B])``.

    Args:
      files: sorted TFRecord paths.
      parse_fn: ``fn(serialized) -> (image, label[, bbox])``.
      preprocess_fn: ``fn(image, height, width[, bbox=...]) -> float image``.
      image_size: output side length.
      batch_size: examples per batch (per worker).
      is_training: shuffle, repeat ``num_epochs`` times and drop the last partial batch.
      num_classes: labels must fall in ``[0, num_classes)`` after ``labels_offset``; a label
        outside stops the run with an error naming the file.
      num_epochs: passes over the data; None repeats forever in training, once in evaluation.
      shuffle_buffer_size: records in the shuffle buffer.
      num_parallel_batches: batches decoded at once (parallel map calls = this x batch size,
        capped by ``num_preprocessing_threads``).
      num_preprocessing_threads: upper bound on parallel decode and preprocessing calls, and on
        files read at once.
      prefetch_buffer_size: batches prefetched.
      use_caching: cache the raw records in memory after the first pass.
      num_workers: data-parallel workers.
      worker_index: this worker.
      seed: makes shuffling and the order of records deterministic.
      labels_offset: subtracted from stored labels.
      drop_remainder: defaults to ``is_training``.
    """
    files = list(files)
    if not files:
        raise ValueError("build_dataset: no input files")
    deterministic = seed is not None or not is_training
    by_file = len(files) >= num_workers
    if by_file:
        files = shard_files(files, num_workers, worker_index)
    file_ds = tf.data.Dataset.from_tensor_slices(files)
    if is_training and len(files) > 1:
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def read(path):
        # Each record carries the path it came from, so errors can name the file.
        return tf.data.TFRecordDataset(path).map(lambda r: (r, path))

    cycle = max(1, min(len(files), num_preprocessing_threads))
    ds = file_ds.interleave(read, cycle_length=cycle, block_length=1,
                            num_parallel_calls=cycle if cycle > 1 else None,
                            deterministic=deterministic)
    if not by_file:
        ds = ds.shard(num_workers, worker_index)
    if use_caching:
        ds = ds.cache()
    if is_training:
        if shuffle_buffer_size > 1:
            ds = ds.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat(num_epochs)
    elif num_epochs and num_epochs > 1:
        ds = ds.repeat(num_epochs)

    def decode(serialized, path):
        parsed = parse_fn(serialized)
        image, label = parsed[0], parsed[1]
        label = label - labels_offset
        check = tf.debugging.assert_less(
            label, tf.cast(num_classes, label.dtype),
            message="label outside [0, num_classes) in file", data=[path, label], summarize=1)
        check_low = tf.debugging.assert_non_negative(
            label, message="label outside [0, num_classes) in file", data=[path, label],
            summarize=1)
        with tf.control_dependencies([check, check_low]):
            label = tf.identity(label)
        if len(parsed) > 2:
            image = preprocess_fn(image, image_size, image_size, bbox=parsed[2])
        else:
            image = preprocess_fn(image, image_size, image_size)
        return image, label

    parallel = max(1, min(num_parallel_batches * batch_size, num_preprocessing_threads))
    ds = ds.map(decode, num_parallel_calls=parallel, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=is_training if drop_remainder is None
                  else drop_remainder)
    if prefetch_buffer_size:
        ds = ds.prefetch(prefetch_buffer_size)
    return ds


def build_mock_dataset(image_size, channels, batch_size, num_classes, seed=0, num_batches=None,
                       dtype=tf.float32):
    """Synthetic data: a fixed random batch, repeated ``num_batches`` times (forever if None).

    The same images and labels each step make throughput measurements free of input cost and let
    a network visibly fit them, which is FastNN's ``mock`` behaviour.
    """
    rng = np.random.RandomState(seed)
    images = rng.uniform(-1.0, 1.0, (batch_size, image_size, image_size, channels))
    labels = rng.randint(0, num_classes, size=(batch_size,))
    ds = tf.data.Dataset.from_tensors((tf.constant(images, dtype=dtype),
                                       tf.constant(labels, dtype=tf.int64)))
    return ds.repeat(num_batches)
