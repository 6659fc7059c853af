"""Registry of dataset converters used by ``download_and_convert_data.py``."""
from images.datasets import convert_digits

_CONVERTERS = {
    convert_digits.NAME: convert_digits.run,
}


def list_converters():
    """Sorted names of the datasets that can be downloaded and converted."""
    return sorted(_CONVERTERS)


def get_converter(name):
    """``fn(dataset_dir, num_shards=1, **options) -> written paths``; unknown names list the valid."""
    if name not in _CONVERTERS:
        raise ValueError("no converter for dataset_name %r; valid: %s"
                         % (name, ", ".join(list_converters())))
    return _CONVERTERS[name]
