"""Where a worker's training stream stands after a number of steps.

The training stream of one worker is its shard of the records, epoch after epoch; epoch ``e`` is
shuffled with a seed made of the run's seed and ``e``.  Each step takes one batch, so after
``step`` steps the worker has consumed ``step * batch_size`` elements: epoch
``step * batch_size // epoch_size``, offset the remainder.  A resumed run rebuilds that epoch and
skips to the offset, which needs each worker's records per epoch: :func:`count_records` walks the
TFRecord framing (each record's 8-byte length, through a memory map), so counting touches one page
per record instead of reading the data.
"""
import mmap
import os
import struct

import numpy as np
import tensorflow.compat.v1 as tf



class BadInputDataError(ValueError):
    """The input data is corrupt, unreadable or does not fit the dataset; the message names the
    file."""


def _unreadable(path, error):
    reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
    reason = reason.split("\n")[0]
    if reason.startswith(path + ";"):  # TensorFlow's "<path>; <cause>"
        reason = reason[len(path) + 1:].strip()
    return BadInputDataError("cannot read input file %s: %s. Give the trainer read access to it, "
                             "or leave it out of the input files" % (path, reason))


def check_files(files):
    """The sizes of ``files`` (numpy int64), after checking that each exists, can be opened and
    holds data.

    An unreadable file is found here, before the pipeline starts: TensorFlow's record reader
    retries a file it cannot open forever under ``ignore_errors()``.

    Raises:
      FileNotFoundError: a file does not exist.
      BadInputDataError: a file cannot be opened or is empty.
    """
    sizes = []
    for path in files:
        try:
            sizes.append(tf.io.gfile.stat(path).length)
        except tf.errors.NotFoundError:
            raise FileNotFoundError("input file %s does not exist" % path) from None
        try:
            with tf.io.gfile.GFile(path, "rb") as f:
                f.read(1)
        except (OSError, tf.errors.OpError) as e:
            raise _unreadable(path, e) from None
        if sizes[-1] == 0:
            raise BadInputDataError("input file %s is empty (0 bytes): convert the dataset "
                                    "again (images/datasets/download_and_convert_data.py), or "
                                    "leave the file out of the input files" % path)
    return np.array(sizes, dtype=np.int64)


# TFRecord framing: uint64 length, uint32 CRC of the length, the data, uint32 CRC of the data.
_HEADER = 12
_FOOTER = 4
_LENGTH = struct.Struct("<Q")


def count_records(path, whole=False):
    """Complete records in one TFRecord file (a cut-off last record is not counted).

    Local files are counted by their framing headers; other file systems (``gs://`` ...)
    through a read of the file.

    Args:
      path: the file.
      whole: refuse a local file that ends inside a record instead of leaving that record out
        (a truncated or compressed file).

    Raises:
      FileNotFoundError: the file does not exist.
      BadInputDataError: it cannot be read, or, with ``whole``, it is not a whole uncompressed
        TFRecord file.
    """
    if "://" in path:
        return int(tf.data.TFRecordDataset(path).reduce(0, lambda n, _: n + 1))
    try:
        size = os.path.getsize(path)
        if size == 0:
            return 0
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            # Only the pages holding headers are touched: no read of the data.
            count, offset = 0, 0
            while offset + _HEADER <= size:
                end = offset + _HEADER + _LENGTH.unpack_from(mm, offset)[0] + _FOOTER
                if end > size:
                    break
                count += 1
                offset = end
    except FileNotFoundError:
        raise FileNotFoundError("input file %s does not exist" % path) from None
    except (OSError, ValueError) as e:
        raise _unreadable(path, e) from None
    if whole and offset != size:
        raise BadInputDataError(
            "input file %s is not a whole uncompressed TFRecord file: its record %d runs past "
            "the end (truncated, or compressed). Convert the dataset again, or leave the file "
            "out of the input files" % (path, count + 1))
    return count


def shard_counts(counts, num_workers):
    """Records per epoch of every worker, for files holding ``counts`` records each.

    The rule of :func:`images.datasets.pipeline.read_records`: by file when there are at least as
    many files as workers (worker i takes files i, i+n, ...), else by record (worker i keeps
    records i, i+n, ... of every file).
    """
    counts = list(counts)
    if len(counts) >= num_workers:
        return [sum(counts[w::num_workers]) for w in range(num_workers)]
    return [sum(max(0, (c - w + num_workers - 1) // num_workers) for c in counts)
            for w in range(num_workers)]


def worker_epoch_size(files, num_workers=1, worker_index=0):
    """Records one epoch gives worker ``worker_index`` of ``num_workers``.

    Raises:
      FileNotFoundError: a file does not exist.
      BadInputDataError: a file cannot be read, is empty, or this worker's shard is empty.
    """
    files = list(files)
    mine = files[worker_index::num_workers] if len(files) >= num_workers else files
    check_files(mine)
    if len(files) >= num_workers:
        size = sum(count_records(p) for p in mine)
    else:
        size = shard_counts([count_records(p) for p in files], num_workers)[worker_index]
    if size == 0:
        raise BadInputDataError(
            "worker %d of %d gets no complete record from its %d file(s) (%s): convert the "
            "dataset again, or give more records than workers" % (
                worker_index, num_workers, len(mine), ", ".join(mine[:3])))
    return size


def position(step, batch_size, epoch_size):
    """``(epoch, offset)``: where a worker's stream stands after ``step`` steps."""
    if epoch_size <= 0:
        raise ValueError("an epoch of 0 records has no position")
    return divmod(int(step) * int(batch_size), int(epoch_size))


def data_end_step(epoch_sizes, num_epochs, batch_size):
    """The last step every worker has a full batch for in ``num_epochs`` epochs (None: no end).

    Batches run across epoch boundaries and the last partial one is dropped, so a worker
    reaches ``num_epochs * size // batch_size`` steps; the job stops with its shortest worker.
    """
    if not num_epochs:
        return None
    return min(int(num_epochs) * int(n) // int(batch_size) for n in epoch_sizes)
