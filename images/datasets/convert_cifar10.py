"""CIFAR-10 (the "python version" tarball) -> ``cifar10_{train,test}*.tfrecord`` + labels.txt.

The archive ``cifar-10-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html holds
``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (the 50,000 training images, written in
that order), ``test_batch`` (10,000) and ``batches.meta`` (the class names).  Each batch is a
pickled dict: ``data`` is a uint8 array ``[10000, 3072]`` whose rows hold the red, green and blue
32x32 planes, ``labels`` a list of ints in 0..9.  Images are stored as PNG, as TF-slim does.
The Toronto page publishes the archive's MD5, which is verified.
"""
import io
import os
import pickle
import tarfile

import numpy as np

from images.datasets import array_converter, download

NAME = "cifar10"
ARCHIVE = download.RemoteFile(
    "cifar-10-python.tar.gz", ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"],
    md5="c58f30108f718f92721af3b95e74349a")
SPLITS = {"train": ["data_batch_%d" % i for i in range(1, 6)], "test": ["test_batch"]}
META = "batches.meta"
SIDE = 32


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings and numpy arrays only: a pickle can run code, and a
    mirror's archive is not to be trusted further than that."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError("CIFAR-10 batch refers to %s.%s, which a CIFAR-10 "
                                         "batch never does" % (module, name))
        return super().find_class(module, name)


def _load_pickle(data, what):
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001  (any failure means the same thing to the user)
        raise ValueError("%s is not a CIFAR-10 python batch: %s" % (what, e)) from None


def _members(tar):
    """``{base name: member}`` of the regular files in the archive."""
    return {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}


def _read_member(tar, members, name, archive_path):
    if name not in members:
        raise ValueError("%s has no %s: it is not the CIFAR-10 python archive" % (archive_path,
                                                                                 name))
    return tar.extractfile(members[name]).read()


def decode_batch(batch, what):
    """``(images uint8 [N, 32, 32, 3], labels int64 [N])`` from one unpickled batch dict."""
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError) as e:
        raise ValueError("%s lacks the 'data'/'labels' entries of a CIFAR-10 batch (%s)"
                         % (what, e)) from None
    if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or len(labels) != len(data):
        raise ValueError("%s: data %s and %d labels do not form CIFAR-10 images"
                         % (what, data.shape, len(labels)))
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError("%s: labels outside 0..9" % what)
    images = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return images, labels


def load_archive(archive_path):
    """Reads the whole archive.

    Returns:
      ``({'train': (images, labels), 'test': (images, labels)}, class names)``.
    """
    with tarfile.open(archive_path, "r:gz") as tar:
        members = _members(tar)
        meta = _load_pickle(_read_member(tar, members, META, archive_path), META)
        names = [n.decode("utf-8") if isinstance(n, bytes) else str(n)
                 for n in meta[b"label_names"]]
        splits = {}
        for split, batch_names in SPLITS.items():
            parts = [decode_batch(_load_pickle(_read_member(tar, members, b, archive_path), b), b)
                     for b in batch_names]
            splits[split] = (np.concatenate([p[0] for p in parts]),
                             np.concatenate([p[1] for p in parts]))
    return splits, names


def run(dataset_dir, num_shards=1, download_url=None, progress=True, **unused):
    """Downloads (unless present) and converts CIFAR-10; returns the written TFRecord paths."""
    del unused
    archive = download.fetch(ARCHIVE, dataset_dir, download_url, progress=progress)
    splits, names = load_archive(archive)
    return array_converter.write_array_dataset(
        dataset_dir, NAME, splits, names, num_shards,
        extra_info={"source": os.path.basename(archive)})
