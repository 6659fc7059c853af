"""Checkpoints of a sharded model: every worker saves its shard, loading re-shards when needed.

Layout of one checkpoint, ``<model_save_dir>/ckpt-<step>/``::

    shard-00000-of-00002.npz    this shard's class-major arrays: the FC rows, bias, and the
    shard-00000-of-00002.json   optimizer slots of both (bit-exact .npy inside), and its meta
                                (worker count, embedding size, class count, class range)
    shared.index / .data-*      every other variable (backbone, its slots, global step), by rank 0
    meta.json                   the checkpoint's meta; written last, so its presence marks a
                                complete checkpoint

``<model_save_dir>/checkpoint.json`` names the newest complete checkpoint.

Writing needs no lock files and no polling: each worker writes its own files under temporary names
and renames them; a collective barrier (an allreduce every worker runs) separates that from rank 0
writing the shared variables and the meta, renaming the folder into place and updating
``checkpoint.json``; a last barrier lets no worker continue before the checkpoint is complete.
Loading with a different worker count concatenates the old shards that overlap this worker's new
class range and cuts out its rows; arrays are only copied, so N -> N' -> N reproduces every byte.
"""
import json
import logging
import os
import shutil
import zipfile
import zlib

import numpy as np
import tensorflow.compat.v1 as tf

from images.largescale import sharding

log = logging.getLogger("fastnn")

FORMAT_VERSION = 1
POINTER = "checkpoint.json"
META = "meta.json"
SHARED_PREFIX = "shared"


def _atomic_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def shard_file(directory, rank, num_shards):
    """Path of the arrays of one shard (``.npz``); its meta is the same path with ``.json``."""
    return os.path.join(directory, "shard-%05d-of-%05d.npz" % (rank, num_shards))


def resolve_checkpoint(path):
    """The folder of a complete checkpoint from that folder or from a ``model_save_dir``.

    Raises:
      FileNotFoundError: nothing there, or the checkpoint is incomplete; the message says what
        was looked for.
    """
    if not path or not os.path.isdir(path):
        raise FileNotFoundError("checkpoint dir %r does not exist" % (path,))
    if os.path.exists(os.path.join(path, META)):
        return path
    pointer = os.path.join(path, POINTER)
    if os.path.exists(pointer):
        name = _read_json(pointer, "checkpoint pointer").get("latest")
        if not name:
            raise DamagedCheckpointError("checkpoint pointer %s names no checkpoint" % pointer)
        folder = os.path.join(path, name)
        if not os.path.exists(os.path.join(folder, META)):
            raise FileNotFoundError("%s names %s, which has no %s (incomplete checkpoint)"
                                    % (pointer, folder, META))
        return folder
    raise FileNotFoundError("no checkpoint in %s: expected %s (a checkpoint folder) or %s "
                            "(a model_save_dir)" % (path, META, POINTER))


def latest_checkpoint(model_save_dir):
    """The newest complete checkpoint folder in ``model_save_dir``, or None."""
    try:
        return resolve_checkpoint(model_save_dir) if os.path.exists(
            os.path.join(model_save_dir, POINTER)) else None
    except FileNotFoundError:
        return None


class DamagedCheckpointError(ValueError):
    """A checkpoint file is cut short or unreadable; the message names it and what is wrong."""


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise DamagedCheckpointError("%s %s cannot be read (%s: %s): it is damaged or cut "
                                     "short; resume from an earlier checkpoint" % (
                                         what, path, type(e).__name__, e)) from None


def read_meta(folder):
    """The checkpoint's ``meta.json`` as a dict.

    Raises:
      DamagedCheckpointError: the file is not complete JSON.
    """
    return _read_json(os.path.join(folder, META), "checkpoint meta")


