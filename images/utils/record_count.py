"""Counts the records of TFRecord files, once: the epoch size of files named by the user.

Epoch-based learning-rate decay needs the number of examples in an epoch.  The registry knows it
for a whole split; files named with ``--train_files`` (or FastNN's ``--file_pattern``) are counted
here instead, so the schedule does not depend on how the files were named.  Counting walks the
TFRecord framing without reading the data (:func:`images.datasets.positions.count_records`), and
the result is cached beside the data in ``.fastnn_record_counts.json`` (keyed by file name, size
and modification time), so the count happens once per file.
"""
import json
import os

from images.datasets import positions

CACHE_NAME = ".fastnn_record_counts.json"


def _load_cache(folder):
    try:
        with open(os.path.join(folder, CACHE_NAME), encoding="utf-8") as f:
            cache = json.load(f)
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(folder, cache):
    path = os.path.join(folder, CACHE_NAME)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(cache, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
        return True
    except OSError:  # a read-only data folder: count again next time
        try:
            os.remove(tmp)
        except OSError:
            pass
        return False


def count_files(files):
    """Total records in ``files``, from the cache beside them where it is current.

    Returns:
      ``(total, counted)``: the number of records, and how many files had to be read now.

    Raises:
      ValueError: a file is not a whole uncompressed TFRecord file.
    """
    by_folder = {}
    for path in files:
        by_folder.setdefault(os.path.dirname(os.path.abspath(path)), []).append(path)
    total = counted = 0
    for folder, paths in by_folder.items():
        cache, changed = _load_cache(folder), False
        for path in paths:
            stat = os.stat(path)
            key = os.path.basename(path)
            entry = cache.get(key)
            if not (isinstance(entry, dict) and entry.get("bytes") == stat.st_size
                    and entry.get("mtime_ns") == stat.st_mtime_ns):
                entry = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                         "records": positions.count_records(path, whole=True)}
                cache[key] = entry
                changed = True
                counted += 1
            total += entry["records"]
        if changed:
            _save_cache(folder, cache)
    return total, counted


def epoch_size(files):
    """``(examples, None)`` for local TFRecord files, or ``(None, why not)``."""
    remote = [f for f in files if "://" in f]
    if remote:
        return None, "files such as %s are not on a local file system" % remote[0]
    try:
        total, _ = count_files(files)
    except (OSError, ValueError) as e:
        return None, str(e)
    return total, None
