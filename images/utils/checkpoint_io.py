"""Checkpoint writing that fails in one clear line and leaves no debris.

TensorFlow writes a checkpoint's data under temporary names (``*.tempstate<N>``, ``*_temp/``)
and renames them, then rewrites the ``checkpoint`` state file through a temporary name
(``checkpoint.tmp<hex>``).  A crash or a full disk in between leaves those temporary files behind,
and the next save does not reuse them: :func:`remove_stale_temp_files` clears them when a run
starts.  :class:`GuardedSaver` turns a failed save into :class:`CheckpointWriteError` naming the
path and the cause, after removing what the failed save left; the previous checkpoint is intact
because the state file still names it.
"""
import errno
import glob
import logging
import numbers
import os
import re
import shutil

import tensorflow.compat.v1 as tf

log = logging.getLogger("fastnn")

# Names TensorFlow's savers and atomic writes use for files not yet renamed into place.
_TEMP_PATTERNS = ("*.tempstate*", "*_temp", "*.tmp[0-9a-f]*")
_ATOMIC_SUFFIX = re.compile(r"\.tmp[0-9a-f]{32}$")


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the message names the path and the cause."""


def _is_temp(path):
    name = os.path.basename(path)
    return (".tempstate" in name or (name.endswith("_temp") and os.path.isdir(path))
            or bool(_ATOMIC_SUFFIX.search(name)))


def _size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def temp_files(directory, prefix=""):
    """Temporary checkpoint files (and folders) in ``directory`` whose names start with
    ``prefix``."""
    found = set()
    for pattern in _TEMP_PATTERNS:
        for path in glob.glob(os.path.join(glob.escape(directory), glob.escape(prefix) + pattern)):
            if _is_temp(path):
                found.add(path)
    return sorted(found)


def remove_stale_temp_files(directory, left_by="an interrupted save"):
    """Removes what interrupted saves left in ``directory``; returns ``(count, bytes)``.

    Call it before the run's first save, on the worker that saves: a temporary file then
    belongs to a save that can no longer finish.
    """
    if not directory or not os.path.isdir(directory):
        return 0, 0
    count = total = 0
    for path in temp_files(directory):
        try:
            size = _size(path)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError as e:
            log.warning("could not remove the stale temporary checkpoint file %s: %s", path, e)
            continue
        count += 1
        total += size
    if count:
        log.info("removed %d stale temporary checkpoint file(s) (%.1f MB) left by %s in %s",
                 count, total / 1e6, left_by, directory)
    return count, total


def describe_write_error(error):
    """The cause of a failed write in a few words (``No space left on device`` ...)."""
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    text = getattr(error, "message", None) or str(error)
    for code, words in ((errno.ENOSPC, "No space left on device"),
                        (errno.EDQUOT, "Disk quota exceeded"),
                        (errno.EACCES, "Permission denied"),
                        (errno.EROFS, "Read-only file system"),
                        (errno.EIO, "Input/output error")):
        if words.lower() in text.lower():
            return os.strerror(code)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return "%s: %s" % (type(error).__name__, first[:300])


_WRITE_ERRORS = (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError,
                 tf.errors.FailedPreconditionError, tf.errors.UnavailableError,
                 tf.errors.InternalError, tf.errors.UnknownError, tf.errors.DataLossError)


def write_error_message(error, train_dir):
    """One line for a failed write of a file in ``train_dir`` (graph, summaries, flags), else
    None; the temporary files the failed write left are removed."""
    if not train_dir:
        return None
    text = getattr(error, "message", None) or str(error)
    filename = getattr(error, "filename", None)
    root = os.path.abspath(train_dir)
    if isinstance(error, OSError) and filename:
        path = os.path.abspath(str(filename))
    elif isinstance(error, _WRITE_ERRORS):
        match = re.search(r"(%s\S*?);" % re.escape(root), text) or re.search(
            r"(%s\S*)" % re.escape(root), text)
        if not match:
            return None
        path = match.group(1)
    else:
        return None
    if not path.startswith(root):
        return None
    remove_stale_temp_files(train_dir, "the failed write")
    if path.endswith(".tmp"):  # the trainer's own write-then-rename (flags.txt.tmp)
        _remove_quietly(path)
        path = path[:-len(".tmp")]
    path = _ATOMIC_SUFFIX.sub("", path)
    latest = tf.train.latest_checkpoint(train_dir)
    return ("cannot write %s: %s. %s" % (
        path, describe_write_error(error),
        "The last checkpoint, %s, is intact." % latest if latest else
        "No checkpoint was written yet."))


class GuardedSaver(tf.train.Saver):
    """``tf.train.Saver`` whose failed ``save`` raises :class:`CheckpointWriteError`.

    The error names the checkpoint path, the cause (``No space left on device`` ...) and the
    checkpoint the state file still names; the failed save's temporary files are removed.
    """

    def save(self, sess, save_path, global_step=None, *args, **kwargs):
        try:
            return super().save(sess, save_path, global_step, *args, **kwargs)
        except (tf.errors.OpError, OSError) as e:
            directory = os.path.dirname(save_path) or "."
            step = ""
            if global_step is not None:
                try:
                    step = "-%d" % (int(global_step) if isinstance(global_step, numbers.Integral)
                                    else tf.train.global_step(sess, global_step))
                except (tf.errors.OpError, TypeError, ValueError):
                    step = ""
            for path in temp_files(directory, os.path.basename(save_path)):
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else (
                    _remove_quietly(path))
            previous = tf.train.latest_checkpoint(directory)
            raise CheckpointWriteError(
                "cannot write checkpoint %s%s: %s. %s" % (
                    save_path, step, describe_write_error(e),
                    "The previous checkpoint, %s, is intact." % previous if previous
                    else "No earlier checkpoint exists.")) from None


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
