"""The user's own images -> ``custom_{train,validation}*.tfrecord`` + labels.txt.

    python images/datasets/download_and_convert_data.py --dataset_name=custom \
        --image_dir=PHOTOS --dataset_dir=DIR [--validation_fraction=0.1] [--num_shards=4]

``PHOTOS`` holds one sub-folder per class (its name becomes the class name; label ids follow the
sorted names), each with JPEG or PNG files (sub-folders inside a class folder count too).  Every
file is decoded once here: a corrupt file, a file that is not an image, or an image in another
format is reported with its path and reason and left out, never dropped silently.  The validation
split takes ``validation_fraction`` of each class's usable images (rounded), chosen with a fixed
seed; both
splits are shuffled with that seed, so converting the same folder twice gives identical files.
``custom_info.json`` records the split sizes and the skipped files, and the trainer's
``--dataset_name=custom`` takes the class count from labels.txt.
"""
import os
import random
import sys

from images.datasets import dataset_info, example_codec, image_files, labels_file
from images.datasets import tfrecord_writer

NAME = "custom"
SEED = 20191101


def split_items(items, validation_fraction, seed=SEED):
    """Splits ``[(path, label)]`` per class into ``(train, validation)``, both shuffled.

    Each class gives ``round(validation_fraction * its size)`` items to validation.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError("validation_fraction must be in [0, 1), got %r" % validation_fraction)
    rng = random.Random(seed)
    by_class = {}
    for path, label in sorted(items):
        by_class.setdefault(label, []).append(path)
    train, validation = [], []
    for label in sorted(by_class):
        paths = by_class[label]
        rng.shuffle(paths)
        n_val = int(validation_fraction * len(paths) + 0.5)
        validation.extend((p, label) for p in paths[:n_val])
        train.extend((p, label) for p in paths[n_val:])
    rng.shuffle(train)
    rng.shuffle(validation)
    return train, validation


def check_images(items, num_workers=None, report=None):
    """Decodes every ``(path, label)`` once; unusable files are reported and left out.

    Returns:
      ``([(ImageInfo without bytes, label)] usable, [(path, reason)] skipped)``, in input order.
    """
    report = report or _print_skip
    usable, skipped = [], []
    labels = [label for _, label in items]
    infos = image_files.iter_inspect([p for p, _ in items], num_workers, keep=False)
    for info, label in zip(infos, labels):
        if info.ok:
            usable.append((info, label))
        else:
            skipped.append((info.path, info.error))
            report(info.path, info.error)
    return usable, skipped


def write_image_split(usable, dataset_dir, dataset_name, split_name, num_shards=1):
    """Writes checked ``[(ImageInfo, label)]`` as one split; returns ``(paths, record count)``."""
    examples = (example_codec.image_to_tfexample(image_files.load_encoded(info),
                                                 info.image_format, info.height, info.width,
                                                 label)
                for info, label in usable)
    return tfrecord_writer.write_split(examples, dataset_dir, dataset_name, split_name,
                                       num_shards)


def _print_skip(path, reason):
    print("skipped %s: %s" % (path, reason), file=sys.stderr)


def run(dataset_dir, num_shards=1, image_dir=None, validation_fraction=0.1, num_workers=None,
        **unused):
    """Converts the class folders under ``image_dir``; returns the written TFRecord paths.

    Raises:
      ValueError: no image_dir, no class folders, or no usable image at all.
    """
    del unused
    if not image_dir:
        raise ValueError("dataset 'custom' converts your own images: give --image_dir, a folder "
                         "with one sub-folder of JPEG/PNG files per class")
    if not os.path.isdir(image_dir):
        raise ValueError("--image_dir %s is not a folder" % image_dir)
    classes, files, stray = image_files.list_class_folders(image_dir)
    if not classes:
        raise ValueError("%s has no sub-folders: put each class's images in a sub-folder named "
                         "after the class (e.g. %s/cats/1.jpg, %s/dogs/2.png)"
                         % (image_dir, image_dir, image_dir))
    out_dir = os.path.abspath(dataset_dir)
    skipped = []
    for path in stray:
        # Files this converter wrote, when dataset_dir is image_dir, are not strays.
        if os.path.dirname(os.path.abspath(path)) == out_dir and _is_own_output(path):
            continue
        reason = "not inside a class sub-folder"
        skipped.append((path, reason))
        _print_skip(path, reason)
    label_of = {name: i for i, name in enumerate(classes)}
    usable, bad = check_images([(path, label_of[name]) for path, name in files], num_workers)
    skipped.extend(bad)
    if not usable:
        raise ValueError("no usable JPEG or PNG image under %s (%d file(s) skipped, listed above)"
                         % (image_dir, len(skipped)))
    by_path = {info.path: info for info, _ in usable}
    train, validation = split_items([(info.path, label) for info, label in usable],
                                    validation_fraction)
    written, sizes, split_files = [], {}, {}
    for split, split_list in (("train", train), ("validation", validation)):
        paths, count = write_image_split([(by_path[p], label) for p, label in split_list],
                                         dataset_dir, NAME, split, num_shards)
        written.extend(paths)
        sizes[split], split_files[split] = count, paths
    per_class = {}
    for _, label in usable:
        per_class[label] = per_class.get(label, 0) + 1
    empty = [classes[i] for i in range(len(classes)) if not per_class.get(i)]
    if empty:
        print("warning: class folder(s) without a usable image: %s (their labels are kept)"
              % ", ".join(empty), file=sys.stderr)
    labels_file.write_labels(dict(enumerate(classes)), dataset_dir)
    dataset_info.write_info(
        dataset_dir, NAME, sizes, len(classes), split_files,
        {"source": os.path.abspath(image_dir), "validation_fraction": validation_fraction,
         "skipped": [{"path": p, "reason": r} for p, r in skipped]})
    print("%d train and %d validation images of %d classes; %d file(s) skipped"
          % (sizes["train"], sizes["validation"], len(classes), len(skipped)), file=sys.stderr)
    return written


def _is_own_output(path):
    base = os.path.basename(path)
    return (base == labels_file.LABELS_FILENAME or base == NAME + dataset_info.SUFFIX
            or (base.startswith(NAME + "_") and ".tfrecord" in base))
