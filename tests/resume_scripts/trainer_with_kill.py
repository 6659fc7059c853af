"""The trainer, killed with SIGKILL at a chosen moment: ``FASTNN_TEST_KILL=moment:step[:rank]``.

    python tests/resume_scripts/trainer_with_kill.py <train_image_classifiers.py flags>

Moments (the process kills itself, as ``kill -9`` would, with nothing flushed or closed):

* ``before_save``: after step ``step``'s update, before its checkpoint is written;
* ``mid_save``: inside the save of step ``step``, after the checkpoint's data files are in
  place and before the ``checkpoint`` state file names them;
* ``temp_write``: inside the save of step ``step``, while its data is still under temporary
  names (half of it written);
* ``after_end``: after the run's last checkpoint, before the process would exit.

Only the worker of rank ``rank`` (default 0) kills itself; without the variable this is the
plain trainer.  Lives in tests/: the trainer itself carries no test hook.
"""
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
os.chdir(ROOT)

import tensorflow.compat.v1 as tf  # noqa: E402
from absl import app  # noqa: E402

import train_image_classifiers as trainer  # noqa: E402
from images.utils import hooks as hooks_lib  # noqa: E402
from tensorflow.python.checkpoint import checkpoint_management  # noqa: E402


def _die():
    sys.stderr.write("fastnn-test: killing myself (SIGKILL)\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _rank():
    for key in ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


class _KillAfterStep(tf.train.SessionRunHook):
    def __init__(self, step):
        self._step = step
        self._gs = None

    def begin(self):
        self._gs = tf.train.get_global_step()

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._gs)

    def after_run(self, run_context, run_values):
        if int(run_values.results) + 1 == self._step:
            _die()


class _KillAtEnd(tf.train.SessionRunHook):
    def end(self, session):
        _die()


def _install(moment, step):
    build = hooks_lib.build_hooks

    if moment == "before_save":
        def patched(*args, **kwargs):
            # First in the list: its after_run runs before the saver's.
            return [_KillAfterStep(step)] + build(*args, **kwargs)
        hooks_lib.build_hooks = patched
    elif moment == "after_end":
        def patched(*args, **kwargs):
            # Last in the list: its end() runs after the saver's final save.
            return build(*args, **kwargs) + [_KillAtEnd()]
        hooks_lib.build_hooks = patched
    elif moment == "mid_save":
        update = checkpoint_management.update_checkpoint_state_internal

        def patched_update(save_dir, model_checkpoint_path, *args, **kwargs):
            if model_checkpoint_path.endswith("-%d" % step):
                _die()
            return update(save_dir, model_checkpoint_path, *args, **kwargs)
        checkpoint_management.update_checkpoint_state_internal = patched_update
    elif moment == "temp_write":
        save = tf.train.Saver.save

        def patched_save(self, sess, save_path, global_step=None, *args, **kwargs):
            if global_step is not None and int(global_step) == step:
                # What a kill in the middle of writing leaves: half-written temporary files.
                prefix = "%s-%d" % (save_path, step)
                for suffix in (".data-00000-of-00001.tempstate123", ".index.tempstate123"):
                    with open(prefix + suffix, "wb") as f:
                        f.write(b"\0" * 4096)
                _die()
            return save(self, sess, save_path, global_step, *args, **kwargs)
        tf.train.Saver.save = patched_save
    else:
        raise SystemExit("unknown FASTNN_TEST_KILL moment %r" % moment)


def main():
    spec = os.environ.get("FASTNN_TEST_KILL")
    if spec:
        parts = spec.split(":")
        moment, step = parts[0], int(parts[1])
        rank = int(parts[2]) if len(parts) > 2 else 0
        if _rank() == rank:
            _install(moment, step)
    sys.argv[0] = os.path.join(ROOT, "train_image_classifiers.py")
    app.run(trainer.main)


if __name__ == "__main__":
    main()
