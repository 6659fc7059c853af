"""Faults a job meets, each ending in one clear line (never a hang, a traceback or a silent 0):
overflowing updates, unreadable and empty input, repeated skips, bad records found before
training, full disks, evaluation beside a rotating trainer, damaged large-scale shards, and a
finished large-scale run restarted."""
import errno
import glob
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import data_helpers as dh
from conftest import PYTHON, ROOT, run_script
from images.datasets import dataset_factory, pipeline, positions
from images.utils import checkpoint_io, preflight

LENET_MOCK = ["train_image_classifiers.py", "--enable_paisoar=False", "--model_name=lenet",
              "--dataset_name=mock", "--num_classes=10", "--batch_size=4",
              "--train_image_size=12", "--log_loss_every_n_iters=1"]


def digits_run(dataset_dir, train_dir, *extra):
    return ["train_image_classifiers.py", "--model_name=lenet", "--dataset_name=digits",
            "--dataset_dir=" + dataset_dir, "--batch_size=8", "--train_image_size=12",
            "--train_dir=" + train_dir] + list(extra)


def no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def without_dac():
    """A command prefix that runs as root without the right to bypass file permissions (root
    reads a mode-000 file otherwise); empty when not root."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("root without setpriv cannot be denied a read")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def read_ckpt(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


# ----------------------------------------------------------------------------- finite guard
def test_overflowing_update_stops_before_any_checkpoint_holds_it(tmp_path):
    d = str(tmp_path / "run")
    proc = run_script(LENET_MOCK + ["--train_dir=" + d, "--stop_at_step=20",
                                    "--learning_rate=1e39", "--save_checkpoints_steps=1"],
                      check=False)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "the update of step 1 made LeNet/" in proc.stderr
    assert ("The last checkpoint, %s, holds finite values only (checked)"
            % os.path.join(d, "model.ckpt-0")) in proc.stderr
    assert [os.path.basename(p) for p in glob.glob(os.path.join(d, "*.index"))] == [
        "model.ckpt-0.index"]
    for name, value in read_ckpt(os.path.join(d, "model.ckpt-0")).items():
        assert np.all(np.isfinite(value)), name


# ----------------------------------------------------------------------------- input files
def test_unreadable_input_file_ends_the_run_with_its_name(digits_dir, tmp_path):
    prefix = without_dac()
    data = str(tmp_path / "data")
    shutil.copytree(digits_dir, data)
    os.chmod(os.path.join(data, "digits_train.tfrecord"), 0)
    cmd = prefix + [PYTHON] + digits_run(data, str(tmp_path / "run"), "--stop_at_step=5")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    no_traceback(proc)
    assert proc.returncode == 2
    assert ("cannot read input file %s: Permission denied"
            % os.path.join(data, "digits_train.tfrecord")) in proc.stderr


def test_file_made_unreadable_during_the_run_fails_instead_of_spinning(digits_dir, tmp_path):
    prefix = without_dac()
    path = str(tmp_path / "t.tfrecord")
    shutil.copy(os.path.join(digits_dir, "digits_test.tfrecord"), path)
    script = "\n".join([
        "import os, sys", "sys.path.insert(0, %r)" % ROOT,
        "import tensorflow.compat.v1 as tf", "tf.disable_eager_execution()",
        "from images.datasets import dataset_factory, pipeline",
        "parse = dataset_factory.get_dataset('digits').parse_fn()",
        "ds = pipeline.build_dataset([%r], parse, lambda im, h, w: tf.cast(im, tf.float32), 8,"
        " 120, True, 10, num_epochs=5, seed=1, prefetch_buffer_size=0)" % path,
        "nxt = tf.data.make_one_shot_iterator(ds).get_next()",
        "with tf.Session() as s:",
        "    s.run(nxt)",
        "    os.chmod(%r, 0)" % path,
        "    try:",
        "        [s.run(nxt) for _ in range(20)]",
        "    except tf.errors.OpError as e:",
        "        print('MESSAGE', pipeline.data_error_message(e))"])
    # 15 s alone; the limit is for a loaded CI machine, where TensorFlow's import alone took
    # over a minute: a reader that spins still never gets there.
    proc = subprocess.run(prefix + [PYTHON, "-c", script], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert ("MESSAGE cannot open or read input file %s: Permission denied" % path
            in proc.stdout), proc.stdout[-1000:] + proc.stderr[-2000:]


def test_empty_inputs_are_errors_that_say_what_to_do(digits_dir, tmp_path):
    digits = dataset_factory.get_dataset("digits")
    with pytest.raises(ValueError, match=r"--train_files=',' names no file: give "
                                         r"comma-separated"):
        dataset_factory.resolve_files(digits, digits_dir, "train", ",")
    empty = str(tmp_path / "empty.tfrecord")
    open(empty, "wb").close()
    with pytest.raises(pipeline.BadInputDataError, match="is empty .0 bytes.: convert"):
        positions.check_files([empty])
    # A split whose only file holds no complete record (cut inside the first one).
    cut = dh.write_records(str(tmp_path / "cut.tfrecord"), [dh.tiny_example(1)])
    dh.truncate(cut, 20)
    with pytest.raises(pipeline.BadInputDataError, match="gets no complete record"):
        positions.worker_epoch_size([cut])
    # The trainer: exit 2 naming the file (it used to train 0 steps and exit 0).
    data = str(tmp_path / "data")
    shutil.copytree(digits_dir, data)
    open(os.path.join(data, "digits_train-extra.tfrecord"), "wb").close()
    proc = run_script(digits_run(data, str(tmp_path / "run"), "--stop_at_step=5"), check=False)
    no_traceback(proc)
    assert proc.returncode == 2
    assert "digits_train-extra.tfrecord is empty (0 bytes)" in proc.stderr


def test_a_skipped_part_is_logged_once_over_many_epochs(tmp_path, capfd):
    good = [dh.tiny_example(i) for i in range(6)]
    bad_image = dh.tiny_example(7, encoded=b"\x89PNG\r\n\x1a\n garbage")
    a = dh.write_records(str(tmp_path / "a.tfrecord"), good[:3] + [bad_image])
    b = dh.write_records(str(tmp_path / "b.tfrecord"), good[3:])
    dh.truncate(b, os.path.getsize(b) - 10)  # the last record is cut short
    parse = dataset_factory.DatasetRecord("t", 1, {}, channels=1).parse_fn()
    capfd.readouterr()
    with tf.Graph().as_default():
        ds = pipeline.build_dataset([a, b], parse, lambda im, h, w: tf.image.resize(
            tf.cast(im, tf.float32), [h, w]), 4, 1, True, 100, num_epochs=3, seed=2,
            skip_corrupt_records=True)
        nxt = tf.data.make_one_shot_iterator(ds).get_next()
        labels = []
        with tf.Session() as sess:
            try:
                while True:
                    labels.append(int(sess.run(nxt)[1][0]))
            except tf.errors.OutOfRangeError:
                pass
    assert sorted(labels) == sorted([0, 1, 2, 3, 4] * 3)
    err = capfd.readouterr().err
    assert err.count("skipped the unreadable end of %s" % b) == 1, err
    assert "1 corrupt or truncated file part(s) skipped so far" in err
    assert err.count("skipped record 3 of %s" % a) == 1, err
    assert "1 undecodable record(s) skipped so far" in err


# ----------------------------------------------------------------------------- preflight
def test_preflight_lists_every_bad_record_before_training(tmp_path):
    good = [dh.tiny_example(i % 10) for i in range(5)]
    data = str(tmp_path / "data")
    os.makedirs(data)
    a = dh.write_records(os.path.join(data, "digits_train-a.tfrecord"),
                         good + [dh.tiny_example(3, encoded=b"not an image"), dh.tiny_example(12)])
    b = dh.write_records(os.path.join(data, "digits_train-b.tfrecord"), good)
    dh.corrupt_byte(b, os.path.getsize(b) - 30)  # inside the last record's data
    report = preflight.check_records([a, b], dataset_factory.get_dataset("digits").parse_fn(),
                                     10)
    assert report.records == 11 and report.files == 2
    assert report.problems == [
        "%s: record 5 cannot be parsed or its image decoded" % a,
        "%s: record 6 has label 12 (labels_offset 0), outside [0, 10)" % a,
        report.problems[2]]
    assert re.match(r"%s: record 4 \(at byte \d+\) and everything after it cannot be read"
                    % re.escape(b), report.problems[2]), report.problems[2]
    proc = run_script(digits_run(data, str(tmp_path / "run"), "--preflight_check",
                                 "--stop_at_step=5"), check=False)
    no_traceback(proc)
    assert proc.returncode == 2
    assert "preflight check found 3 problem(s)" in proc.stderr
    assert "record 6 has label 12" in proc.stderr
    assert not os.path.exists(os.path.join(str(tmp_path / "run"), "checkpoint"))


def test_converter_preflight_reads_every_record(tmp_path):
    proc = run_script(["images/datasets/download_and_convert_data.py", "--dataset_name=digits",
                       "--dataset_dir=" + str(tmp_path), "--preflight_check"])
    assert "preflight: 1797 record(s) in 2 file(s)" in proc.stdout
    assert "every record readable and decodable, labels in [0, 10)" in proc.stdout


# ----------------------------------------------------------------------------- full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 9.5 MB tmpfs: lenet at 12x12 fits one checkpoint (7.9 MB) and no second one."""
    mount = str(tmp_path / "disk")
    os.makedirs(mount)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=9500k", "tmpfs",
                                            mount], capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", mount], check=False)


