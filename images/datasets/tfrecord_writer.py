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
                writer.write(example if isinstance(example, bytes)
                             else example.SerializeToString())
        os.replace(tmp, path)
        counts.append(len(part))
    return counts
