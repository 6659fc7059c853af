"""The dataset registry: name -> splits, sizes, class count, file pattern, parse function.

Names: ``mock`` (synthetic in-memory batches, FastNN's default), ``digits`` (scikit-learn's 8x8
hand-written digits), ``cifar10``, ``mnist``, ``flowers``, ``imagenet`` and ``custom`` (a folder of
the user's own images converted by ``images/datasets/convert_image_folder.py``; its class count
comes from ``labels.txt``).
"""
import dataclasses
import fnmatch
import functools
import glob
import os
from typing import Callable, Dict, List, Optional

from images.datasets import dataset_info, example_codec, labels_file


@dataclasses.dataclass(frozen=True)
class DatasetRecord:
    """Facts about one dataset.

    Attributes:
      name: registry name.
      num_classes: classes in the label space the network predicts; None means "read
        ``labels.txt`` in dataset_dir" (custom) or "take ``--num_classes``" (mock).
      splits: ``{split name: number of examples}``; a size of None is unknown in advance.
      file_pattern: glob pattern inside dataset_dir, ``%s`` standing for the split name.
      channels: channels decoded from ``image/encoded``.
      labels_offset: subtracted from stored labels (ImageNet stores 1..1000 and a background
        class 0; with offset 1 the network sees 0..999).
      with_bbox: records carry bounding boxes for inception preprocessing.
      is_mock: synthetic data generated in memory, no files.
    """
    name: str
    num_classes: Optional[int]
    splits: Dict[str, Optional[int]]
    file_pattern: str = ""
    channels: int = 3
    labels_offset: int = 0
    with_bbox: bool = False
    is_mock: bool = False
    description: str = ""

    def parse_fn(self) -> Callable:
        """``fn(serialized) -> (image uint8, label int64[, bbox])`` for this dataset's records."""
        return functools.partial(example_codec.parse_example, channels=self.channels,
                                 with_bbox=self.with_bbox)


_REGISTRY: Dict[str, DatasetRecord] = {}


def register(record: DatasetRecord) -> DatasetRecord:
    """Adds ``record``; a name may be registered once."""
    if record.name in _REGISTRY:
        raise ValueError("dataset %r is registered twice" % record.name)
    _REGISTRY[record.name] = record
    return record


for _record in (
        DatasetRecord("mock", None, {"train": None, "test": None, "validation": None},
                      is_mock=True, description="synthetic in-memory batches"),
        DatasetRecord("digits", 10, {"train": 1437, "test": 360}, "digits_%s*.tfrecord",
                      channels=1, description="scikit-learn's 8x8 hand-written digits"),
        DatasetRecord("cifar10", 10, {"train": 50000, "test": 10000}, "cifar10_%s*.tfrecord",
                      description="CIFAR-10, 32x32 colour"),
        DatasetRecord("mnist", 10, {"train": 60000, "test": 10000}, "mnist_%s*.tfrecord",
                      channels=1, description="MNIST, 28x28 grey"),
        DatasetRecord("flowers", 5, {"train": 3320, "validation": 350}, "flowers_%s*.tfrecord",
                      description="TensorFlow's flower photos, 5 classes"),
        DatasetRecord("imagenet", 1001, {"train": 1281167, "validation": 50000},
                      "%s-*", with_bbox=True,
                      description="ImageNet in TF-slim's TFRecord layout (labels 1..1000)"),
        DatasetRecord("custom", None, {"train": None, "validation": None},
                      "custom_%s*.tfrecord",
                      description="the user's own image folders (convert_image_folder.py)"),
):
    register(_record)


def list_datasets(pattern: str = "*") -> List[str]:
    """Sorted dataset names matching ``pattern``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_dataset(name: str) -> DatasetRecord:
    """Returns the record of ``name``; an unknown name raises with the list of valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError("unknown dataset_name %r; valid names: %s"
                         % (name, ", ".join(sorted(_REGISTRY)))) from None


