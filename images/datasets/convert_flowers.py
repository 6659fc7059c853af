"""TensorFlow's flower photos -> ``flowers_{train,validation}*.tfrecord`` + labels.txt.

``flower_photos.tgz`` (from TensorFlow's example-images storage) unpacks to ``flower_photos/``
with one folder of JPEGs per class (daisy, dandelion, roses, sunflowers, tulips; 3,670 photos)
and a LICENSE.txt.  As in TF-slim, 350 photos chosen with seed 0 form the validation split and
the other 3,320 the training split; here the photo list is sorted before the seeded shuffle, so
the split does not depend on the order the file system lists files in.  The JPEG bytes are
stored unchanged.  TensorFlow publishes no checksum for the archive; every photo is decoded once
during conversion instead, and a damaged one is reported and left out.
"""
import os
import random
import shutil
import sys
import tarfile
import tempfile

from images.datasets import convert_image_folder, dataset_info, download, image_files
from images.datasets import labels_file

NAME = "flowers"
ARCHIVE = download.RemoteFile("flower_photos.tgz", [
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
    "http://download.tensorflow.org/example_images/flower_photos.tgz"])
ROOT = "flower_photos"
NUM_VALIDATION = 350
SEED = 0


def safe_extract(archive_path, dest):
    """Unpacks a tar archive into ``dest``, refusing members that would land outside it."""
    with tarfile.open(archive_path, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
            return
        root = os.path.realpath(dest)
        for member in tar.getmembers():
            target = os.path.realpath(os.path.join(dest, member.name))
            if not (target == root or target.startswith(root + os.sep)) or \
                    member.issym() or member.islnk() or member.isdev():
                raise ValueError("%s: refusing to unpack %r" % (archive_path, member.name))
        tar.extractall(dest)


def split_photos(items, num_validation=NUM_VALIDATION, seed=SEED):
    """``(train, validation)`` from ``[(path, label)]``: a seeded shuffle of the sorted list."""
    items = sorted(items)
    random.Random(seed).shuffle(items)
    return items[num_validation:], items[:num_validation]


def run(dataset_dir, num_shards=1, download_url=None, progress=True, num_workers=None,
        **unused):
    """Downloads (unless present) and converts the flower photos; returns the written paths."""
    del unused
    archive = download.fetch(ARCHIVE, dataset_dir, download_url, progress=progress)
    scratch = tempfile.mkdtemp(prefix=".flowers-", dir=dataset_dir)
    try:
        safe_extract(archive, scratch)
        root = os.path.join(scratch, ROOT)
        if not os.path.isdir(root):
            raise ValueError("%s does not unpack to %s/: it is not flower_photos.tgz"
                             % (archive, ROOT))
        classes, files, _ = image_files.list_class_folders(root)
        label_of = {name: i for i, name in enumerate(classes)}
        usable, skipped = convert_image_folder.check_images(
            [(p, label_of[c]) for p, c in files], num_workers,
            report=lambda p, r: print("skipped %s: %s" % (os.path.relpath(p, scratch), r),
                                      file=sys.stderr))
        skipped = [(os.path.relpath(p, scratch), r) for p, r in skipped]
        by_path = {info.path: info for info, _ in usable}
        train, validation = split_photos([(info.path, label) for info, label in usable])
        written, sizes, split_files = [], {}, {}
        for split, items in (("train", train), ("validation", validation)):
            paths, count = convert_image_folder.write_image_split(
                [(by_path[p], label) for p, label in items], dataset_dir, NAME, split,
                num_shards)
            written.extend(paths)
            sizes[split], split_files[split] = count, paths
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    labels_file.write_labels(dict(enumerate(classes)), dataset_dir)
    dataset_info.write_info(dataset_dir, NAME, sizes, len(classes), split_files,
                            {"source": os.path.basename(archive),
                             "skipped": [{"path": p, "reason": r} for p, r in skipped]})
    return written