def load_shard(path, names, rows):
    """``{name: array}`` of one shard file, checked to hold ``names`` with ``rows`` rows each.

    Raises:
      DamagedCheckpointError: naming the file and what is wrong with it (cut short, not an .npz,
        an array missing or of the wrong length).
    """
    try:
        size = os.path.getsize(path)
        with np.load(path) as data:
            missing = sorted(set(names) - set(data.files))
            if missing:
                raise DamagedCheckpointError("checkpoint shard %s lacks array(s) %s (it holds %s)"
                                             % (path, ", ".join(missing), ", ".join(data.files)))
            arrays = {n: data[n] for n in names}
    except FileNotFoundError:
        raise DamagedCheckpointError("checkpoint shard %s is missing: the checkpoint is "
                                     "incomplete; resume from an earlier one" % path) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        if isinstance(e, DamagedCheckpointError):
            raise
        raise DamagedCheckpointError(
            "checkpoint shard %s (%d bytes) is damaged or cut short: %s: %s. Resume from an "
            "earlier checkpoint (set_checkpoint_dir) or copy the shard again"
            % (path, size, type(e).__name__, e)) from None
    bad = sorted("%s has %d rows" % (n, a.shape[0]) for n, a in arrays.items()
                 if a.ndim == 0 or a.shape[0] != rows)
    if bad:
        raise DamagedCheckpointError("checkpoint shard %s does not match its meta (%d rows "
                                     "expected): %s" % (path, rows, "; ".join(bad)))
    return arrays


