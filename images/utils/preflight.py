"""Pre-flight check of a dataset: every record read once before training starts.

Training meets a bad record only when it reaches it, hours in.  ``--preflight_check`` (of the
trainer and of ``download_and_convert_data.py``) reads every record of the input files once and
checks that its framing is intact (CRC, length, no cut-off tail), that it parses and its image
decodes, and that its label falls in ``[0, num_classes)`` after ``labels_offset``.  All problems
are collected (the first :data:`MAX_LISTED` listed) and reported together, naming file and record.
"""
import dataclasses
import logging
import os
import time
from typing import List

import tensorflow.compat.v1 as tf

from images.datasets import pipeline, positions

log = logging.getLogger("fastnn")

MAX_LISTED = 20
_BATCH = 256


@dataclasses.dataclass
class PreflightReport:
    """What :func:`check_records` found."""
    files: int = 0
    records: int = 0
    seconds: float = 0.0
    problems: List[str] = dataclasses.field(default_factory=list)

    @property
    def rate(self):
        """Records checked per second."""
        return self.records / self.seconds if self.seconds > 0 else float("inf")

    def summary(self, num_classes):
        """One line describing the check and its outcome."""
        head = ("preflight: %d record(s) in %d file(s) read in %.1f s (%.0f records/s)"
                % (self.records, self.files, self.seconds, self.rate))
        if not self.problems:
            return head + ": every record readable and decodable, labels in [0, %d)" % num_classes
        return head + ": %d problem(s)" % len(self.problems)


def check_records(files, parse_fn, num_classes, labels_offset=0, num_threads=None):
    """Reads every record of ``files`` once and checks framing, decoding and labels.

    Args:
      files: TFRecord paths.
      parse_fn: ``fn(serialized) -> (image, label[, bbox])`` (the dataset's).
      num_classes: labels must fall in ``[0, num_classes)`` after ``labels_offset``.
      labels_offset: subtracted from stored labels.
      num_threads: parallel decode calls (default: one per CPU).

    Returns:
      A :class:`PreflightReport`.

    Raises:
      FileNotFoundError: a file does not exist.
      BadInputDataError: a file cannot be opened or is empty.
    """
    files = list(files)
    sizes = positions.check_files(files)
    report = PreflightReport(files=len(files))
    threads = num_threads or os.cpu_count() or 1
    start = time.time()
    graph = tf.Graph()
    with graph.as_default():
        path_ph = tf.placeholder(tf.string, [], name="path")

        def check(index, serialized):
            parsed, ok = pipeline._try_parse(parse_fn, serialized)  # pylint: disable=protected-access
            label = parsed[1] - labels_offset
            return (index, ok, parsed[1], tf.logical_and(label >= 0, label < num_classes),
                    tf.cast(tf.strings.length(serialized), tf.int64) + pipeline.RECORD_OVERHEAD)

        # As in the pipeline, ignore_errors() ends a file at its first unreadable record and the
        # bytes framed so far, compared with the file's size, say where (the files were opened
        # once above, so no open error can spin here).
        ds = tf.data.TFRecordDataset(path_ph).ignore_errors().enumerate().map(
            check, num_parallel_calls=threads, deterministic=True).batch(_BATCH).prefetch(2)
        iterator = tf.data.make_initializable_iterator(ds)
        batch = iterator.get_next()
        with tf.Session(graph=graph) as sess:
            for path, size in zip(files, sizes):
                sess.run(iterator.initializer, {path_ph: path})
                read, framed = 0, 0
                while True:
                    try:
                        index, ok, label, in_range, length = sess.run(batch)
                    except tf.errors.OutOfRangeError:
                        if framed != size:
                            report.problems.append(
                                "%s: record %d (at byte %d) and everything after it cannot be "
                                "read: bad CRC, truncated file or read error (%d of %d bytes "
                                "unread)" % (path, read, framed, size - framed, size))
                        break
                    read += len(index)
                    framed += int(length.sum())
                    for i, good, stored, fits in zip(index, ok, label, in_range):
                        if not good:
                            report.problems.append("%s: record %d cannot be parsed or its image "
                                                   "decoded" % (path, i))
                        elif not fits:
                            report.problems.append(
                                "%s: record %d has label %d (labels_offset %d), outside [0, %d)"
                                % (path, i, stored, labels_offset, num_classes))
                report.records += read
    report.seconds = time.time() - start
    return report


def raise_on_problems(report, num_classes):
    """Logs the report's summary; raises BadInputDataError listing its problems, if any."""
    log.info("%s", report.summary(num_classes))
    if report.problems:
        listed = "\n  ".join(report.problems[:MAX_LISTED])
        more = len(report.problems) - MAX_LISTED
        raise pipeline.BadInputDataError(
            "preflight check found %d problem(s):\n  %s%s\nConvert the dataset again, drop the "
            "bad files, or train with --skip_corrupt_records to skip unreadable records"
            % (len(report.problems), listed, "\n  ... and %d more" % more if more > 0 else ""))


def files_to_check(files, num_workers, worker_index):
    """The files one worker checks: its own shard when sharding by file, else (sharding by
    record) all of them on worker 0 and none elsewhere."""
    files = list(files)
    if len(files) >= num_workers:
        return pipeline.shard_files(files, num_workers, worker_index)
    return files if worker_index == 0 else []


def check_for_worker(files, dataset, num_classes, labels_offset, cluster):
    """The trainer's ``--preflight_check``: this worker's part of the files, problems raised."""
    mine = files_to_check(files, cluster.size, cluster.rank)
    if mine:
        raise_on_problems(check_records(mine, dataset.parse_fn(), num_classes, labels_offset),
                          num_classes)