def check_split(record: DatasetRecord, split_name: str) -> None:
    """Raises ValueError naming the valid splits when ``split_name`` is not one of them."""
    if split_name not in record.splits:
        raise ValueError("dataset %r has no split %r; its splits are: %s"
                         % (record.name, split_name, ", ".join(sorted(record.splits))))


def resolve_num_classes(record: DatasetRecord, dataset_dir: Optional[str],
                        default: Optional[int]) -> int:
    """Class count seen by the network: the record's, ``labels.txt``'s, or ``default`` (mock)."""
    if record.num_classes is not None:
        return record.num_classes - record.labels_offset
    if record.is_mock:
        if not default or default <= 0:
            raise ValueError("dataset 'mock' needs --num_classes > 0")
        return default
    if not dataset_dir:
        raise ValueError("dataset %r takes its class count from labels.txt: give --dataset_dir"
                         % record.name)
    labels = labels_file.read_labels(dataset_dir)
    if sorted(labels) != list(range(len(labels))):
        raise ValueError("%s/%s must number its classes 0..N-1 without gaps; convert the "
                         "dataset again" % (dataset_dir, labels_file.LABELS_FILENAME))
    return len(labels)


def split_size(record: DatasetRecord, split_name: str,
               dataset_dir: Optional[str] = None) -> Optional[int]:
    """Examples in a split: the registry's figure, else the converter's ``<name>_info.json`` in
    ``dataset_dir`` (the user's own datasets), else None (not known in advance)."""
    check_split(record, split_name)
    size = record.splits[split_name]
    if size is None and dataset_dir and not record.is_mock:
        info = dataset_info.read_info(dataset_dir, record.name)
        if info is not None:
            size = info.get("splits", {}).get(split_name)
    return size


def resolve_files(record: DatasetRecord, dataset_dir: Optional[str], split_name: str = "train",
                  file_names: Optional[str] = None) -> List[str]:
    """The sorted list of TFRecord files to read.

    Args:
      record: the dataset.
      dataset_dir: folder of the files.
      split_name: split whose pattern is used when ``file_names`` is not given.
      file_names: FastNN's ``--train_files``: comma-separated names (or glob patterns) inside
        ``dataset_dir``.

    Raises:
      ValueError: mock data has no files, or no dataset_dir was given.
      FileNotFoundError: nothing matched; the message names the pattern and the folder.
    """
    if record.is_mock:
        raise ValueError("dataset 'mock' is generated in memory and reads no files")
    if not dataset_dir:
        raise ValueError("dataset %r is read from TFRecord files: give --dataset_dir "
                         "(convert it with images/datasets/download_and_convert_data.py)"
                         % record.name)
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError("dataset_dir %s does not exist" % dataset_dir)
    if file_names:
        patterns = [p.strip() for p in file_names.split(",") if p.strip()]
        if not patterns:
            raise ValueError("--train_files=%r names no file: give comma-separated TFRecord file "
                             "names or glob patterns inside --dataset_dir (e.g. "
                             "--train_files=%s), or leave it out to read the split's files"
                             % (file_names, record.file_pattern.replace("%s", "train")
                                if record.file_pattern else "train-*"))
    else:
        check_split(record, split_name)
        patterns = [record.file_pattern % split_name]
    files = []
    for pattern in patterns:
        matched = sorted(p for p in glob.glob(os.path.join(dataset_dir, pattern))
                         if not p.endswith(".tmp"))
        if not matched:
            raise FileNotFoundError(
                "no files match %r in %s (dataset %r); convert the data with "
                "images/datasets/download_and_convert_data.py --dataset_name=%s --dataset_dir=%s%s"
                % (pattern, dataset_dir, record.name, record.name, dataset_dir,
                   " --image_dir=<folder with one sub-folder per class>"
                   if record.name == "custom" else ""))
        files.extend(matched)
    return sorted(set(files))
