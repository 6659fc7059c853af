#!/usr/bin/env python
"""Trains several registry networks for a few steps each through ``train_image_classifiers``.

    python tests/data/train_models_worker.py OUT.jsonl TRAIN_ROOT name:size [name:size ...]

Each network runs the trainer's own ``main`` with the command line a user would type
(``--dataset_name=mock``, a tiny ``--train_image_size``, ``--batch_size=2``,
``--stop_at_step=2``), one after the other in this process, so TensorFlow starts once for the
group instead of once per network.  One JSON line per network goes to OUT.jsonl: the exit code,
the steps and losses the trainer logged, and the error if any.  Used by tests/test_models.py.
"""
import json
import logging
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import train_image_classifiers as trainer  # noqa: E402
import worker_memory  # noqa: E402  (beside this script)
from images import training  # noqa: E402

STEPS = 2


def command_line(name, size, train_dir):
    """The flags of one run, as on the command line.

    Gradients are clipped: with two examples per batch, the batch norms of maps shrunk to 1x1
    see two values each, and an unclipped first step can throw the loss to 1e9 (finite, but no
    sign of training).  ``--use_bf16=False``: the trainer's default on a CPU with bfloat16
    instructions is oneDNN's bfloat16 rewrite, which takes minutes and gigabytes to build the
    largest networks; the precision sweep (tests/test_precision.py) covers 16-bit training of
    every network, and float32 here keeps the run the same on every CI machine.
    """
    return ["train_image_classifiers.py", "--model_name=%s" % name, "--dataset_name=mock",
            "--num_classes=5", "--train_image_size=%d" % size, "--batch_size=2",
            "--stop_at_step=%d" % STEPS, "--log_loss_every_n_iters=1", "--optimizer=momentum",
            "--learning_rate=0.01", "--max_gradient_norm=5", "--use_bf16=False",
            "--hooks=StopAtStepHook,LoggingTensorHook",
            "--save_summaries_steps=0", "--enable_paisoar=False", "--random_seed=1",
            "--train_dir=%s" % train_dir]


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def run_one(name, size, root):
    """Runs the trainer on ``name``; returns the JSON-able outcome."""
    capture = _Capture()
    setup = training.setup_logging

    def setup_logging(*args, **kwargs):  # the trainer resets its handlers: add ours after
        setup(*args, **kwargs)
        training.log.addHandler(capture)

    argv = command_line(name, size, os.path.join(root, name))
    start = time.time()
    outcome = {"name": name, "size": size, "argv": argv[1:]}
    training.setup_logging = setup_logging
    try:
        trainer.FLAGS.unparse_flags()
        trainer.FLAGS(argv)
        outcome["returncode"] = trainer.main([])
    except BaseException:  # noqa: B902  (any failure is this network's result)
        outcome["returncode"] = None
        outcome["error"] = traceback.format_exc()[-3000:]
    finally:
        training.setup_logging = setup
    outcome["seconds"] = round(time.time() - start, 1)
    outcome["log"] = capture.messages[-20:]
    outcome["gradient_warnings"] = [m for m in capture.messages if "no gradient" in m]
    steps = [m for m in capture.messages if m.startswith("step=")]
    outcome["logged_steps"] = [int(m.split(",")[0].split("=")[1]) for m in steps]
    outcome["losses"] = [float(m.split("loss=")[1].split(",")[0]) for m in steps if "loss=" in m]
    return outcome


def main(argv):
    out, root, specs = argv[1], argv[2], argv[3:]
    for i, spec in enumerate(specs):
        name, size = spec.split(":")
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(run_one(name, int(size), root)) + "\n")
        worker_memory.restart_if_large(os.path.abspath(__file__), [out, root], specs[i + 1:])


if __name__ == "__main__":
    main(sys.argv)
