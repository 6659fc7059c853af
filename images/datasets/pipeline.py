"""The tf.data input pipeline: files -> worker shard -> records -> decode/preprocess -> batches.

Sharding across Horovod workers: by file when there are at least as many files as workers (worker i
takes files i, i+n, ... of the sorted list, as FastNN did), else by record (worker i keeps records
i, i+n, ... of every file).  Either way each record goes to exactly one worker.

Training streams are built epoch by epoch, each epoch's file order and shuffle seeded by the run's
seed and the epoch, so a resumed run can start at any epoch and skip to its offset
(:mod:`images.datasets.positions`); augmentation is keyed by the record's position in the stream
(:mod:`images.utils.keyed_random`).

Bad input never passes silently.  A file that is missing, unreadable or empty stops the run before
the pipeline starts; one that cannot be opened any more later is named with the cause.  Every file is read to its end and the bytes read are compared
with the file's size, so a bad CRC, a truncated record or header, or a read error is caught and
named with its file.  Each record is parsed and decoded inside a guard, so an undecodable image is
named with its file and record number too.  Without ``skip_corrupt_records`` both stop the run
with that message; with it the unreadable part is skipped and each skip is logged on stderr, once,
with a running count.  A label outside ``[0, num_classes)`` always stops the run, naming the file.  The
messages travel inside TensorFlow's error: :func:`data_error_message` extracts them.
"""
import re
import sys

import numpy as np
import tensorflow.compat.v1 as tf

from images.datasets import positions
from images.utils import keyed_random as keyed_random_lib

AUTOTUNE = tf.data.experimental.AUTOTUNE
# TFRecord framing around each record's data: uint64 length, uint32 CRC of the length and
# uint32 CRC of the data.
RECORD_OVERHEAD = 16
_ERR_OPEN = "<<fastnn-data-error: "
_ERR_CLOSE = " >>"
# The pipeline's own dataset functions are plain graph code: AutoGraph has nothing to convert
# and cannot parse the source of small lambdas, so they skip it.
_plain = tf.autograph.experimental.do_not_convert


@_plain
def _keep_flag(*element):
    return element[-1]


@_plain
def _record_path_index(*element):
    return element[:3]


@_plain
def _ok_flag(image, label, ok, *rest):
    return ok


@_plain
def _drop_tags(image, label, ok, path, index, position, *bbox):
    return (position, image, label) + tuple(bbox)


BadInputDataError = positions.BadInputDataError


def data_error_message(error):
    """The readable message inside a TensorFlow error raised by this pipeline, else None.

    Besides the pipeline's own messages, a file that cannot be opened any more (removed,
    permissions changed while the run goes on) is named with its cause.
    """
    text = getattr(error, "message", None) or str(error)
    match = re.search(re.escape(_ERR_OPEN) + r"(.*?)" + re.escape(_ERR_CLOSE), text, re.S)
    if match:
        return match.group(1)
    if isinstance(error, (tf.errors.PermissionDeniedError, tf.errors.NotFoundError,
                          tf.errors.UnavailableError, tf.errors.DataLossError)):
        # TensorFlow's file systems report "<path>; <cause>" on a line of their own.
        opened = re.search(r"^\s*(\S+); ([^\n]+)$", text, re.M)
        if opened:
            return ("cannot open or read input file %s: %s. Give the trainer read access to "
                    "it again (the run resumes from its last checkpoint when restarted)"
                    % (opened.group(1), opened.group(2).strip()))
    return None


def shard_files(files, num_workers, worker_index):
    """Files of one worker when sharding by file: every ``num_workers``-th from ``worker_index``."""
    return list(files)[worker_index::num_workers]


def _str(x):
    if isinstance(x, (str, bytes, int, float)):
        return str(x)
    return tf.strings.as_string(x) if x.dtype != tf.string else x


def _check(ok, message_fn):
    """True when ``ok``; otherwise the step fails with ``message_fn()`` (built only then)."""
    def fail():
        message = tf.strings.join([_ERR_OPEN] + [_str(m) for m in message_fn()] + [_ERR_CLOSE])
        with tf.control_dependencies([tf.debugging.Assert(False, [message], summarize=1)]):
            return tf.constant(False)
    return tf.cond(ok, lambda: tf.constant(True), fail)


