"""``<name>_info.json``: what a converter wrote (split sizes, class count, files).

The registry cannot know the sizes of the user's own datasets in advance; the converter records
them here so the trainer can size epochs (``dataset_factory.split_size``) without counting records.
"""
import json
import os

SUFFIX = "_info.json"


def info_path(dataset_dir, dataset_name):
    """Where the info file of ``dataset_name`` lives inside ``dataset_dir``."""
    return os.path.join(dataset_dir, dataset_name + SUFFIX)


def write_info(dataset_dir, dataset_name, splits, num_classes, files, extra=None):
    """Writes the info file atomically.

    Args:
      dataset_dir: the converted dataset's folder.
      dataset_name: registry name.
      splits: ``{split: number of records}``.
      num_classes: classes in labels.txt.
      files: ``{split: [file names inside dataset_dir]}``.
      extra: more JSON-able facts (e.g. the source and the skipped files).
    """
    info = {"dataset": dataset_name, "splits": dict(splits), "num_classes": num_classes,
            "files": {k: [os.path.basename(p) for p in v] for k, v in files.items()}}
    info.update(extra or {})
    path = info_path(dataset_dir, dataset_name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return path


def read_info(dataset_dir, dataset_name):
    """The info dict, or None when the folder has no info file for ``dataset_name``.

    Raises:
      ValueError: the file exists but is not valid JSON (names the file).
    """
    path = info_path(dataset_dir, dataset_name)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError("%s is not valid JSON (%s): convert the dataset again" % (path, e))
