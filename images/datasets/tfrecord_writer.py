"""Writing TFRecord shards with the names the dataset registry looks for."""
import os

import tensorflow.compat.v1 as tf


def shard_paths(dataset_dir, dataset_name, split_name, num_shards=1):
    """File paths of ``num_shards`` shards of one split.

    One shard is named as FastNN's manual shows (``cifar10_train.tfrecord``); several are
    ``cifar10_train-00000-of-00004.tfrecord`` and so on.
    """
    if num_shards < 1:
        raise ValueError("num_shards must be >= 1, got %d" % num_shards)
    if num_shards == 1:
        names = ["%s_%s.tfrecord" % (dataset_name, split_name)]
    else:
        names = ["%s_%s-%05d-of-%05d.tfrecord" % (dataset_name, split_name, i, num_shards)
                 for i in range(num_shards)]
    return [os.path.join(dataset_dir, n) for n in names]


def split_evenly(items, num_parts):
    """Cuts ``items`` into ``num_parts`` contiguous lists whose lengths differ by at most one."""
    base, extra = divmod(len(items), num_parts)
    parts, start = [], 0
    for i in range(num_parts):
        end = start + base + (1 if i < extra else 0)
        parts.append(items[start:end])
        start = end
    return parts


def serialize(example):
    """Bytes of one record; maps serialised in a fixed order so conversions are reproducible."""
    if isinstance(example, bytes):
        return example
    return example.SerializeToString(deterministic=True)


def write_shards(examples, paths):
    """Writes ``examples`` (``tf.train.Example`` or serialized bytes) spread evenly over ``paths``.

    Each file is written under a temporary name and renamed when complete, so an interrupted
    conversion never leaves a truncated file with a final name.

    Returns:
      The number of records written to each path.
    """
    examples = list(examples)
    counts = []
    for path, part in zip(paths, split_evenly(examples, len(paths))):
        tmp = path + ".tmp"
        with tf.io.TFRecordWriter(tmp) as writer:
            for example in part:
                writer.write(serialize(example))
        os.replace(tmp, path)
        counts.append(len(part))
    return counts


class RoundRobinWriter:
    """Streams records into shards in turn (record i goes to shard i mod n).

    Shard sizes differ by at most one without knowing the total in advance, so a converter can
    write as it reads.  Files are written under temporary names; :meth:`close` renames them and
    :meth:`abort` (or an exception inside ``with``) removes them.
    """

    def __init__(self, paths):
        self.paths = list(paths)
        self.counts = [0] * len(self.paths)
        self._writers = [tf.io.TFRecordWriter(p + ".tmp") for p in self.paths]
        self._next = 0

    def write(self, example):
        """Appends one ``tf.train.Example`` (or serialized bytes) to the next shard."""
        self._writers[self._next].write(serialize(example))
        self.counts[self._next] += 1
        self._next = (self._next + 1) % len(self._writers)

    @property
    def total(self):
        return sum(self.counts)

    def close(self):
        """Finishes every shard and gives it its final name; returns the counts per shard."""
        for writer, path in zip(self._writers, self.paths):
            writer.close()
            os.replace(path + ".tmp", path)
        self._writers = []
        return self.counts

    def abort(self):
        """Closes and deletes the temporary files."""
        for writer, path in zip(self._writers, self.paths):
            writer.close()
            if os.path.exists(path + ".tmp"):
                os.remove(path + ".tmp")
        self._writers = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def write_split(examples, dataset_dir, dataset_name, split_name, num_shards=1):
    """Streams ``examples`` of one split into its shards; returns ``(paths, record count)``.

    An exception while ``examples`` is consumed leaves no file with a final name behind.
    """
    os.makedirs(dataset_dir, exist_ok=True)
    paths = shard_paths(dataset_dir, dataset_name, split_name, num_shards)
    with RoundRobinWriter(paths) as writer:
        for example in examples:
            writer.write(example)
    return paths, writer.total