def _log_if(condition, message_fn):
    """Prints ``fastnn: <message>`` on stderr when ``condition`` holds; returns a bool tensor."""
    def log():
        parts = [_str(m) for m in message_fn()]
        with tf.control_dependencies([tf.print(tf.strings.join(["fastnn: "] + parts),
                                               output_stream=sys.stderr)]):
            return tf.constant(True)
    return tf.cond(condition, log, lambda: tf.constant(False))


def _file_sizes(files):
    return positions.check_files(files)


def _open_probe(path):
    """An empty dataset that opens ``path`` and reads one byte, so a file that cannot be opened
    any more (removed, permissions changed) fails the step with the file's name and the cause
    instead of spinning in ``ignore_errors()``."""
    return tf.data.FixedLengthRecordDataset(path, 1, buffer_size=1).take(1).filter(
        _plain(lambda _: False)).map(_plain(lambda _: (tf.constant(0, tf.int64), tf.constant(b""))))


def read_records(files, num_workers=1, worker_index=0, shuffle_files=False, seed=None,
                 cycle_length=16, deterministic=True, skip_corrupt_records=False,
                 log_skips=True, sizes=None, num_parallel_reads=None):
    """This worker's records as ``(serialized, file path, record index in its file)``.

    Args:
      files: sorted TFRecord paths (every worker must see the same list).
      num_workers: data-parallel workers.
      worker_index: this worker.
      shuffle_files: visit the files in a new random order each pass.
      seed: seed of that order (an int or an int64 scalar tensor).
      cycle_length: files read at once, interleaved record by record (sets the order).
      num_parallel_reads: of those, files read in parallel (default: all; does not change
        the order).
      deterministic: keep the interleaved order fixed.
      skip_corrupt_records: skip the unreadable part of a corrupt or truncated file instead of
        stopping with an error that names it.
      log_skips: log each skip (a bool or a bool tensor: a resumed run logs in its first epoch
        only, so one bad file part is reported once).
      sizes: the sizes of this worker's files (checked by the caller), else read here.

    Raises:
      ValueError: no files.
      FileNotFoundError: a file does not exist.
      BadInputDataError: a file cannot be opened or is empty.
    """
    files = list(files)
    if not files:
        raise ValueError("no input files")
    by_file = len(files) >= num_workers
    if by_file:
        files = shard_files(files, num_workers, worker_index)
    if sizes is None:
        sizes = _file_sizes(files)
    file_ds = tf.data.Dataset.from_tensor_slices((files, sizes))
    if shuffle_files and len(files) > 1:
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    @_plain
    def read_one(path, size):
        # ignore_errors() ends the file at its first unreadable record (TensorFlow's reader moves
        # to the next file); comparing the bytes framed so far with the file size finds it,
        # including a header cut short, which the reader alone takes for a clean end.  One scan
        # does the framing, the check and the tagging, since every function stage costs time
        # per record; the end markers are dropped once, after the interleave.
        records = _open_probe(path).concatenate(
            tf.data.TFRecordDataset(path).ignore_errors().enumerate())
        end = tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), tf.constant(b"")))

        @_plain
        def frame(state, element):
            offset, index = state  # bytes framed so far, records seen so far
            is_end = element[0] < 0
            record = element[1]
            broken = tf.logical_and(is_end, tf.not_equal(offset, size))
            if not skip_corrupt_records:
                ok = _check(tf.logical_not(broken), lambda: [
                    "corrupt or truncated TFRecord file ", path, ": record ", index, " (at byte ",
                    offset, ") and everything after it cannot be read (bad CRC, truncated file or "
                    "read error; the file has ", size, " bytes). Convert the dataset again, or pass "
                    "--skip_corrupt_records to train on the readable records"])
                with tf.control_dependencies([ok]):
                    is_end = tf.identity(is_end)
            length = tf.cast(tf.strings.length(record), tf.int64) + RECORD_OVERHEAD
            keep = tf.logical_not(is_end) if by_file else tf.logical_and(
                tf.logical_not(is_end), tf.equal(index % num_workers, worker_index))
            if skip_corrupt_records:
                keep = tf.logical_or(keep, broken)
            return ((offset + length, index + 1),
                    (record, path, index, offset, size, is_end, keep))

        return records.concatenate(end).scan(
            (tf.constant(0, tf.int64), tf.constant(0, tf.int64)), frame)

    cycle = max(1, min(len(files), cycle_length))
    reads = max(1, min(cycle, num_parallel_reads or cycle))
    parallel = {"num_parallel_calls": reads, "deterministic": deterministic} if reads > 1 else {}
    ds = file_ds.interleave(read_one, cycle_length=cycle, block_length=1, **parallel)
    if skip_corrupt_records:
        return _log_broken_files(ds, log_skips)
    return ds.filter(_keep_flag).map(_record_path_index)


