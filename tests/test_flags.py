"""The trainer's flags: validators, FastNN's flags, --help, hooks, preprocessing names, the
train_dir record, progress lines, epoch counting and the oneDNN choice (all in-process)."""
import logging
import os

import pytest
import tensorflow.compat.v1 as tf
from absl import flags as absl_flags

import flags as trainer_flags
import train_image_classifiers as trainer
from images import training
from images.models import model_factory
from images.preprocessing import preprocessing_factory
from images.utils import fastnn_flags, hooks, onednn, progress, record_count, run_dir

FLAGS = trainer_flags.FLAGS


@pytest.fixture
def parse():
    def _parse(*args):
        FLAGS.unparse_flags()
        FLAGS(["train_image_classifiers.py"] + list(args))
        return FLAGS
    yield _parse
    FLAGS.unparse_flags()


@pytest.mark.parametrize("args,needle", [
    (["--batch_size=0"], "batch_size must be > 0"),
    (["--batch_size=-4"], "batch_size must be > 0"),
    (["--learning_rate=0"], "learning_rate must be > 0"),
    (["--task_type=finetune"], "needs --model_dir"),
    (["--task_type=warmstart"], "task_type"),
    (["--label_smoothing=1.5"], "label_smoothing"),
    (["--protocol=grpc+verbs"], "PAISoar's transport"),
    (["--use_fp16", "--use_bf16"], "exclude each other"),
    (["--stop_at_step=-1"], "stop_at_step must be >= 0"),
    (["--allreduce_op=sum"], "allreduce_op"),
])
def test_parse_time_validators(parse, args, needle):
    with pytest.raises(absl_flags.Error, match=needle):
        parse(*args)


@pytest.mark.parametrize("args,needle", [
    (["--model_name=resnet_v9"], "unknown model_name 'resnet_v9'; valid names: .*lenet"),
    (["--model_name=lenet", "--dataset_name=svhn"], "unknown dataset_name 'svhn'; valid names: .*cifar10"),
    (["--model_name=lenet", "--optimizer=lamb"], "unknown optimizer 'lamb'; valid: adadelta"),
    (["--model_name=lenet", "--hooks=StopAtStepHook,FooHook"], "unknown hook.*FooHook"),
    (["--model_name=lenet", "--preprocessing_name=fancy"], "unknown preprocessing_name"),
    (["--model_name=lenet", "--loss_scale=big"], "loss_scale must be a number"),
    (["--model_name=lenet", "--loss_scale=0.5"], "loss_scale must be >= 1"),
    (["--model_name=lenet", "--dataset_name=digits", "--num_classes=7"],
     "num_classes=7 but dataset digits has 10"),
    (["--model_name=lenet", "--dataset_name=digits", "--dataset_split_name=dev"],
     "no split 'dev'"),
    (["--model_name=lenet", "--stop_at_step=0"], "mock data never ends"),
    (["--model_name=lenet", "--hooks=LoggingTensorHook"], "mock data never ends"),
])
def test_registry_checks(parse, args, needle):
    parse(*args)
    with pytest.raises(ValueError, match=needle):
        trainer.check_flags()


def test_defaults_are_fastnn_defaults(parse):
    f = parse()
    assert (f.dataset_name, f.model_name, f.optimizer, f.batch_size) == (
        "mock", "inception_resnet_v2", "rmsprop", 32)
    assert (f.learning_rate, f.learning_rate_decay_factor, f.weight_decay) == (0.01, 0.94, 4e-5)
    assert f.hooks == "StopAtStepHook,ProfilerHook,LoggingTensorHook,CheckpointSaverHook"
    assert f.enable_paisoar is True and f.stop_at_step == 100



# ----------------------------------------------------------------------------- FastNN's flags
FASTNN_FLAG_FILE = os.path.join(os.path.dirname(__file__), "data", "fastnn_default_flags.txt")


def fastnn_flag_names():
    """The 75 flag names of FastNN's flags.py, from the flag file of its defaults."""
    with open(FASTNN_FLAG_FILE, encoding="utf-8") as f:
        return [line[2:].split("=", 1)[0] for line in f if line.startswith("--")]