def test_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(small_disk):
    d = os.path.join(small_disk, "run")
    proc = run_script(LENET_MOCK + ["--train_dir=" + d, "--stop_at_step=10",
                                    "--save_checkpoints_steps=5", "--save_summaries_steps=0"],
                      check=False)
    no_traceback(proc)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert errors == [errors[0]] and (
        "cannot write checkpoint %s/model.ckpt-5: No space left on device. The previous "
        "checkpoint, %s/model.ckpt-0, is intact." % (d, d)) in errors[0], proc.stderr[-2000:]
    assert not checkpoint_io.temp_files(d)
    assert tf.train.latest_checkpoint(d).endswith("model.ckpt-0")
    assert read_ckpt(tf.train.latest_checkpoint(d))["global_step"] == 0


def test_stale_temporary_files_are_found_and_removed(tmp_path):
    d = str(tmp_path)
    for name in ("model.ckpt-5.data-00000-of-00001.tempstate1234", "model.ckpt-5_temp/part",
                 "checkpoint.tmp" + "ab" * 16, "model.ckpt-0.index", "notes_temp.txt"):
        os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"x" * 100)
    assert checkpoint_io.remove_stale_temp_files(d) == (3, 300)
    assert sorted(os.listdir(d)) == ["model.ckpt-0.index", "notes_temp.txt"]


