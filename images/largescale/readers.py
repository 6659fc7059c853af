"""PLSC's custom readers: ``ins.train_reader = reader`` (and ``test_reader``, ``predict_reader``).

A PLSC reader is a function that returns an iterable of samples ``(image, label)``, or of batches
(lists of samples, what ``paddle.batch(reader, batch_size)`` makes).  Images are decoded and
preprocessed by the reader, float arrays in PLSC's layout ``[C, H, W]`` or in ``[H, W, C]``; they
go to the network as they are (the built-in readers normalise to ``(x - 127.5) / 128``; a custom
reader does what it likes).  The Entry re-batches to ``train_batch_size`` per worker and starts
the reader again when it ends (one pass of the reader is one epoch when the image count is not
given).  ``PADDLE_TRAINER_ID`` and ``PADDLE_TRAINERS_NUM`` are set from Horovod's rank and size,
so readers written for PLSC shard their data as they did there.
"""
import numpy as np
import tensorflow.compat.v1 as tf


def _is_batch(item):
    return (isinstance(item, list) and len(item) > 0
            and isinstance(item[0], (tuple, list)) and len(item[0]) >= 2)


def iter_samples(reader):
    """The samples of one pass of ``reader`` (batches are flattened)."""
    if not callable(reader):
        raise ValueError("a reader is a function returning an iterable of (image, label) "
                         "samples or batches of them, got %r" % (reader,))
    for item in reader():
        if _is_batch(item):
            for sample in item:
                yield sample
        else:
            yield item


def to_hwc(image, image_shape, index=None):
    """One reader image as float32 ``[H, W, C]`` (from ``[C, H, W]`` or ``[H, W, C]``).

    Raises:
      ValueError: neither layout matches ``image_shape`` ``(C, H, W)``.
    """
    image = np.asarray(image, np.float32)
    channels, height, width = image_shape
    if image.shape == (channels, height, width):
        return np.ascontiguousarray(image.transpose(1, 2, 0))
    if image.shape == (height, width, channels):
        return image
    if channels == 1 and image.shape == (height, width):
        return image[:, :, None]
    raise ValueError("reader sample %s: image of shape %s matches neither [%d, %d, %d] (PLSC's "
                     "layout) nor [%d, %d, %d]; set the image shape with set_image_shape or "
                     "set_input_info" % ("" if index is None else index, image.shape, channels,
                                         height, width, height, width, channels))


def _sample_fields(sample, index):
    if not isinstance(sample, (tuple, list)) or len(sample) != 2:
        raise ValueError("reader sample %d must be (image, label), got %s" % (
            index, type(sample).__name__ if not isinstance(sample, (tuple, list))
            else "%d fields" % len(sample)))
    label = np.asarray(sample[1]).reshape(-1)
    if label.size != 1 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError("reader sample %d: the label must be one integer, got %r"
                         % (index, sample[1]))
    return sample[0], int(label[0])


def count_samples(reader):
    """Samples in one pass of ``reader`` (its ``num_samples`` when it has one, as the readers
    of ``plsc.utils`` do; else by reading a pass)."""
    known = getattr(reader, "num_samples", None)
    if known is not None:
        return int(known)
    return sum(1 for _ in iter_samples(reader))


def reader_dataset(reader, image_shape, batch_size, num_classes, with_labels=True):
    """An endless ``tf.data.Dataset`` of ``(images [B, H, W, C], labels [B])`` from a PLSC
    reader (or a finite one of single passes when ``with_labels`` is False: images only, the
    last batch possibly shorter, for ``predict``).

    Labels outside ``[0, num_classes)`` stop training with an error naming the sample.
    """
    channels, height, width = image_shape

    def samples():
        for index, sample in enumerate(iter_samples(reader)):
            image, label = _sample_fields(sample, index)
            if with_labels and not 0 <= label < num_classes:
                raise ValueError("reader sample %d has label %d, outside [0, class_num=%d)"
                                 % (index, label, num_classes))
            yield to_hwc(image, image_shape, index), np.int64(label)

    ds = tf.data.Dataset.from_generator(samples, output_signature=(
        tf.TensorSpec([height, width, channels], tf.float32), tf.TensorSpec([], tf.int64)))
    if not with_labels:
        return ds.map(lambda image, label: image).batch(batch_size)
    return ds.repeat().batch(batch_size, drop_remainder=True).prefetch(2)


