"""Writes image arrays held in memory (digits, MNIST, CIFAR-10) as PNG TFRecords.

One routine for every converter whose source decodes to ``uint8`` arrays: each image becomes a
PNG record, the splits go to their shards, and ``labels.txt`` and the info file follow.
"""
import io

from PIL import Image

from images.datasets import dataset_info, example_codec, labels_file, tfrecord_writer


def encode_png(pixels):
    """PNG bytes of a ``uint8`` image ``[H, W]`` (grey) or ``[H, W, 3]`` (RGB)."""
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _examples(images, labels):
    for image, label in zip(images, labels):
        yield example_codec.image_to_tfexample(encode_png(image), "png", image.shape[0],
                                               image.shape[1], int(label))


def write_array_dataset(dataset_dir, dataset_name, splits, label_names, num_shards=1,
                        extra_info=None):
    """Writes every split, ``labels.txt`` and ``<name>_info.json``.

    Args:
      dataset_dir: output folder.
      dataset_name: registry name (the file prefix).
      splits: ``{split: (images uint8 [N, H, W(, 3)], labels int [N])}``.
      label_names: class names, indexed by label.
      num_shards: TFRecord files per split.
      extra_info: more facts for the info file (e.g. the source archive).

    Returns:
      The written TFRecord paths.
    """
    written, sizes, files = [], {}, {}
    for split, (images, labels) in splits.items():
        paths, count = tfrecord_writer.write_split(_examples(images, labels), dataset_dir,
                                                   dataset_name, split, num_shards)
        written.extend(paths)
        sizes[split], files[split] = count, paths
    labels_file.write_labels(dict(enumerate(label_names)), dataset_dir)
    dataset_info.write_info(dataset_dir, dataset_name, sizes, len(label_names), files,
                            extra_info)
    return written
