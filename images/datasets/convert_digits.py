"""scikit-learn's 8x8 hand-written digits -> ``digits_train.tfrecord`` / ``digits_test.tfrecord``.

1,797 real images of 10 classes ship inside scikit-learn, so this converter needs no network.  The
split is fixed and seeded (360 test images, 36 per class), and so the files are reproducible.
"""

import numpy as np

from images.datasets import array_converter

NAME = "digits"
TEST_PER_CLASS = 36
SEED = 20191101


def load_split():
    """Returns ``{'train': (images uint8 [N, 8, 8], labels), 'test': (...)}`` (fixed split)."""
    from sklearn.datasets import load_digits  # scikit-learn is heavy: import only here.
    digits = load_digits()
    # Values are 0..16: spread them over 0..255.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    rng = np.random.RandomState(SEED)
    test = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        test.extend(rng.choice(idx, TEST_PER_CLASS, replace=False))
    test = np.array(sorted(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    train = train[rng.permutation(len(train))]
    return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}


def run(dataset_dir, num_shards=1, **unused):
    """Writes the TFRecord files and labels.txt into ``dataset_dir``; returns the written paths."""
    del unused
    return array_converter.write_array_dataset(dataset_dir, NAME, load_split(),
                                               [str(i) for i in range(10)], num_shards)
