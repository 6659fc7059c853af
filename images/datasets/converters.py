"""Registry of dataset converters used by ``download_and_convert_data.py``.

Each converter is ``run(dataset_dir, num_shards=1, **options) -> written TFRecord paths`` and
declares which options it reads; the entry point rejects a flag the chosen converter ignores.
"""
import dataclasses
from typing import Callable, Dict, FrozenSet

from images.datasets import (convert_cifar10, convert_digits, convert_flowers,
                             convert_image_folder, convert_mnist)


@dataclasses.dataclass(frozen=True)
class Converter:
    """A converter and the options (beyond dataset_dir and num_shards) it reads."""
    name: str
    run: Callable
    options: FrozenSet[str]
    description: str


_DOWNLOAD = frozenset({"download_url", "progress"})

_CONVERTERS: Dict[str, Converter] = {c.name: c for c in (
    Converter(convert_cifar10.NAME, convert_cifar10.run, _DOWNLOAD,
              "CIFAR-10 python tarball from the University of Toronto"),
    Converter(convert_digits.NAME, convert_digits.run, frozenset(),
              "scikit-learn's 8x8 digits (no download)"),
    Converter(convert_flowers.NAME, convert_flowers.run, _DOWNLOAD | {"num_workers"},
              "TensorFlow's flower photos"),
    Converter(convert_mnist.NAME, convert_mnist.run, _DOWNLOAD,
              "MNIST idx files"),
    Converter(convert_image_folder.NAME, convert_image_folder.run,
              frozenset({"image_dir", "validation_fraction", "num_workers"}),
              "your own images: one sub-folder per class"),
)}


def list_converters():
    """Sorted names of the datasets that can be downloaded and converted."""
    return sorted(_CONVERTERS)


def get_converter_record(name) -> Converter:
    """The :class:`Converter` of ``name``; unknown names list the valid ones."""
    if name not in _CONVERTERS:
        raise ValueError("no converter for dataset_name %r; valid: %s"
                         % (name, ", ".join(list_converters())))
    return _CONVERTERS[name]


def get_converter(name):
    """``fn(dataset_dir, num_shards=1, **options) -> written paths`` of converter ``name``."""
    return get_converter_record(name).run
