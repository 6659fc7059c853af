"""Exact resume: a run killed with SIGKILL at any moment and restarted ends with the weights of
the uninterrupted run, bit for bit; a finished run restarted trains no further and changes no file.

The runs are small (lenet on 40 digits in two files, augmentation and dropout on, three epochs
of five steps) and are killed at the awkward moments: between checkpoints, inside a save after
its data is written, while a save's temporary files are half written, and after the last
checkpoint.  ``tests/resume_scripts/trainer_with_kill.py`` does the killing.
"""
import glob
import hashlib
import os
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import ROOT, horovodrun, run_script
from images.datasets import pipeline, positions
from images.preprocessing import preprocessing_factory

KILLER = os.path.join(ROOT, "tests", "resume_scripts", "trainer_with_kill.py")
FILES = ("small_a.tfrecord", "small_b.tfrecord")


@pytest.fixture(scope="module")
def small_digits(digits_dir, tmp_path_factory):
    """Two training files of 17 and 23 digits: five steps of 8 per epoch on one worker."""
    folder = str(tmp_path_factory.mktemp("small_digits"))
    records = list(tf.data.TFRecordDataset(
        os.path.join(digits_dir, "digits_train.tfrecord")).take(40).as_numpy_iterator())
    for name, part in zip(FILES, (records[:17], records[17:])):
        with tf.io.TFRecordWriter(os.path.join(folder, name)) as w:
            for r in part:
                w.write(r)
    return folder


def trainer_args(data_dir, train_dir):
    return ["--model_name=lenet", "--dataset_name=digits", "--dataset_dir=" + data_dir,
            "--train_files=" + ",".join(FILES), "--preprocessing_name=cifarnet",
            "--train_image_size=12", "--batch_size=8", "--num_epochs=3", "--stop_at_step=0",
            "--save_checkpoints_steps=2", "--random_seed=1", "--optimizer=momentum",
            "--learning_rate=0.05", "--log_loss_every_n_iters=1", "--save_summaries_steps=0",
            "--num_preprocessing_threads=4", "--train_dir=" + train_dir]


