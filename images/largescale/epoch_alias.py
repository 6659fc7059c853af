"""PLSC's checkpoint names: ``<model_save_dir>/<epoch>`` for the checkpoint saved at the end of
epoch ``epoch`` (0-based), so that PLSC's ``set_checkpoint_dir('./saved_model/0/')`` finds it.

Checkpoints themselves stay ``ckpt-<step>`` (the step is exact also mid-epoch); the epoch
names are symbolic links to them, made with a temporary name and renamed into place, and
removed when the checkpoint they name is deleted (``max_to_keep``).
"""
import logging
import os

log = logging.getLogger("fastnn")


def link(model_save_dir, epoch, checkpoint_folder):
    """Makes ``<model_save_dir>/<epoch>`` point at ``checkpoint_folder`` (replacing an older
    link of that name; a real folder of that name is left alone)."""
    alias = os.path.join(model_save_dir, str(int(epoch)))
    if os.path.exists(alias) and not os.path.islink(alias):
        log.warning("%s is not a link made here; the epoch %d checkpoint stays under %s only",
                    alias, epoch, checkpoint_folder)
        return None
    tmp = alias + ".link-tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.basename(checkpoint_folder), tmp)
    os.replace(tmp, alias)
    return alias


def prune(model_save_dir):
    """Removes epoch links whose checkpoint is gone."""
    for name in os.listdir(model_save_dir):
        path = os.path.join(model_save_dir, name)
        if name.isdigit() and os.path.islink(path) and not os.path.exists(path):
            os.remove(path)