class ShardedCheckpointer:
    """Saves and restores one worker's part of a model with a (possibly) sharded FC layer.

    Args:
      comm: :class:`images.largescale.collectives.Collectives` over all workers.
      shard_arrays: ``{name: variable}`` of the FC layer (class-major), including optimizer
        slots (``weights/momentum``); all share the class axis 0.
      other_variables: every other variable to save (rank 0 saves them).
      optional_variables: those of ``other_variables`` a checkpoint may lack (the loss-scale
        state when mixed precision is switched on); they keep their initial values then.
      num_classes: class count of the layer.
      emb_size: embedding width.
      num_shards: shards the FC layer is split into: the worker count for dist losses, 1 for
        whole-layer losses (every worker then holds the same layer, rank 0 saves it).
      extra_meta: more entries for ``meta.json`` (loss type, ...).
      max_to_keep: complete checkpoints kept in a ``model_save_dir``.
    """

    def __init__(self, comm, shard_arrays, other_variables, *, num_classes, emb_size,
                 num_shards, extra_meta=None, max_to_keep=3, optional_variables=()):
        self.comm = comm
        self.num_classes = int(num_classes)
        self.emb_size = int(emb_size)
        self.num_shards = int(num_shards)
        self.shard_rank = comm.rank if self.num_shards > 1 else 0
        self.start, self.num_local = sharding.shard_range(self.num_classes, self.num_shards,
                                                          self.shard_rank)
        self.extra_meta = dict(extra_meta or {})
        self.max_to_keep = max_to_keep
        self._vars = dict(shard_arrays)
        for name, var in self._vars.items():
            if var.shape[0] != self.num_local:
                raise ValueError("shard array %s has %s rows, expected %d" % (
                    name, var.shape[0], self.num_local))
        self._placeholders = {}
        self._assigns = []
        for name, var in sorted(self._vars.items()):
            ph = tf.placeholder(var.dtype.base_dtype, var.shape, name="restore_" + _op_name(name))
            self._placeholders[name] = ph
            self._assigns.append(var.assign(ph, read_value=False))
        self._restore_op = tf.group(*self._assigns) if self._assigns else tf.no_op()
        self._saver = tf.train.Saver(var_list=list(other_variables), max_to_keep=None,
                                     save_relative_paths=True, sharded=False) \
            if other_variables else None
        optional = {v.op.name for v in optional_variables}
        required = [v for v in other_variables if v.op.name not in optional]
        self._optional = sorted(optional)
        self._required_saver = tf.train.Saver(var_list=required, save_relative_paths=True,
                                              sharded=False) if optional and required else None
        self._barrier = comm.make_barrier(name="checkpoint_barrier")

    @property
    def writes_shard(self):
        """Whether this worker writes shard files (all workers for dist losses, else rank 0)."""
        return self.num_shards > 1 or self.comm.rank == 0

    def _meta(self, step):
        meta = dict(self.extra_meta)
        meta.update(format=FORMAT_VERSION, step=int(step), num_workers=self.comm.size,
                    num_shards=self.num_shards, num_classes=self.num_classes,
                    emb_size=self.emb_size,
                    arrays={n: list(v.shape.as_list()[1:]) for n, v in sorted(self._vars.items())})
        return meta

    def save(self, sess, model_save_dir, step):
        """Writes checkpoint ``ckpt-<step>``; every worker must call it.  Returns the folder."""
        final = os.path.join(model_save_dir, "ckpt-%d" % int(step))
        tmp = final + ".tmp"
        if self.comm.rank == 0:
            os.makedirs(model_save_dir, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)  # a crashed earlier attempt
            os.makedirs(tmp)
        self._barrier(sess)
        if self.writes_shard:
            arrays = sess.run(self._vars) if self._vars else {}
            path = shard_file(tmp, self.shard_rank, self.num_shards)
            with open(path + ".part", "wb") as f:
                np.savez(f, **arrays)
            os.replace(path + ".part", path)
            shard_meta = self._meta(step)
            shard_meta.update(rank=self.shard_rank, start=self.start, num_local=self.num_local)
            _atomic_json(path[:-len(".npz")] + ".json", shard_meta)
        self._barrier(sess)
        if self.comm.rank == 0:
            if self._saver is not None:
                self._saver.save(sess, os.path.join(tmp, SHARED_PREFIX), write_meta_graph=False,
                                 write_state=False)
            _atomic_json(os.path.join(tmp, META), self._meta(step))
            if os.path.exists(final):
                shutil.rmtree(final)
            os.replace(tmp, final)
            self._update_pointer(model_save_dir, os.path.basename(final))
            log.info("saved checkpoint %s (%d shard(s) of %d classes)", final, self.num_shards,
                     self.num_classes)
        self._barrier(sess)
        return final

    def _update_pointer(self, model_save_dir, name):
        pointer = os.path.join(model_save_dir, POINTER)
        names = []
        if os.path.exists(pointer):
            with open(pointer, encoding="utf-8") as f:
                names = [n for n in json.load(f).get("all", []) if n != name]
        names.append(name)
        keep, drop = names[-self.max_to_keep:], names[:-self.max_to_keep]
        _atomic_json(pointer, {"latest": name, "all": keep})
        for old in drop:
            shutil.rmtree(os.path.join(model_save_dir, old), ignore_errors=True)

    def restore(self, sess, path):
        """Loads the checkpoint at ``path`` (a checkpoint folder or a ``model_save_dir``),
        re-sharding the FC arrays when it was written by a different number of shards.

        Raises:
          FileNotFoundError: no complete checkpoint there.
          ValueError: the checkpoint's class count or embedding size differs from the model's.
        """
        folder = resolve_checkpoint(path)
        meta = read_meta(folder)
        for key, mine in (("num_classes", self.num_classes), ("emb_size", self.emb_size)):
            if meta[key] != mine:
                raise ValueError("checkpoint %s has %s=%d but the model has %d; set it to %d or "
                                 "train from scratch" % (folder, key, meta[key], mine, meta[key]))
        old_shards = int(meta["num_shards"])
        saved = set(meta["arrays"])
        missing = sorted(set(self._vars) - saved)
        if missing:
            raise ValueError("checkpoint %s lacks FC arrays %s (saved: %s): was it trained with "
                             "another loss type or optimizer?" % (folder, missing, sorted(saved)))
        pieces = sharding.overlapping_shards(self.num_classes, old_shards, self.start,
                                             self.num_local)
        out = {n: np.empty([self.num_local] + v.shape.as_list()[1:], v.dtype.as_numpy_dtype)
               for n, v in self._vars.items()}
        for old_rank, lo, hi, pos in pieces:
            _, old_rows = sharding.shard_range(self.num_classes, old_shards, old_rank)
            data = load_shard(shard_file(folder, old_rank, old_shards), list(out), old_rows)
            for name in out:
                out[name][pos:pos + hi - lo] = data[name][lo:hi]
        if self._vars:
            sess.run(self._restore_op, {self._placeholders[n]: a for n, a in out.items()})
        if self._saver is not None:
            prefix = os.path.join(folder, SHARED_PREFIX)
            saved = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
            absent = [n for n in self._optional if n not in saved]
            if absent and self._required_saver is not None:
                log.info("%s has no %s: they start from their initial values", folder,
                         ", ".join(absent))
                self._required_saver.restore(sess, prefix)
            else:
                self._saver.restore(sess, prefix)
        if old_shards != self.num_shards:
            log.info("re-sharded %s from %d to %d shard(s)", folder, old_shards, self.num_shards)
        log.info("restored %s (step %d)", folder, meta["step"])
        return meta


def _op_name(name):
    return name.replace("/", "_").replace(":", "_")
