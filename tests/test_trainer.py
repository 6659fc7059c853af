"""The trainer end to end, in subprocesses: resume, NaN stop, hooks, summaries, run flags, a FastNN
flag file, default train_dirs and the refusal of another run's."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import ROOT, run_script

LENET_MOCK = ["train_image_classifiers.py", "--enable_paisoar=False", "--model_name=lenet",
              "--dataset_name=mock", "--num_classes=10", "--batch_size=4",
              "--log_loss_every_n_iters=1"]


def train(train_dir, *extra, check=True):
    return run_script(LENET_MOCK + ["--train_dir=%s" % train_dir] + list(extra), check=check)


def read_ckpt(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def test_resume_continues_step_counter_with_saved_weights(tmp_path):
    d = str(tmp_path / "run")
    train(d, "--stop_at_step=3", "--optimizer=sgd", "--learning_rate=0.01")
    first = read_ckpt(os.path.join(d, "model.ckpt-3"))
    # A tiny learning rate: if the second run restored the checkpoint its weights stay next to
    # step 3's; a fresh initialisation would land far away.
    proc = train(d, "--stop_at_step=5", "--optimizer=sgd", "--learning_rate=1e-9")
    assert "resuming from" in proc.stderr and "model.ckpt-3" in proc.stderr
    assert tf.train.latest_checkpoint(d).endswith("model.ckpt-5")
    second = read_ckpt(os.path.join(d, "model.ckpt-5"))
    assert second["global_step"] == 5
    for name in ("LeNet/conv1/weights", "LeNet/fc4/weights"):
        np.testing.assert_allclose(second[name], first[name], atol=1e-6)
    # And the step counter continued: steps 4 and 5 were logged, not 1 and 2.
    assert "step=5," in proc.stderr and "step=1," not in proc.stderr


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint_loadable(tmp_path):
    d = str(tmp_path / "nan")
    proc = train(d, "--stop_at_step=50", "--optimizer=sgd", "--learning_rate=1e30",
                 "--save_checkpoints_steps=1", check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "loss is NaN or infinite at step" in proc.stderr
    latest = tf.train.latest_checkpoint(d)
    assert latest is not None
    for name, value in read_ckpt(latest).items():
        assert np.all(np.isfinite(value)), name


def test_run_writes_flags_summaries_and_checkpoints(tmp_path):
    d = str(tmp_path / "run")
    train(d, "--stop_at_step=4", "--save_checkpoints_steps=2", "--save_summaries_steps=1",
          "--learning_rate_decay_type=cosine")
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*.index"))) == [
        "model.ckpt-0.index", "model.ckpt-2.index", "model.ckpt-4.index"]
    saved = json.load(open(os.path.join(d, "flags.json")))["flags"]
    assert saved["learning_rate_decay_type"] == "cosine" and saved["stop_at_step"] == 4
    tags = set()
    for event_file in glob.glob(os.path.join(d, "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(event_file):
            tags.update(v.tag for v in event.summary.value)
    for tag in ("loss/total", "train/accuracy", "train/learning_rate",
                "throughput/samples_per_sec"):
        assert tag in tags, sorted(tags)
    # flags.txt is a flag file that repeats the run (here continued to step 6).
    run_script(["train_image_classifiers.py", "--flagfile=%s" % os.path.join(d, "flags.txt"),
                "--stop_at_step=6"])
    assert tf.train.latest_checkpoint(d).endswith("model.ckpt-6")


def test_hooks_flag_selects_hooks(tmp_path):
    d = str(tmp_path / "hooks")
    proc = train(d, "--stop_at_step=3", "--hooks=StopAtStepHook,ProfilerHook",
                 "--profile_every_n_iters=2")
    # No CheckpointSaverHook: no checkpoint after the initial one; no LoggingTensorHook: no lines.
    assert tf.train.latest_checkpoint(d) is None or tf.train.latest_checkpoint(d).endswith("-0")
    assert "samples/sec" not in proc.stderr
    traces = glob.glob(os.path.join(d, "timeline-*.json"))
    assert traces, os.listdir(d)
    assert "traceEvents" in json.load(open(traces[0]))


def test_bad_model_name_exits_with_the_list(tmp_path):
    proc = run_script(["train_image_classifiers.py", "--model_name=resnet_v9",
                       "--train_dir=%s" % tmp_path], check=False)
    assert proc.returncode == 2
    assert "unknown model_name 'resnet_v9'; valid names:" in proc.stderr
    assert "lenet" in proc.stderr


def test_weight_decay_reaches_the_loss(tmp_path):
    # Same seed and data: the only difference is the L2 term, which must raise the logged loss.
    def first_loss(wd):
        proc = train(str(tmp_path / ("wd%s" % wd)), "--stop_at_step=2", "--random_seed=3",
                     "--weight_decay=%s" % wd, "--optimizer=sgd")
        line = [ln for ln in proc.stderr.splitlines() if "step=2," in ln][0]
        return float(line.split("loss=")[1].split(",")[0])
    assert first_loss(1.0) > first_loss(0.0) + 1.0


def test_num_epochs_ends_a_mock_run(tmp_path):
    # 8 samples per epoch in batches of 4: two epochs are four steps; no StopAtStepHook.
    d = str(tmp_path / "epochs")
    train(d, "--stop_at_step=0", "--num_sample_per_epoch=8", "--num_epochs=2")
    assert tf.train.latest_checkpoint(d).endswith("model.ckpt-4")


# ----------------------------------------------------------------------------- FastNN users
FASTNN_FLAG_FILE = os.path.join(ROOT, "tests", "data", "fastnn_default_flags.txt")


def test_fastnn_flag_file_runs_and_says_what_it_does(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    # Every FastNN flag at FastNN's default (PAI's checkpointDir given, as PAI does); the command
    # line shrinks the run: the file's inception_resnet_v2 at batch 32 would take hours here.
    proc = run_script([os.path.join(ROOT, "train_image_classifiers.py"),
                       "--flagfile=" + FASTNN_FLAG_FILE, "--checkpointDir=" + ckpt,
                       "--model_name=lenet", "--batch_size=4", "--stop_at_step=3",
                       "--log_loss_every_n_iters=2"], cwd=str(tmp_path))
    err = proc.stderr
    assert tf.train.latest_checkpoint(ckpt).endswith("model.ckpt-3")
    assert json.load(open(os.path.join(ckpt, "flags.json")))["flags"]["num_intra_threads"] == 96
    for name in ("task_index", "job_name", "protocol", "colocate_gradients_with_ops",
                 "tensor_fusion_policy", "communication_policy"):
        assert "WARNING --%s=" % name in err and "has no effect" in err, name
    assert "oneDNN" in err
    assert "training starts at step 0 until step 3 (graph built in" in err
    steps = [ln.split(" INFO ")[1] for ln in err.splitlines() if " INFO step=" in ln]
    assert [s.split(",")[0] for s in steps] == ["step=2", "step=3"]
    assert steps[1].startswith("step=3, 100.0% of 3 steps") and "ETA" in steps[1]
    assert "training done at step 3 (3 step(s) in" in err and "model.ckpt-3" in err
    # TensorFlow's deprecation notices are gone, and no line is printed twice.
    assert "deprecat" not in err.lower() and "Instructions for updating" not in err
    messages = [ln.split("] ", 1)[-1] for ln in err.splitlines() if ln.strip()]
    assert len(messages) == len(set(messages)), err


def test_pretrain_then_finetune_with_default_train_dirs(tmp_path):
    env = {"TMPDIR": str(tmp_path)}
    base = ["train_image_classifiers.py", "--enable_paisoar=False", "--dataset_name=mock",
            "--num_classes=10", "--model_name=lenet", "--batch_size=4", "--stop_at_step=2"]
    pretrain_dir = os.path.join(str(tmp_path), "fastnn_train", "lenet")
    run_script(base + ["--task_type=pretrain"], env=env)
    assert tf.train.latest_checkpoint(pretrain_dir).endswith("model.ckpt-2")
    proc = run_script(base + ["--task_type=finetune", "--model_dir=" + pretrain_dir], env=env)
    assert "warm-starting" in proc.stderr and "resuming" not in proc.stderr
    assert tf.train.latest_checkpoint(pretrain_dir + "_finetune").endswith("model.ckpt-2")

    # Another model in the pretrain folder: one line naming both, no traceback.
    other = ["train_image_classifiers.py", "--enable_paisoar=False", "--num_classes=10",
             "--model_name=cifarnet", "--batch_size=2", "--stop_at_step=1",
             "--train_dir=" + pretrain_dir]
    proc = run_script(other, env=env, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "model_name=lenet" in errors[0] and "model_name=cifarnet" in errors[0]
    assert "new --train_dir" in errors[0]
    # Without the run's record, the checkpoint itself does not fit: still one line.
    os.remove(os.path.join(pretrain_dir, "flags.json"))
    proc = run_script(other, env=env, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "does not fit this model" in proc.stderr and "new --train_dir" in proc.stderr
    # The same model's run restarted without its record: complete, checked against the model.
    before = sorted(os.listdir(pretrain_dir))
    proc = run_script(base + ["--task_type=pretrain", "--stop_at_step=1"], env=env)
    assert "run complete" in proc.stderr and sorted(os.listdir(pretrain_dir)) == before