def test_fastnn_flag_file_parses_every_flag(parse):
    names = fastnn_flag_names()
    assert len(names) == len(set(names)) == 75
    f = parse("--flagfile=" + FASTNN_FLAG_FILE)
    for name in names:
        assert f[name].present, name
    assert f.intra_op_parallelism_threads == 96 and f.tensor_fusion_max_bytes == 8 << 20
    assert f.checkpointDir == "" and f.job_name == "worker" and f.use_fp16 is True


@pytest.mark.parametrize("args,needle", [
    (["--worker_hosts=h1:2222,h1:2223,h2:2222"], r"horovodrun -np 3 -H h1:2,h2:1"),
    (["--ps_hosts=ps0:2222"], "no parameter servers|without parameter servers"),
    (["--ps_count=2"], "no parameter servers"),
    (["--job_name=ps"], "every process horovodrun starts is a worker"),
    (["--task_index=1"], "horovodrun gives each worker its rank"),
    (["--tensor_fusion_policy=fancy"], "--tensor_fusion_max_bytes"),
    (["--communication_policy=nccl_hierarchical"], "horovodrun --gloo / --mpi"),
    (["--intra_op_parallelism_threads=-1"], "must be >= 0"),
])
def test_fastnn_cluster_values_are_refused_with_what_to_do(parse, args, needle):
    with pytest.raises(absl_flags.Error, match=needle):
        parse(*args)


def _translate(present, num_workers=1, **given):
    values = {f.name: f.value for f in FLAGS.get_flags_for_module(trainer_flags)}
    values.update(given)
    return fastnn_flags.translate(values, set(present) | set(given), num_workers)


def test_fastnn_equivalents_act_as_ours(parse):
    parse()
    updates, warnings = _translate((), checkpointDir="/ckpt", intra_op_parallelism_threads=3,
                                   inter_op_parallelism_threads=1,
                                   file_pattern="cifar10_%s.tfrecord", dataset_split_name="test")
    assert updates == {"train_dir": "/ckpt", "num_intra_threads": 3, "num_inter_threads": 1,
                       "train_files": "cifar10_test.tfrecord"}
    assert warnings == []
    # --train_dir given: it wins only when equal to --checkpointDir, else both are named.
    with pytest.raises(ValueError, match="--train_dir=/a and FastNN's --checkpointDir=/b"):
        _translate((), train_dir="/a", checkpointDir="/b")
    with pytest.raises(ValueError, match="give one of them"):
        _translate((), train_files="a.tfrecord", file_pattern="b_%s.tfrecord")
    with pytest.raises(ValueError, match="--worker_count=4 but this job has 2 worker"):
        _translate((), num_workers=2, worker_count=4)
    assert _translate((), num_workers=2, worker_count=2) == ({}, [])
    assert fastnn_flags.horovod_env(8 << 20) == {"HOROVOD_FUSION_THRESHOLD": "8388608"}
    assert fastnn_flags.profile_dir("/run", False, ".") == "."
    assert fastnn_flags.profile_dir("/run", True, ".") == "/run"


def test_fastnn_flags_without_effect_warn(parse):
    parse()
    _, warnings = _translate((), reader="tfrecord", tables="odps://t", protocol="grpc",
                             job_name="worker", colocate_gradients_with_ops=True, buckets="")
    text = "\n".join(warnings)
    for name in ("reader", "tables", "protocol", "job_name", "colocate_gradients_with_ops"):
        assert "--%s=" % name in text and "has no effect" in text
    assert "--buckets" not in text  # empty: nothing asked for


def test_every_fastnn_flag_is_in_the_readme_table():
    readme = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")).read()
    rows = {line.split("|")[1].strip().strip("`") for line in readme.splitlines()
            if line.startswith("| `")}
    missing = [n for n in fastnn_flag_names() if n not in rows]
    assert not missing, missing


