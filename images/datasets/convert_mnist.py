"""MNIST (four idx gzip files) -> ``mnist_{train,test}*.tfrecord`` + labels.txt.

The files are ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``.  The idx format: a big-endian
header of two zero bytes, a type code (0x08: unsigned byte), the number of dimensions, then one
big-endian uint32 per dimension, then the values row-major.  Images are ``[N, 28, 28]``, labels
``[N]``.  Yann LeCun's page publishes no checksums, so none is verified; the headers and sizes are
checked instead.  Images are stored as one-channel PNG, as TF-slim does.
"""
import gzip
import os
import struct

import numpy as np

from images.datasets import array_converter, download

NAME = "mnist"
# The CVDF mirror first: the original host often refuses automated downloads.
BASE_URLS = ("https://storage.googleapis.com/cvdf-datasets/mnist/",
             "http://yann.lecun.com/exdb/mnist/")
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SIDE = 28
_UBYTE = 0x08


def remote_files():
    """The four files as :class:`download.RemoteFile` (no published checksums)."""
    return [download.RemoteFile(name, [base + name for base in BASE_URLS])
            for pair in SPLIT_FILES.values() for name in pair]


def read_idx(path, ndim):
    """Reads a gzip-compressed idx file of unsigned bytes with ``ndim`` dimensions.

    Raises:
      ValueError: not gzip, wrong magic, wrong rank, or fewer values than the header says.
    """
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError("%s is not a readable gzip file (%s): delete it and convert again"
                         % (path, e)) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("%s: not an idx file (bad magic number)" % path)
    if data[2] != _UBYTE or data[3] != ndim:
        raise ValueError("%s: idx type 0x%02x with %d dimensions, expected unsigned bytes with %d"
                         % (path, data[2], data[3], ndim))
    header = 4 + 4 * ndim
    dims = struct.unpack(">%dI" % ndim, data[4:header])
    count = int(np.prod(dims))
    if len(data) - header != count:
        raise ValueError("%s: header announces %s = %d values but the file holds %d"
                         % (path, "x".join(map(str, dims)), count, len(data) - header))
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_split(dataset_dir, split):
    """``(images uint8 [N, 28, 28], labels int64 [N])`` of one split from the idx files."""
    image_file, label_file = SPLIT_FILES[split]
    images = read_idx(os.path.join(dataset_dir, image_file), 3)
    labels = read_idx(os.path.join(dataset_dir, label_file), 1).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError("%s holds %d images but %s %d labels" % (image_file, len(images),
                                                                 label_file, len(labels)))
    if images.shape[1:] != (SIDE, SIDE):
        raise ValueError("%s: images are %s, expected 28x28" % (image_file, images.shape[1:]))
    if labels.size and labels.max() > 9:
        raise ValueError("%s: labels outside 0..9" % label_file)
    return images, labels


def run(dataset_dir, num_shards=1, download_url=None, progress=True, **unused):
    """Downloads (unless present) and converts MNIST; returns the written TFRecord paths."""
    del unused
    for remote in remote_files():
        download.fetch(remote, dataset_dir, download_url, progress=progress)
    splits = {split: load_split(dataset_dir, split) for split in SPLIT_FILES}
    return array_converter.write_array_dataset(dataset_dir, NAME, splits,
                                               [str(i) for i in range(10)], num_shards)