def _log_broken_files(ds, log_skips=True):
    """Logs each skipped file tail with a running count; keeps this worker's good records."""
    @_plain
    def count(skipped, element):
        record, path, index, offset, size, is_end, keep = element
        lost = tf.maximum(size - offset, 0)
        # Records after a bad one cannot be framed; estimate them from the file's mean size.
        mean = tf.where(index > 0, offset // tf.maximum(index, 1), lost)
        about = tf.maximum((lost + mean - 1) // tf.maximum(mean, 1), 1)
        broken = tf.logical_and(is_end, keep)
        skipped = skipped + tf.cast(broken, tf.int64)
        logged = _log_if(tf.logical_and(broken, log_skips), lambda: [
            "skipped the unreadable end of ", path, " from record ", index, " (at byte ",
            offset, "): ", lost, " bytes, about ", about, " record(s); ", skipped,
            " corrupt or truncated file part(s) skipped so far on this worker"])
        with tf.control_dependencies([logged]):
            keep = tf.logical_and(keep, tf.logical_not(is_end))
        return skipped, (record, path, index, keep)

    ds = ds.scan(tf.constant(0, tf.int64), count)
    return ds.filter(_keep_flag).map(_record_path_index)


def _try_parse(parse_fn, serialized):
    """``(parse_fn(serialized) as a tuple, ok)``; a parse or decode error gives ok False.

    The parse runs inside a one-element dataset with ignore_errors(), the one way TensorFlow
    offers to catch an op's error inside a graph; a fallback element of zeros follows it.
    """
    attempt = tf.data.Dataset.from_tensors(serialized).map(
        lambda s: tuple(parse_fn(s)) + (tf.constant(True),)).ignore_errors()
    fallback = tuple(tf.zeros([d if d is not None else 0 for d in spec.shape.as_list()],
                              spec.dtype) for spec in attempt.element_spec[:-1])
    fallback = tf.data.Dataset.from_tensors(fallback + (tf.constant(False),))
    element = attempt.concatenate(fallback).take(1).get_single_element()
    return element[:-1], element[-1]


def _preprocess(preprocess_fn, image, image_size, bbox):
    if bbox is not None:
        try:
            return preprocess_fn(image, image_size, image_size, bbox=bbox)
        except TypeError as e:
            # Preprocessing without a bbox argument (vgg, cifarnet) ignores the boxes.
            if "bbox" not in str(e):
                raise
    return preprocess_fn(image, image_size, image_size)


def build_dataset(files, parse_fn, preprocess_fn, image_size, batch_size, is_training,
                  num_classes, num_epochs=None, shuffle_buffer_size=1024, num_parallel_batches=8,
                  num_preprocessing_threads=16, prefetch_buffer_size=32, use_caching=False,
                  num_workers=1, worker_index=0, seed=None, labels_offset=0,
                  drop_remainder=None, skip_corrupt_records=False, deterministic=None,
                  start_batch=0, epoch_size=None, keyed_random=None):
    """Builds a ``tf.data.Dataset`` of ``(images float32 [B, S, S, C], labels int64 [B])``.

    In training, epoch ``e`` visits the files and shuffles the records with seeds made of
    ``seed`` and ``e``, and the stream starts ``start_batch`` batches in (the epoch and offset a
    resumed run stands at, :mod:`images.datasets.positions`).  With a seed, every random op of
    the preprocessing is keyed by the seed and the element's place in the stream
    (:mod:`images.utils.keyed_random`): the batches after a restart are, bit for bit, those the
    uninterrupted run took, whatever the thread counts.

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
      shuffle_buffer_size: records in the shuffle buffer (within an epoch).
      num_parallel_batches: batches decoded at once (parallel map calls = this x batch size,
        capped by ``num_preprocessing_threads``).
      num_preprocessing_threads: upper bound on parallel decode and preprocessing calls, and on
        files read in parallel (the order of records does not depend on it: 16 files at most
        are interleaved, record by record).
      prefetch_buffer_size: batches prefetched.
      use_caching: cache the raw records in memory after the first pass (files are then read
        in one fixed order; the records are still shuffled each epoch).
      num_workers: data-parallel workers.
      worker_index: this worker.
      seed: seeds the file order, the shuffle and the augmentation, and makes the stream
        deterministic.
      labels_offset: subtracted from stored labels.
      drop_remainder: defaults to ``is_training``.
      skip_corrupt_records: skip and log corrupt records and undecodable images instead of
        stopping with an error naming the file.  Each skip is logged once, in the first epoch
        this process reads.
      deterministic: fixed element order; defaults to True with a seed or in evaluation.
      start_batch: training: batches of this worker's stream already taken (the global step a
        run resumes at).
      epoch_size: training: this worker's records per epoch (counted from the files if None).
      keyed_random: key the preprocessing's random ops by seed and position; defaults to True
        with a seed (False draws from TensorFlow's stateful generators, which a restart resets).

    Raises:
      ValueError: no files.
      FileNotFoundError: a file does not exist.
      BadInputDataError: a file cannot be read or is empty, or this worker's shard is empty.
    """
    files = list(files)
    if not files:
        raise ValueError("no input files to read: give --train_files (comma-separated names or "
                         "patterns inside --dataset_dir) or a split that has files")
    if deterministic is None:
        deterministic = seed is not None or not is_training
    if keyed_random is None:
        keyed_random = seed is not None and is_training
    if keyed_random and seed is None:
        raise ValueError("keyed_random needs a seed")
    read = dict(num_workers=num_workers, worker_index=worker_index,
                num_parallel_reads=num_preprocessing_threads, deterministic=deterministic,
                skip_corrupt_records=skip_corrupt_records)
    log_until = None
    if is_training:
        ds, log_until = _training_stream(
            files, read, batch_size, num_epochs, shuffle_buffer_size, use_caching, seed,
            start_batch, epoch_size)
    else:
        ds = read_records(files, **read)
        if use_caching:
            ds = ds.cache()
        if num_epochs and num_epochs > 1:
            ds = ds.repeat(num_epochs)
        ds = ds.enumerate()
    element_key = (keyed_random_lib.base_key(seed, keyed_random_lib.ELEMENT_SALT, worker_index)
                   if keyed_random else None)

    def parse(serialized, path, index):
        parsed, ok = _try_parse(parse_fn, serialized)
        image, label = parsed[0], parsed[1] - labels_offset
        in_range = tf.logical_and(label >= 0, label < num_classes)
        label_ok = _check(tf.logical_or(tf.logical_not(ok), in_range), lambda: [
            "label ", label, " (stored ", parsed[1], ", labels_offset ", labels_offset,
            ") of record ", index, " in ", path, " is outside [0, ", num_classes, "): the "
            "file does not belong to this dataset, or labels_offset / num_classes is wrong"])
        checks = [label_ok]
        if not skip_corrupt_records:
            checks.append(_check(ok, lambda: [
                "record ", index, " of ", path, " cannot be parsed or its image decoded (not "
                "a JPEG/PNG/GIF/BMP tf.train.Example, or damaged). Convert the dataset again, "
                "or pass --skip_corrupt_records to skip such records"]))
        with tf.control_dependencies(checks):
            image, label = tf.identity(image), tf.identity(label)
        bbox = parsed[2] if len(parsed) > 2 else None
        return image, label, bbox, ok, path, index

    def augment(position, image, bbox):
        if element_key is None:
            return _preprocess(preprocess_fn, image, image_size, bbox)
        with keyed_random_lib.keyed_random_ops(keyed_random_lib.fold(element_key, position)):
            return _preprocess(preprocess_fn, image, image_size, bbox)

    parallel = max(1, min(num_parallel_batches * batch_size, num_preprocessing_threads))
    if skip_corrupt_records:
        def decode(position, element):
            image, label, bbox, ok, path, index = parse(*element)
            extra = () if bbox is None else (bbox,)
            return (image, label, ok, path, index, position) + extra

        ds = ds.map(decode, num_parallel_calls=parallel, deterministic=deterministic)
        ds = _log_undecodable(ds, log_until)

        def finish(position, image, label, *bbox):
            return augment(position, image, bbox[0] if bbox else None), label
    else:
        def finish(position, element):
            image, label, bbox, _, _, _ = parse(*element)
            return augment(position, image, bbox), label

    ds = ds.map(_plain(finish), num_parallel_calls=parallel, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=is_training if drop_remainder is None
                  else drop_remainder)
    if prefetch_buffer_size:
        ds = ds.prefetch(prefetch_buffer_size)
    return ds


def _training_stream(files, read, batch_size, num_epochs, shuffle_buffer_size, use_caching,
                     seed, start_batch, epoch_size):
    """``(position, (serialized, path, index))`` of one worker from ``start_batch`` on, and the
    position where its first epoch in this process ends (skips are logged before it)."""
    num_workers, worker_index = read["num_workers"], read["worker_index"]
    mine = files if len(files) < num_workers else shard_files(files, num_workers, worker_index)
    sizes = _file_sizes(mine)
    if epoch_size is None:
        epoch_size = positions.worker_epoch_size(files, num_workers, worker_index)
    if epoch_size == 0:
        raise BadInputDataError(
            "worker %d of %d gets no records from %d file(s) (%s): give more files or records "
            "than workers, or use fewer workers" % (worker_index, num_workers, len(files),
                                                   ", ".join(files[:3])))
    first = int(start_batch) * int(batch_size)
    first_epoch, offset = positions.position(start_batch, batch_size, epoch_size)
    shuffle_key = (None if seed is None else
                   keyed_random_lib.base_key(seed, keyed_random_lib.SHUFFLE_SALT))
    cached = None
    if use_caching:
        cached = read_records(files, sizes=sizes, **read).cache()

    @_plain
    def one_epoch(epoch):
        def epoch_seed(salt):
            if shuffle_key is None:
                return None
            return keyed_random_lib.fold(shuffle_key, epoch, salt)[0]

        records = cached if cached is not None else read_records(
            files, shuffle_files=True, seed=epoch_seed(0), sizes=sizes,
            log_skips=tf.equal(epoch, first_epoch), **read)
        if shuffle_buffer_size > 1:
            records = records.shuffle(shuffle_buffer_size, seed=epoch_seed(1),
                                      reshuffle_each_iteration=False)
        return records

    last = num_epochs if num_epochs else np.iinfo(np.int64).max
    ds = tf.data.Dataset.range(first_epoch, max(first_epoch, last)).flat_map(one_epoch)
    return ds.skip(offset).enumerate(start=first), (first_epoch + 1) * epoch_size


def _log_undecodable(ds, log_until=None):
    """Logs each undecodable record (before position ``log_until``) with a running count; drops
    every undecodable record."""
    @_plain
    def count(skipped, element):
        image, label, ok, path, index, position = element[:6]
        bad = tf.logical_not(ok)
        if log_until is not None:
            bad_logged = tf.logical_and(bad, position < log_until)
        else:
            bad_logged = bad
        skipped = skipped + tf.cast(bad_logged, tf.int64)
        logged = _log_if(bad_logged, lambda: [
            "skipped record ", index, " of ", path, ": cannot be parsed or its image decoded; ",
            skipped, " undecodable record(s) skipped so far on this worker"])
        with tf.control_dependencies([logged]):
            ok = tf.identity(ok)
        return skipped, (image, label, ok, path, index, position) + tuple(element[6:])

    ds = ds.scan(tf.constant(0, tf.int64), count)
    return ds.filter(_ok_flag).map(_drop_tags)


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
