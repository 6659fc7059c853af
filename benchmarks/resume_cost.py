#!/usr/bin/env python
"""What exact resume and the fault checks cost, measured side by side in one run.

    python benchmarks/resume_cost.py [--quick]

Variants are measured in alternating rounds (the median of each is shown), so that a burst of
load on the shared machine hits every variant alike.  Tables:

1. Training-pipeline images/s (decode + augment + batch, the trainer's default tuning without the
   prefetch buffer) in three
   modes: exact (``--random_seed``: per-epoch seeded order, augmentation keyed by seed and
   position), seeded with TensorFlow's stateful random ops (the order repeats, the draws do not
   survive a restart), and unseeded (nondeterministic order, stateful draws).
2. Training images/s of cifarnet (dropout) fed by that pipeline: exact (keyed dropout and
   augmentation) against unseeded; and the finite-update guard against a plain ``minimize``
   (same graph otherwise).
3. Start-up costs of a resume: counting TFRecords by their framing headers (records/s) and
   reaching an offset deep in an epoch (seconds to the first batch).
4. The pre-flight check: records/s read, decoded and label-checked.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import print_table, session_config  # noqa: E402
from benchmarks.input_pipeline import DEFAULTS, write_records  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

from images import training  # noqa: E402
from images.datasets import dataset_factory, pipeline, positions  # noqa: E402
from images.models import model_factory  # noqa: E402
from images.preprocessing import preprocessing_factory  # noqa: E402
from images.utils import losses, preflight  # noqa: E402

MODES = (("exact (--random_seed)", dict(seed=1, keyed_random=True)),
         ("seeded, stateful random ops", dict(seed=1, keyed_random=False)),
         ("no seed", dict(seed=None)))


def _dataset(files, prep, size, batch, mode, start_batch=0, prefetch=True):
    """The trainer's training pipeline over ``files`` in ``mode`` (seed, keyed_random).

    Without ``prefetch`` no batches are buffered ahead (neither the trainer's prefetch nor the
    one tf.data would inject): a pipeline idle while another variant is measured then has
    nothing stored to inflate its next round.
    """
    record = dataset_factory.get_dataset("cifar10")  # 3-channel parse of image/encoded
    options = dict(DEFAULTS, prefetch_buffer_size=DEFAULTS["prefetch_buffer_size"] if prefetch
                   else 0)
    ds = pipeline.build_dataset(
        files, record.parse_fn(), preprocessing_factory.get_preprocessing(prep, is_training=True),
        size, batch, True, 10, start_batch=start_batch, **mode, **options)
    if not prefetch:
        no_buffer = tf.data.Options()
        no_buffer.experimental_optimization.inject_prefetch = False
        ds = ds.with_options(no_buffer)
    return ds


class _Runner:
    """One graph and session; ``run(n)`` times n steps of ``op``."""

    def __init__(self, build, batch, warmup):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.op, init = build()
        self.sess = tf.Session(graph=self.graph, config=session_config())
        if init is not None:
            self.sess.run(init)
        self.batch = batch
        for _ in range(warmup):
            self.sess.run(self.op)

    def run(self, steps, drain):
        # Batches buffered ahead while another variant ran (tf.data injects an autotuned
        # prefetch) are taken untimed first.
        for _ in range(drain):
            self.sess.run(self.op)
        start = time.perf_counter()
        for _ in range(steps):
            self.sess.run(self.op)
        return steps * self.batch / (time.perf_counter() - start)

    def close(self):
        self.sess.close()


def interleaved_rates(builds, batch, rounds, steps, warmup, drain=0):
    """Images/s of each graph, measured in alternating rounds (the median of each), so a burst
    of load on the shared machine hits every variant alike; ``drain`` untimed steps start each
    round."""
    runners = [_Runner(b, batch, warmup) for b in builds]
    try:
        rates = [[] for _ in runners]
        for _ in range(rounds):
            for runner, out in zip(runners, rates):
                out.append(runner.run(steps, drain))
        return [float(np.median(r)) for r in rates]
    finally:
        for runner in runners:
            runner.close()


def pipeline_build(files, prep, size, batch, mode):
    """A graph fetching one scalar per batch of the training pipeline in ``mode``."""
    def build():
        images, _ = tf.data.make_one_shot_iterator(_dataset(
            files, prep, size, batch, mode, prefetch=False)).get_next()
        return tf.reduce_sum(images[:, 0, 0, 0]), None
    return build


def train_build(files, batch, seed, guard=True):
    """A cifarnet training graph (32x32, dropout) fed by the pipeline."""
    def build():
        if seed is not None:
            tf.set_random_seed(seed)
        mode = dict(seed=seed, keyed_random=seed is not None)
        images, labels = tf.data.make_one_shot_iterator(
            _dataset(files, "cifarnet", 32, batch, mode)).get_next()
        global_step = tf.train.get_or_create_global_step()
        network_fn = model_factory.get_network_fn("cifarnet", 10, weight_decay=4e-5,
                                                  is_training=True)
        logits, _, _ = training.build_network(
            network_fn, images, random_key=training.step_random_key(seed, 0, global_step))
        loss, _ = losses.classification_loss(logits, labels, 10)
        opt = tf.train.MomentumOptimizer(0.01, 0.9)
        if guard:
            train_op = training.build_train_op(opt, loss, global_step)
        else:
            with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
                train_op = opt.minimize(loss, global_step=global_step)
        return train_op, tf.global_variables_initializer()
    return build


def count_rate(files):
    start = time.perf_counter()
    n = sum(positions.count_records(p) for p in files)
    return n / (time.perf_counter() - start), n


def seconds_to_first_batch(files, prep, size, batch, start_batch):
    with tf.Graph().as_default():
        images, _ = tf.data.make_one_shot_iterator(_dataset(
            files, prep, size, batch, MODES[0][1], start_batch=start_batch)).get_next()
        op = tf.reduce_sum(images[:, 0, 0, 0])
        with tf.Session(config=session_config()) as sess:
            start = time.perf_counter()
            sess.run(op)
            return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and steps")
    args = parser.parse_args()
    q = args.quick
    folder = tempfile.mkdtemp(prefix="fastnn-resume-bench-")
    try:
        n_cifar = 512 if q else 4096
        cifar, _ = write_records(folder, "cifar", n_cifar, 32, "png")
        jpeg, _ = write_records(folder, "jpeg", 128 if q else 512, 224, "jpeg")
        rows = []
        rounds = 3 if q else 7
        for label, files, prep, size, batch, steps in (
                ("CIFAR-10 records, 32x32 PNG", cifar, "cifarnet", 32, 128, 3 if q else 12),
                ("224x224 JPEG records", jpeg, "inception", 224, 16, 3 if q else 24)):
            rates = interleaved_rates([pipeline_build(files, prep, size, batch, mode)
                                       for _, mode in MODES], batch, rounds, steps, 3, drain=8)
            for (name, _), rate in zip(MODES, rates):
                rows.append([label, prep, name, "%.0f" % rate, "%.2fx" % (rate / rates[-1])])
        print_table("Exact resume: training-pipeline images/s (%d CPU cores)" % os.cpu_count(),
                    ["input", "preprocessing", "mode", "images/s", "vs no seed"], rows)

        exact, loose, unguarded = interleaved_rates(
            [train_build(cifar, 64, seed=1), train_build(cifar, 64, seed=None),
             train_build(cifar, 64, seed=None, guard=False)], 64, rounds,
            3 if q else 10, 5, drain=2)
        print_table("Exact resume and the finite-update guard: cifarnet training images/s "
                    "(batch 64, 32x32)",
                    ["graph", "images/s", "vs no seed, guarded"],
                    [["exact: keyed dropout + augmentation, guard", "%.0f" % exact,
                      "%.2fx" % (exact / loose)],
                     ["no seed, guard", "%.0f" % loose, "1.00x"],
                     ["no seed, no guard (plain minimize)", "%.0f" % unguarded,
                      "%.2fx" % (unguarded / loose)]])

        rate, n = count_rate(cifar + jpeg)
        deep = n_cifar // 128 - 1  # the last batch of epoch 0
        rows = [["count TFRecords by framing headers (%d records, %d files)"
                 % (n, len(cifar + jpeg)), "%.0f records/s" % rate],
                ["first batch at step 0 (CIFAR PNG, batch 128)",
                 "%.2f s" % seconds_to_first_batch(cifar, "cifarnet", 32, 128, 0)],
                ["first batch resumed at step %d (skips %d records)" % (deep, deep * 128),
                 "%.2f s" % seconds_to_first_batch(cifar, "cifarnet", 32, 128, deep)]]
        print_table("Resume start-up", ["what", "cost"], rows)

        record = dataset_factory.get_dataset("cifar10")
        rows = []
        for label, files in (("CIFAR-10 records, 32x32 PNG", cifar),
                             ("224x224 JPEG records", jpeg)):
            report = preflight.check_records(files, record.parse_fn(), 10)
            rows.append([label, report.records, "%.1f s" % report.seconds,
                         "%.0f" % report.rate])
        print_table("Pre-flight check (--preflight_check): every record read, decoded, "
                    "label-checked", ["input", "records", "time", "records/s"], rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
