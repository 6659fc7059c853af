"""``labels.txt``: one ``<id>:<name>`` line per class, as TF-slim writes it."""
import os

LABELS_FILENAME = "labels.txt"


def write_labels(labels_to_names, dataset_dir, filename=LABELS_FILENAME):
    """Writes ``{id: name}`` sorted by id, atomically (temporary name, then rename)."""
    path = os.path.join(dataset_dir, filename)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for label in sorted(labels_to_names):
            f.write("%d:%s\n" % (label, labels_to_names[label]))
    os.replace(tmp, path)
    return path


def has_labels(dataset_dir, filename=LABELS_FILENAME):
    """True when ``dataset_dir`` holds a labels file."""
    return os.path.isfile(os.path.join(dataset_dir, filename))


def read_labels(dataset_dir, filename=LABELS_FILENAME):
    """Returns ``{id: name}``.

    Raises:
      FileNotFoundError: no labels file; says where it was looked for.
      ValueError: a malformed line, with its number.
    """
    path = os.path.join(dataset_dir, filename)
    if not os.path.isfile(path):
        raise FileNotFoundError("no %s in %s: convert the dataset first "
                                "(images/datasets/download_and_convert_data.py)"
                                % (filename, dataset_dir))
    labels = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            key, sep, name = line.partition(":")
            if not sep or not key.strip().isdigit():
                raise ValueError("%s line %d: expected '<id>:<name>', got %r" % (path, number, line))
            labels[int(key)] = name
    return labels