def dataset_reader(dataset):
    """A reader over a map-style dataset (``len()`` and ``[i]`` giving samples), PLSC v0.2's
    ``train_dataset`` / ``test_dataset``."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise ValueError("a dataset needs __len__ and __getitem__ returning (image, label), "
                         "got %r" % (dataset,))
    return lambda: (dataset[i] for i in range(len(dataset)))


# ---------------------------------------------------------------- PLSC's own readers
def _trainer():
    import os
    return (int(os.environ.get("PADDLE_TRAINER_ID", "0")),
            int(os.environ.get("PADDLE_TRAINERS_NUM", "1")))


def _decode(encoded, size=None, flip=False):
    """Encoded bytes -> PLSC's sample layout: float32 ``[3, H, W]`` (resized to ``size`` x
    ``size`` when given; PLSC's readers took 112x112 faces as they were), normalised, through
    TensorFlow's decoder (eagerly; the graph decoders use the same ops)."""
    from images.largescale import data
    image = data.decode_encoded(tf.constant(encoded), 3)
    if size:
        image = tf.image.resize(image, [size, size])
    if flip:
        image = image[:, ::-1, :]
    return np.ascontiguousarray(data.normalize(image).numpy().transpose(2, 0, 1))


def label_file_reader(data_dir, class_dim, size=None, rand_mirror=True, seed=0):
    """PLSC's ``jpeg_reader.arc_train``: the images of ``<data_dir>/label.txt``, this
    trainer's share (``PADDLE_TRAINER_ID`` of ``PADDLE_TRAINERS_NUM``, padded by repeating the
    first lines so every trainer gets as many), shuffled each pass, mirrored at random."""
    import os
    import random
    from images.largescale import data
    paths, labels = data.read_label_file(os.path.join(data_dir, data.LABEL_FILE))
    if labels.max() >= class_dim:
        raise ValueError("label.txt has label %d, not below class_dim %d"
                         % (labels.max(), class_dim))
    rank, size_ = _trainer()
    per = -(-len(paths) // size_)
    index = np.resize(np.arange(len(paths)), per * size_)[rank * per:(rank + 1) * per]
    rng = random.Random(seed + rank)

    def reader():
        order = list(index)
        rng.shuffle(order)
        for i in order:
            with open(paths[i], "rb") as f:
                yield _decode(f.read(), size, rand_mirror and rng.random() < 0.5), int(labels[i])

    reader.num_samples = len(index)
    return reader


def base64_file_reader(data_dir, class_dim, size=None, rand_mirror=True, seed=0):
    """PLSC's ``base64_reader.train``: ``<data_dir>/file_list.txt`` names exactly one file per
    trainer (``tools/process_base64_files.py --in_place`` makes them); this trainer reads its
    own, ``<base64>\\t<label>`` per line."""
    import base64
    import os
    import random
    rank, size_ = _trainer()
    with open(os.path.join(data_dir, "file_list.txt"), encoding="utf-8") as f:
        names = [n.strip() for n in f if n.strip()]
    if len(names) != size_:
        raise ValueError("file_list.txt names %d files for %d trainers: run "
                         "tools/process_base64_files.py --in_place --nranks=%d"
                         % (len(names), size_, size_))
    path = os.path.join(data_dir, names[rank])
    rng = random.Random(seed + rank)

    def reader():
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                b64, label = line.strip().split("\t")
                if not 0 <= int(label) < class_dim:
                    raise ValueError("%s:%d: label %s not in [0, %d)"
                                     % (path, lineno, label, class_dim))
                yield (_decode(base64.b64decode(b64), size, rand_mirror and rng.random() < 0.5),
                       int(label))

    with open(path, "rb") as f:
        reader.num_samples = sum(1 for line in f if line.strip())
    return reader


def bin_sets_reader(data_dir, datasets, size=None):
    """PLSC's ``reader.test``: ``(sets, names)`` for the ``<data_dir>/<name>.bin`` that exist
    (missing ones skipped with a warning); each set ``([images, flipped images], issame)``,
    images ``[N, 3, H, W]`` normalised (``H = W = size`` when given, else the first image's
    size)."""
    import logging
    import os
    from images.largescale import verification
    sets, names = [], []
    for name in str(datasets).split(","):
        name = name.strip()
        path = os.path.join(data_dir, name + ".bin")
        if not os.path.exists(path):
            logging.getLogger("fastnn").warning("val target %s skipped: %s does not exist",
                                                name, path)
            continue
        encoded, issame = verification.load_bin(path)
        height, width = (size, size) if size else _decode(encoded[0]).shape[1:]
        pixels = verification.decode_images(encoded, (3, height, width))
        normal = ((pixels - 127.5) / 128.0).transpose(0, 3, 1, 2)
        sets.append(([np.ascontiguousarray(normal),
                      np.ascontiguousarray(normal[:, :, :, ::-1])], list(issame)))
        names.append(name)
    return sets, names