def weights(train_dir):
    latest = tf.train.latest_checkpoint(train_dir)
    reader = tf.train.load_checkpoint(latest)
    return latest, {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def snapshot(folder):
    """``{relative path: (sha256, mtime_ns)}`` of every file under ``folder``."""
    out = {}
    for d, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = (hashlib.sha256(f.read()).hexdigest(),
                                                   os.stat(p).st_mtime_ns)
    return out


def assert_same_weights(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def killed(proc):
    return proc.returncode != 0 and "fastnn-test: killing myself" in proc.stderr + proc.stdout


# ----------------------------------------------------------------------------- the stream
def test_resumed_stream_is_the_rest_of_the_uninterrupted_stream(small_digits):
    """Input position, shuffle order and augmentation follow from seed and step alone."""
    files = [os.path.join(small_digits, n) for n in FILES]
    prep = preprocessing_factory.get_preprocessing("cifarnet", is_training=True)

    def batches(start, threads, workers=1, worker=0, count=6):
        with tf.Graph().as_default():
            ds = pipeline.build_dataset(
                files, lambda s: pipeline_parse(s), prep, 12, 8, True, 10, num_epochs=3,
                seed=5, start_batch=start, num_preprocessing_threads=threads,
                num_workers=workers, worker_index=worker)
            nxt = tf.data.make_one_shot_iterator(ds).get_next()
            with tf.Session() as sess:
                return [sess.run(nxt) for _ in range(count)]

    whole = batches(0, 1, count=12)
    for start in (3, 7):  # inside the first epoch; across an epoch boundary (5 per epoch)
        rest = batches(start, 4, count=12 - start)
        for (im_a, lb_a), (im_b, lb_b) in zip(whole[start:], rest):
            np.testing.assert_array_equal(lb_a, lb_b)
            np.testing.assert_array_equal(im_a, im_b)
    # Epochs differ in order, and the epoch count follows the step.
    assert [b[1].tolist() for b in whole[:5]] != [b[1].tolist() for b in whole[5:10]]
    assert positions.position(7, 8, 40) == (1, 16)
    # Worker 1 of 2 (files 17/23 records: by file) resumes its own stream the same way.
    w1 = batches(0, 2, workers=2, worker=1, count=5)
    w1_rest = batches(2, 2, workers=2, worker=1, count=3)
    for (im_a, lb_a), (im_b, lb_b) in zip(w1[2:], w1_rest):
        np.testing.assert_array_equal(im_a, im_b)


def pipeline_parse(serialized):
    from images.datasets import dataset_factory
    return dataset_factory.get_dataset("digits").parse_fn()(serialized)


def test_keyed_random_ops_follow_the_key_and_leave_initialisers_alone():
    from images.utils import keyed_random

    def draw(step, seed=1):
        with tf.Graph().as_default():
            tf.set_random_seed(7)
            key = tf.placeholder(tf.int64, [])
            with keyed_random.keyed_random_ops(keyed_random.fold(
                    keyed_random.base_key(seed, keyed_random.STEP_SALT), key)):
                w = tf.get_variable("w", [4], initializer=tf.random_normal_initializer())
                out = tf.nn.dropout(tf.ones([64]), rate=0.5) + tf.random.uniform([1])
            ops = {op.type for op in tf.get_default_graph().get_operations()}
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                return sess.run([out, w], {key: step}), ops

    (a, wa), ops = draw(3)
    (b, wb), _ = draw(3)
    (c, wc), _ = draw(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(wa, wc)  # the initialiser keeps its stateful, seeded draw
    assert {"StatelessRandomUniform", "RandomStandardNormal"} <= ops
    with tf.Graph().as_default(), pytest.raises(keyed_random.UnkeyableRandomOpError,
                                                match="RandomGamma"):
        with keyed_random.keyed_random_ops(tf.constant([1, 2], tf.int64)):
            tf.random.gamma([2], 1.0)


def test_record_counts_follow_the_sharding_rule(small_digits):
    files = [os.path.join(small_digits, n) for n in FILES]
    assert [positions.count_records(p) for p in files] == [17, 23]
    assert positions.worker_epoch_size(files) == 40
    assert [positions.worker_epoch_size(files, 2, w) for w in (0, 1)] == [17, 23]
    assert positions.shard_counts([17, 23], 3) == [6 + 8, 6 + 8, 5 + 7]  # by record
    assert positions.data_end_step([17, 23], 3, 8) == 6


def test_data_without_a_full_batch_is_refused(small_digits, tmp_path):
    from images.utils import distributed, resume_state
    files = [os.path.join(small_digits, f) for f in FILES]
    with pytest.raises(ValueError, match=r"--num_epochs=1 of 40 record\(s\) per worker gives "
                                         r"no full batch of 64: lower --batch_size"):
        resume_state.plan_run(distributed.Cluster(), str(tmp_path), batch_size=64, num_epochs=1,
                              files=files)
    assert resume_state.plan_run(distributed.Cluster(), str(tmp_path), batch_size=64,
                                 num_epochs=2, files=files).last_step == 1


# ----------------------------------------------------------------------------- one worker
def test_progress_counts_the_steps_the_data_gives(small_digits, tmp_path):
    # Two epochs of 40 records in batches of 12: the last partial batch is dropped, so the run
    # ends at step 6 (not 80 / 12 rounded up), and the progress line reaches 100% there.
    train_dir = str(tmp_path / "epochs")
    args = [a for a in trainer_args(small_digits, train_dir)
            if not a.startswith(("--batch_size", "--num_epochs"))]
    proc = run_script(["train_image_classifiers.py", "--batch_size=12", "--num_epochs=2"] + args)
    assert tf.train.latest_checkpoint(train_dir).endswith("model.ckpt-6")
    steps = [ln.split(" INFO ")[1] for ln in proc.stderr.splitlines() if " INFO step=" in ln]
    assert steps[-1].startswith("step=6, 100.0% of 6 steps"), steps


def test_killed_and_resumed_run_ends_bit_exact_and_a_finished_run_stays_finished(
        small_digits, tmp_path):
    straight = str(tmp_path / "straight")
    run_script(["train_image_classifiers.py"] + trainer_args(small_digits, straight))
    ref_path, ref = weights(straight)
    assert ref_path.endswith("model.ckpt-15")  # 3 epochs x 40 records / 8

    resumed = str(tmp_path / "resumed")
    args = [KILLER] + trainer_args(small_digits, resumed)
    for kill in ("before_save:3", "mid_save:6", "temp_write:10", "after_end:15"):
        proc = run_script(args, env={"FASTNN_TEST_KILL": kill}, check=False)
        assert killed(proc), (kill, proc.stderr[-3000:])
        if kill == "temp_write:10":
            assert glob.glob(os.path.join(resumed, "*.tempstate*"))
        if kill == "after_end:15":
            # The run before cleaned up the half-written save, and resumed where it stood.
            assert "removed 2 stale temporary checkpoint file(s)" in proc.stderr
            assert "resuming from" in proc.stderr and "model.ckpt-8" in proc.stderr
    assert not glob.glob(os.path.join(resumed, "*.tempstate*"))
    path, got = weights(resumed)
    assert path.endswith("model.ckpt-15")
    assert_same_weights(ref, got)

    # Restarted once more (issue 18): complete, no step, no file touched.
    before = snapshot(resumed)
    proc = run_script(["train_image_classifiers.py"] + trainer_args(small_digits, resumed))
    assert re.search(r"run complete: .* checkpoint at step 15 .*last step 15 \(the end of "
                     r"--num_epochs=3", proc.stderr), proc.stderr[-2000:]
    assert "step=" not in proc.stderr
    assert snapshot(resumed) == before
    # The same with --stop_at_step below the checkpoint: still complete, exit 0.
    proc = run_script(["train_image_classifiers.py"] + trainer_args(small_digits, resumed)
                      + ["--stop_at_step=12"])
    assert "last step 12 (--stop_at_step=12)" in proc.stderr
    assert snapshot(resumed) == before


# ----------------------------------------------------------------------------- two workers
@pytest.mark.horovod
def test_two_workers_killed_and_resumed_end_bit_exact_and_stay_finished(small_digits, tmp_path):
    # By file: worker 0 reads 17 records, worker 1 23; the job ends with worker 0's data at
    # step 6 (3 x 17 // 8), every worker stopping there.
    straight = str(tmp_path / "straight")
    out = horovodrun([KILLER] + trainer_args(small_digits, straight))
    ref_path, ref = weights(straight)
    assert ref_path.endswith("model.ckpt-6"), out.stderr[-2000:]

    resumed = str(tmp_path / "resumed")
    args = [KILLER] + trainer_args(small_digits, resumed)
    for kill in ("before_save:3:1", "after_end:6:0"):  # rank 1 between saves; rank 0 at the end
        proc = horovodrun(args, env={"FASTNN_TEST_KILL": kill}, check=False)
        assert killed(proc), (kill, proc.stdout[-3000:] + proc.stderr[-3000:])
    assert re.search(r"\[rank 0\] INFO resuming from .*model\.ckpt-2", proc.stdout + proc.stderr)
    path, got = weights(resumed)
    assert path.endswith("model.ckpt-6")
    assert_same_weights(ref, got)

    before = snapshot(resumed)
    proc = horovodrun(args)
    out = proc.stdout + proc.stderr
    assert "run complete" in out and "at step 6" in out, out[-2000:]
    assert not re.search(r"INFO step=\d+", out)  # no worker ran a step
    assert snapshot(resumed) == before