def test_help_lists_the_trainer_flags_by_fastnn_group(capsys):
    with pytest.raises(SystemExit) as exit_info:
        trainer_flags.parse_flags(["train_image_classifiers.py", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    titles = [line for line in text.splitlines() if line and not line.startswith(" ")
              and line.endswith(":")]
    assert [t.split(" ")[0].rstrip(":") for t in titles] == [
        "dataset", "preprocessing", "model", "learning", "optimizer", "logging", "performance",
        "distribution", "input/output", "machine"]
    for name in fastnn_flag_names() + ["train_dir", "use_bf16"]:
        assert "  --%s" % name in text, name
    listed = [line.split()[0] for line in text.splitlines() if line.startswith("  --")]
    assert not [n for n in listed if n in ("--flagfile", "--logtostderr", "--helpfull")
                or n.startswith("--tpu")]
    short = trainer_flags.help_text(short=True)
    assert "  --model_name (default: 'inception_resnet_v2')" in short and len(short) < len(text)


def test_hook_names_are_case_insensitive():
    assert hooks.parse_hook_names("stopatstephook, LoggingTensorHOOK,checkpointsaverhook") == [
        "StopAtStepHook", "LoggingTensorHook", "CheckpointSaverHook"]
    with pytest.raises(ValueError, match="unknown hook.*FooHook"):
        hooks.parse_hook_names("FooHook")


# FastNN's preprocessing_fn_map (preprocessing/preprocessing_factory.py): name -> module.
FASTNN_PREPROCESSING = dict(
    [(n, "inception") for n in (
        "alexnet_v2", "overfeat", "inception", "inception_v1", "inception_v2", "inception_v3",
        "inception_v4", "inception_resnet_v2", "mobilenet_v1", "mobilenet_v1_075",
        "mobilenet_v1_050", "mobilenet_v1_025", "mobilenet_v2", "mobilenet_v2_035",
        "mobilenet_v2_140", "nasnet_mobile", "nasnet_large", "pnasnet_mobile", "pnasnet_large")]
    + [(n, "vgg") for n in (
        "resnet_v1_50", "resnet_v1_101", "resnet_v1_152", "resnet_v1_200", "resnet_v2_50",
        "resnet_v2_101", "resnet_v2_152", "resnet_v2_200", "vgg", "vgg_a", "vgg_16", "vgg_19")]
    + [("cifarnet", "cifarnet"), ("lenet", "lenet")])


def test_every_fastnn_preprocessing_name():
    assert len(FASTNN_PREPROCESSING) == 33
    for name, base in FASTNN_PREPROCESSING.items():
        assert preprocessing_factory.get_preprocessing(name, is_training=True).name == base, name
    # Every network names the preprocessing its registry record uses.
    for name in model_factory.list_models():
        assert (preprocessing_factory.canonical_name(name)
                == model_factory.get_model_record(name).preprocessing_name), name
    with pytest.raises(ValueError, match="unknown preprocessing_name 'fancy'.*network's name"):
        preprocessing_factory.get_preprocessing("fancy")


# ----------------------------------------------------------------------------- train_dir
def test_default_train_dir_is_per_model_and_task(tmp_path):
    dirs = {run_dir.default_train_dir(m, t, str(tmp_path))
            for m in ("lenet", "cifarnet") for t in ("pretrain", "finetune")}
    assert len(dirs) == 4
    assert run_dir.default_train_dir("lenet", "pretrain", "/t") == "/t/fastnn_train/lenet"


def test_train_dir_of_another_run_is_refused_in_one_line(tmp_path):
    d = str(tmp_path)
    run = {"model_name": "lenet", "dataset_name": "mock", "num_classes": 10,
           "task_type": "pretrain", "image_size": 28}
    training.write_run_flags(d, {"model_name": "lenet"}, [], run)
    run_dir.check_compatible(d, dict(run, image_size=32), has_checkpoint=True)  # same model
    other = dict(run, model_name="cifarnet", num_classes=5)
    run_dir.check_compatible(d, other, has_checkpoint=False)  # nothing would be resumed
    with pytest.raises(ValueError) as e:
        run_dir.check_compatible(d, other, has_checkpoint=True)
    message = str(e.value)
    assert "\n" not in message
    assert "model_name=lenet, num_classes=10" in message
    assert "model_name=cifarnet, num_classes=5" in message and "new --train_dir" in message
    assert run_dir.run_defaults(d, {"eval_image_size": "image_size", "x": "missing"}) == {
        "eval_image_size": 28}


# ----------------------------------------------------------------------------- progress
def test_progress_lines_at_multiples_of_the_interval_and_the_last_step(graph):
    messages = []

    class Capture(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, logger = Capture(), logging.getLogger("fastnn")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        step = tf.train.get_or_create_global_step()
        train_op = tf.assign_add(step, 1)
        hook = hooks.ThroughputLoggingHook({"global_step": step}, 3, global_batch_size=8,
                                           total_steps=7)
        clock = progress.RunClockHook(progress.StartupClock(), 7)
        with tf.train.MonitoredSession(hooks=[hook, clock,
                                              tf.train.StopAtStepHook(last_step=7)]) as sess:
            while not sess.should_stop():
                sess.run(train_op)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [m for m in messages if m.startswith("step=")]
    assert [int(m.split(",")[0][5:]) for m in lines] == [3, 6, 7]
    assert "42.9% of 7 steps" in lines[0] and "100.0% of 7 steps" in lines[-1]
    assert all("samples/sec=" in m and "ETA " in m for m in lines)
    assert any(m.startswith("training starts at step 0 until step 7") for m in messages)
    assert (clock.start_step, clock.last_step) == (0, 7)


def test_outcome_line_tells_what_was_saved():
    saved = progress.outcome_text(0, 5, 3.0, "/r", "/r/model.ckpt-5", True)
    assert saved.endswith("checkpoint /r/model.ckpt-5")
    none = progress.outcome_text(0, 5, 3.0, "/r", None, False)
    assert "no checkpoint saved: CheckpointSaverHook is not in --hooks" in none
    assert "model.ckpt" not in none
    older = progress.outcome_text(4, 9, 3.0, "/r", "/r/model.ckpt-4", False)
    assert "latest in /r is from step 4" in older
    assert progress.format_duration(3725) == "1h02m" and progress.format_duration(75) == "1m15s"


# ----------------------------------------------------------------------------- epoch size
def test_epoch_size_is_counted_once_and_cached(tmp_path):
    paths = []
    for i, n in enumerate((5, 7)):
        path = str(tmp_path / ("part-%d.tfrecord" % i))
        with tf.io.TFRecordWriter(path) as w:
            for j in range(n):
                w.write(b"x" * (j * 37))
        paths.append(path)
    assert record_count.count_files(paths) == (12, 2)
    assert os.path.exists(tmp_path / record_count.CACHE_NAME)
    assert record_count.count_files(paths) == (12, 0)  # from the cache
    with open(paths[1], "r+b") as f:
        f.truncate(os.path.getsize(paths[1]) - 3)
    size, why = record_count.epoch_size(paths)
    assert size is None and "part-1.tfrecord" in why and "not a whole" in why
    with open(paths[0], "ab") as f:  # a header cut short after the last whole record
        f.write(b"\x05\x00\x00")
    size, why = record_count.epoch_size(paths[:1])
    assert size is None and "part-0.tfrecord" in why and "record 6 runs past" in why


# ----------------------------------------------------------------------------- oneDNN
def test_onednn_choice():
    on, why = onednn.decide({}, frozenset({"avx2", "fma", "sse4_2"}), "x86_64")
    assert on == "1" and "TF_ENABLE_ONEDNN_OPTS=0 turns it off" in why
    assert onednn.decide({}, frozenset({"sse4_2"}), "x86_64")[0] is None
    assert onednn.decide({}, frozenset({"avx2", "fma"}), "aarch64")[0] is None
    user, why = onednn.decide({"TF_ENABLE_ONEDNN_OPTS": "0"}, frozenset({"avx2", "fma"}),
                              "x86_64")
    assert user is None and "oneDNN off" in why and "from the environment" in why