def test_other_write_failures_in_train_dir_are_one_line(tmp_path):
    d = str(tmp_path)
    partial = os.path.join(d, "flags.txt.tmp")
    open(partial, "w").close()
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), partial)
    assert checkpoint_io.write_error_message(error, d) == (
        "cannot write %s/flags.txt: No space left on device. No checkpoint was written yet." % d)
    assert not os.path.exists(partial)
    error = tf.errors.ResourceExhaustedError(None, None, "%s/graph.pbtxt.tmp%s; No space left on "
                                             "device" % (d, "0f" * 16))
    assert checkpoint_io.write_error_message(error, d).startswith(
        "cannot write %s/graph.pbtxt: No space left on device." % d)
    # Errors about other paths are not write failures of the run.
    assert checkpoint_io.write_error_message(
        tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"), d) is None


# ----------------------------------------------------------------------------- evaluation
def test_continuous_eval_follows_a_rotating_trainer(digits_dir, tmp_path):
    train_dir = str(tmp_path / "run")
    trainer = subprocess.Popen(
        [PYTHON] + digits_run(digits_dir, train_dir, "--stop_at_step=120",
                              "--save_checkpoints_steps=20", "--keep_checkpoint_max=2",
                              "--save_summaries_steps=0"),
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL)
    try:
        proc = run_script(["eval_image_classifier.py", "--checkpoint_path=" + train_dir,
                           "--model_name=lenet", "--dataset_name=digits",
                           "--dataset_dir=" + digits_dir, "--eval_image_size=12",
                           "--eval_interval_secs=1", "--eval_timeout=8"], check=False,
                          timeout=300)
    finally:
        trainer.wait(timeout=300)
    no_traceback(proc)
    assert proc.returncode == 0, "\n".join(
        line for line in proc.stderr.splitlines() if "[rank " in line)[-3000:]
    steps = [int(s) for s in re.findall(r"step (\d+)\)", proc.stdout)]
    assert len(steps) >= 2 and steps == sorted(set(steps)) and steps[-1] == 120, proc.stdout
    assert "no new checkpoint in %s for 8 s" % train_dir in proc.stderr
    events = glob.glob(os.path.join(train_dir, "eval_test", "events.out.tfevents.*"))
    assert len(events) == 1
    logged = [v.step for e in tf.train.summary_iterator(events[0]) for v in [e]
              if e.summary.value and e.summary.value[0].tag == "eval/test/top1"]
    assert logged == steps


def test_a_checkpoint_rotated_away_is_skipped_with_a_line(digits_dir, tmp_path, caplog):
    from images import evaluation
    from images.models import model_factory
    train_dir = str(tmp_path / "run")
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        model_factory.get_network_fn("lenet", num_classes=10)(tf.zeros([1, 12, 12, 1]))
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for i in range(3):
                sess.run(step.assign(i))
                saver.save(sess, os.path.join(train_dir, "model.ckpt"), global_step=i)
    for path in glob.glob(os.path.join(train_dir, "model.ckpt-1.*")):
        os.remove(path)  # listed in the state file, gone from the disk
    evaluator = evaluation.Evaluator("lenet", "digits", dataset_dir=digits_dir, image_size=12,
                                     max_num_batches=1)
    clock = iter(range(0, 1000, 10))
    with caplog.at_level("INFO", logger="fastnn"):
        results = evaluation.evaluate_continuously(
            train_dir, evaluator, interval_secs=1, timeout_secs=15, sleep=lambda s: None,
            clock=lambda: next(clock))
    assert [r["global_step"] for r in results] == [0, 2]
    assert "skipped checkpoint %s was removed before it could be read" % os.path.join(
        train_dir, "model.ckpt-1") in caplog.text


# ----------------------------------------------------------------------------- large scale
def test_large_scale_run_finished_stays_finished_and_a_cut_shard_is_named(tmp_path):
    from images.largescale import Entry, checkpoint

    def entry(steps):
        ins = Entry()
        ins.set_model("lenet")
        ins.set_image_shape((1, 12, 12))
        ins.set_emb_size(8)
        ins.set_class_num(10)
        ins.set_loss_type("dist_softmax")
        ins.set_train_batch_size(4)
        ins.set_train_steps(steps)
        ins.set_model_save_dir(str(tmp_path / "out"))
        return ins

    assert entry(2).train()["step"] == 2
    out = str(tmp_path / "out")
    before = {p: (open(p, "rb").read(), os.stat(p).st_mtime_ns)
              for p in glob.glob(os.path.join(out, "**"), recursive=True) if os.path.isfile(p)}
    assert entry(2).train() == {"step": 2, "test": {}}
    after = {p: (open(p, "rb").read(), os.stat(p).st_mtime_ns)
             for p in glob.glob(os.path.join(out, "**"), recursive=True) if os.path.isfile(p)}
    assert after == before

    shard = checkpoint.shard_file(os.path.join(out, "ckpt-2"), 0, 1)
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    with pytest.raises(checkpoint.DamagedCheckpointError,
                       match="checkpoint shard %s .* is damaged or cut short: BadZipFile"
                       % re.escape(shard)):
        entry(3).train()
