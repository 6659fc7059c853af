"""Finetuning: assignment maps, class-count changes, scope flags, resume-first, moving averages.

The library is tested on a tiny batch-norm network built here (fast, in-process); the trainer end
to end in subprocesses: FastNN's finetune command on resnet_v1_50 (batch norm) verbatim, and the
scope flags, resume and moving averages on cifarnet.
"""
import logging
import os
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
import tf_slim as slim

from conftest import run_script
from images import evaluation
from images.utils import warm_start

TRAIN = "train_image_classifiers.py"


# ----------------------------------------------------------------------------- helpers
def tiny_net(images, num_classes, scope="TinyNet", conv2_depth=4, extra_layer=False):
    """conv-BN, conv-BN, pool, classifier: every kind of variable a warm start must carry."""
    with tf.variable_scope(scope):
        with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                            normalizer_params={"is_training": True, "scale": True}):
            net = slim.conv2d(images, 4, [3, 3], scope="conv1")
            net = slim.conv2d(net, conv2_depth, [3, 3], scope="conv2")
            if extra_layer:
                net = slim.conv2d(net, conv2_depth, [1, 1], scope="conv3")
        net = tf.reduce_mean(net, [1, 2])
        return slim.fully_connected(net, num_classes, activation_fn=None, scope="logits")


def save_source_checkpoint(path, num_classes=3, scope="TinyNet", seed=0):
    """Builds ``tiny_net``, gives every model variable (BN statistics too) random values, saves.

    Returns ``{name: value}`` of the saved model variables.
    """
    rng = np.random.RandomState(seed)
    with tf.Graph().as_default():
        tiny_net(tf.zeros([2, 8, 8, 3]), num_classes, scope=scope)
        variables = tf.model_variables()
        values = {v.op.name: rng.uniform(0.5, 2.0, v.shape.as_list()).astype(np.float32)
                  for v in variables}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for v in variables:
                v.load(values[v.op.name], sess)
            tf.train.Saver(variables).save(sess, path)
    return values


def read_ckpt(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def run_init_fn(init_fn):
    """Initialises the default graph's variables, runs ``init_fn``; returns ``{name: value}``."""
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        initial = {v.op.name: sess.run(v) for v in tf.global_variables()}
        init_fn(None, sess)
        return initial, {v.op.name: sess.run(v) for v in tf.global_variables()}


class Capture(logging.Handler):
    """Collects the ``fastnn`` logger's lines (the trainer's logger may not propagate)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def __enter__(self):
        logger = logging.getLogger("fastnn")
        self._level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        logger = logging.getLogger("fastnn")
        logger.removeHandler(self)
        logger.setLevel(self._level)

    @property
    def text(self):
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("src") / "tiny.ckpt")
    return path, save_source_checkpoint(path)


# ----------------------------------------------------------------------------- library
def test_class_count_change_restores_all_else_bit_exactly(graph, source, tmp_path):
    path, values = source
    tiny_net(tf.zeros([2, 8, 8, 3]), num_classes=5)
    with Capture() as cap:
        init_fn = warm_start.warm_start_init_fn(os.path.dirname(path), "tiny.ckpt",
                                                str(tmp_path / "train"), num_classes=5)
    assert "not restoring the classifier" in cap.text
    assert "TinyNet/logits/weights [4, 3] -> [4, 5]" in cap.text
    assert "TinyNet/logits/biases [3] -> [5]" in cap.text
    initial, restored = run_init_fn(init_fn)
    names = sorted(v.op.name for v in tf.model_variables())
    # Batch-norm statistics are model variables too, and must come back.
    assert {"TinyNet/conv1/BatchNorm/moving_mean", "TinyNet/conv2/BatchNorm/moving_variance",
            "TinyNet/conv1/BatchNorm/gamma"} <= set(names)
    for name in names:
        if name.startswith("TinyNet/logits"):
            np.testing.assert_array_equal(restored[name], initial[name])
        else:
            np.testing.assert_array_equal(restored[name], values[name], err_msg=name)


def test_shape_mismatch_lists_each_variable_with_both_shapes_and_the_fix(graph, source):
    path, _ = source
    tiny_net(tf.zeros([2, 8, 8, 3]), num_classes=3, conv2_depth=8)
    with pytest.raises(warm_start.CheckpointMismatchError) as err:
        warm_start.build_assignment_map(path, tf.model_variables(), num_classes=3)
    msg = str(err.value)
    assert "TinyNet/conv2/weights: checkpoint [3, 3, 4, 4], model [3, 3, 4, 8]" in msg
    assert "TinyNet/conv2/BatchNorm/moving_mean: checkpoint [4], model [8]" in msg
    assert "TinyNet/logits/weights: checkpoint [4, 3], model [8, 3]" in msg
    assert "--checkpoint_exclude_scopes=TinyNet/conv2,TinyNet/logits," in msg
    # The flag the message names does fix it.
    plan = warm_start.build_assignment_map(
        path, tf.model_variables(), num_classes=3,
        exclude_scopes=["TinyNet/conv2", "TinyNet/logits"])
    assert sorted(plan.assignment) == sorted(
        n for n in (v.op.name for v in tf.model_variables()) if n.startswith("TinyNet/conv1"))
    # conv2's weights and its four BN variables, the classifier's weights and biases.
    assert len(plan.excluded) == 7


def test_scope_map_renames_a_prefix(graph, tmp_path):
    path = str(tmp_path / "old.ckpt")
    values = save_source_checkpoint(path, scope="OldNet")
    tiny_net(tf.zeros([2, 8, 8, 3]), num_classes=3)
    # Without the map nothing matches, and the message says which flag fixes it.
    with pytest.raises(warm_start.CheckpointMismatchError) as err:
        warm_start.build_assignment_map(path, tf.model_variables())
    msg = str(err.value)
    assert "--checkpoint_scope_map" in msg and "--ignore_missing_vars" in msg
    assert "the checkpoint's variables live under: OldNet" in msg
    scope_map = warm_start.parse_scope_map("OldNet:TinyNet")
    init_fn = warm_start.warm_start_init_fn(path, None, str(tmp_path / "train"),
                                            scope_map=scope_map)
    _, restored = run_init_fn(init_fn)
    for var in tf.model_variables():
        np.testing.assert_array_equal(restored[var.op.name],
                                      values[var.op.name.replace("TinyNet", "OldNet", 1)])


def test_scope_map_matches_whole_scope_components():
    pairs = warm_start.parse_scope_map("net:model, net/block1:model/b1")
    assert warm_start.checkpoint_name("model/conv1/weights", pairs) == "net/conv1/weights"
    assert warm_start.checkpoint_name("model/b1/weights", pairs) == "net/block1/weights"
    assert warm_start.checkpoint_name("model2/conv1/weights", pairs) == "model2/conv1/weights"
    for bad in ("net", "net:", ":model", "a:b:c"):
        with pytest.raises(ValueError, match="not old:new"):
            warm_start.parse_scope_map(bad)


def test_ignore_missing_vars(graph, source, tmp_path):
    path, values = source
    tiny_net(tf.zeros([2, 8, 8, 3]), num_classes=3, extra_layer=True)
    with pytest.raises(warm_start.CheckpointMismatchError, match="TinyNet/conv3/weights"):
        warm_start.build_assignment_map(path, tf.model_variables())
    with Capture() as cap:
        init_fn = warm_start.warm_start_init_fn(path, None, str(tmp_path / "t"),
                                                ignore_missing_vars=True)
    assert "--ignore_missing_vars" in cap.text and "TinyNet/conv3/weights" in cap.text
    initial, restored = run_init_fn(init_fn)
    for name in restored:
        if name.startswith("TinyNet/conv3"):
            np.testing.assert_array_equal(restored[name], initial[name])
        elif name in values:
            np.testing.assert_array_equal(restored[name], values[name])


def test_scopes_that_select_nothing_are_rejected(graph, source):
    path, _ = source
    tiny_net(tf.zeros([2, 8, 8, 3]), num_classes=3)
    with pytest.raises(ValueError, match="--checkpoint_exclude_scopes: TinyNet/logit_s"):
        warm_start.build_assignment_map(path, tf.model_variables(),
                                        exclude_scopes=["TinyNet/logit_s"])
    with pytest.raises(ValueError, match="--checkpoint_scope_map: model scope"):
        warm_start.build_assignment_map(path, tf.model_variables(),
                                        scope_map=[("TinyNet", "Tiny")])
    with pytest.raises(ValueError, match="into both TinyNet/conv1/weights and Two/conv1/weights"):
        with tf.variable_scope("Two"):
            slim.conv2d(tf.zeros([1, 8, 8, 3]), 4, [3, 3], scope="conv1")
        warm_start.build_assignment_map(path, tf.model_variables(),
                                        scope_map=[("TinyNet", "Two")])
    with pytest.raises(ValueError, match="--trainable_scopes: Nope.*TinyNet"):
        warm_start.variables_to_train(tf.trainable_variables(), "Nope")


def test_variables_to_train(graph):
    tiny_net(tf.zeros([2, 8, 8, 3]), num_classes=3)
    every = tf.trainable_variables()
    assert warm_start.variables_to_train(every, None) == every
    chosen = warm_start.variables_to_train(every, "TinyNet/logits, TinyNet/conv2/BatchNorm")
    assert sorted(v.op.name for v in chosen) == [
        "TinyNet/conv2/BatchNorm/beta", "TinyNet/conv2/BatchNorm/gamma",
        "TinyNet/logits/biases", "TinyNet/logits/weights"]


def test_resume_beats_warm_start(graph, source, tmp_path):
    path, _ = source
    train_dir = str(tmp_path / "train")
    os.makedirs(train_dir)
    v = tf.get_variable("v", initializer=1.0)
    with tf.Session() as sess:
        sess.run(v.initializer)
        tf.train.Saver([v]).save(sess, os.path.join(train_dir, "model.ckpt"), global_step=7)
    with Capture() as cap:
        # A checkpoint that does not even fit: resuming must win before it is looked at.
        assert warm_start.warm_start_init_fn(path, None, train_dir, num_classes=3) is None
    assert "resuming from it, not warm-starting" in cap.text
    assert "model.ckpt-7" in cap.text


def test_moving_averages_start_from_the_restored_weights(graph, source, tmp_path):
    path, values = source
    tiny_net(tf.zeros([2, 8, 8, 3]), num_classes=3)
    ema = tf.train.ExponentialMovingAverage(0.9)
    ema.apply(tf.model_variables())
    averages = {v: ema.average(v) for v in tf.model_variables()}
    init_fn = warm_start.warm_start_init_fn(path, None, str(tmp_path / "t"), num_classes=3,
                                            averages=averages)
    _, restored = run_init_fn(init_fn)
    for var in tf.model_variables():
        np.testing.assert_array_equal(restored[var.op.name + "/ExponentialMovingAverage"],
                                      values[var.op.name])


def test_missing_checkpoint_says_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        warm_start.resolve_checkpoint(str(tmp_path), "nope.ckpt")
    with pytest.raises(FileNotFoundError, match="--ckpt_file_name"):
        warm_start.resolve_checkpoint(str(tmp_path))


# ----------------------------------------------------------------------------- end to end
def write_cifar10(dataset_dir, count=16, seed=0):
    """A tiny cifar10-format TFRecord: 32x32 PNGs, labels 0..9."""
    from images.datasets import example_codec, tfrecord_writer
    rng = np.random.RandomState(seed)
    examples = []
    with tf.Graph().as_default(), tf.Session() as sess:
        pixels = tf.placeholder(tf.uint8, [32, 32, 3])
        encode = tf.io.encode_png(pixels)
        for i in range(count):
            png = sess.run(encode, {pixels: rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)})
            examples.append(example_codec.image_to_tfexample(png, "png", 32, 32, i % 10))
    os.makedirs(dataset_dir, exist_ok=True)
    tfrecord_writer.write_shards(
        examples, tfrecord_writer.shard_paths(dataset_dir, "cifar10", "train"))
    return dataset_dir


@pytest.fixture(scope="module")
def cifar10_dir(tmp_path_factory):
    return write_cifar10(str(tmp_path_factory.mktemp("cifar10")))


def model_vars(ckpt):
    """Model variables of a checkpoint dict (no optimizer slots, averages or step)."""
    slots = ("/RMSProp", "/Momentum", "/Adam", "/ExponentialMovingAverage")
    return {k: v for k, v in ckpt.items()
            if k != "global_step" and not any(s in k for s in slots)}


@pytest.mark.heavy
def test_fastnn_finetune_command_verbatim_restores_resnet_bn_statistics(tmp_path, cifar10_dir):
    """Pretrain resnet_v1_50 on 7 classes, finetune it on cifar10 with FastNN's command."""
    pre = str(tmp_path / "pretrain")
    run_script([TRAIN, "--enable_paisoar=False", "--model_name=resnet_v1_50",
                "--dataset_name=mock", "--num_classes=7", "--train_image_size=32",
                "--batch_size=2", "--stop_at_step=1", "--optimizer=sgd",
                "--save_summaries_steps=0", "--train_dir=" + pre])
    source = model_vars(read_ckpt(os.path.join(pre, "model.ckpt-1")))
    # One training step moved the BN statistics away from their initial values (0 and 1), so
    # restoring them is visible.
    assert np.any(source["resnet_v1_50/conv1/BatchNorm/moving_mean"] != 0)
    assert np.any(source["resnet_v1_50/block4/unit_3/bottleneck_v1/conv3/BatchNorm/"
                         "moving_variance"] != 1)

    train_dir = str(tmp_path / "finetune")
    proc = run_script([
        TRAIN, "--task_type=finetune", "--enable_paisoar=False", "--dataset_name=cifar10",
        "--train_files=cifar10_train.tfrecord", "--dataset_dir=" + cifar10_dir,
        "--model_name=resnet_v1_50", "--model_dir=" + pre, "--ckpt_file_name=model.ckpt-1",
        # small and quick on a CPU:
        "--train_image_size=32", "--batch_size=2", "--stop_at_step=1",
        "--save_summaries_steps=0", "--train_dir=" + train_dir])
    assert ("not restoring the classifier variable(s) resnet_v1_50/logits/weights "
            "[1, 1, 2048, 7] -> [1, 1, 2048, 10]; resnet_v1_50/logits/biases [7] -> [10]"
            in proc.stderr), proc.stderr[-3000:]
    assert "warm-starting 265 of 267 model variable(s)" in proc.stderr
    # The checkpoint written as the session starts holds exactly what the warm start restored.
    start = model_vars(read_ckpt(os.path.join(train_dir, "model.ckpt-0")))
    assert set(start) == set(source)
    restored = [n for n in source if not n.startswith("resnet_v1_50/logits")]
    assert len(restored) == 265 and sum("moving_" in n for n in restored) == 106
    for name in restored:
        np.testing.assert_array_equal(start[name], source[name], err_msg=name)
    assert start["resnet_v1_50/logits/weights"].shape == (1, 1, 2048, 10)
    assert tf.train.latest_checkpoint(train_dir).endswith("model.ckpt-1")


CIFARNET_FT = [TRAIN, "--task_type=finetune", "--enable_paisoar=False",
               "--dataset_name=cifar10", "--train_files=cifar10_train.tfrecord",
               "--model_name=cifarnet", "--batch_size=4", "--optimizer=sgd",
               "--learning_rate=0.05", "--save_summaries_steps=0"]


@pytest.fixture(scope="module")
def cifarnet_old_scope(tmp_path_factory):
    """A cifarnet checkpoint trained on 7 mock classes, then saved under the scope ``OldNet``."""
    base = tmp_path_factory.mktemp("cifarnet")
    pre = str(base / "pretrain")
    run_script([TRAIN, "--enable_paisoar=False", "--model_name=cifarnet", "--dataset_name=mock",
                "--num_classes=7", "--batch_size=4", "--stop_at_step=2", "--optimizer=sgd",
                "--save_summaries_steps=0", "--train_dir=" + pre])
    values = model_vars(read_ckpt(os.path.join(pre, "model.ckpt-2")))
    renamed = {k.replace("CifarNet/", "OldNet/", 1): v for k, v in values.items()}
    old = str(base / "old")
    os.makedirs(old)
    with tf.Graph().as_default(), tf.Session() as sess:
        variables = [tf.Variable(v, name=k) for k, v in renamed.items()]
        sess.run(tf.global_variables_initializer())
        tf.train.Saver(variables).save(sess, os.path.join(old, "old.ckpt"))
    return old, renamed


def test_finetune_scope_map_exclude_trainable_averages_then_resume(tmp_path, cifar10_dir,
                                                                   cifarnet_old_scope):
    old_dir, old = cifarnet_old_scope
    train_dir = str(tmp_path / "ft")
    args = CIFARNET_FT + [
        "--dataset_dir=" + cifar10_dir, "--model_dir=" + old_dir, "--ckpt_file_name=old.ckpt",
        "--checkpoint_scope_map=OldNet:CifarNet", "--checkpoint_exclude_scopes=CifarNet/fc4",
        "--trainable_scopes=CifarNet/fc4,CifarNet/logits", "--moving_average_decay=0.5",
        "--train_dir=" + train_dir]
    proc = run_script(args + ["--stop_at_step=2"])
    assert "not restoring the classifier variable(s) CifarNet/logits/weights [192, 7] -> " \
           "[192, 10]" in proc.stderr, proc.stderr[-3000:]
    assert "--checkpoint_exclude_scopes leaves 2 variable(s)" in proc.stderr
    start = read_ckpt(os.path.join(train_dir, "model.ckpt-0"))
    end = read_ckpt(os.path.join(train_dir, "model.ckpt-2"))
    for name in ("conv1/weights", "conv2/biases", "fc3/weights"):
        # Renamed from OldNet, restored exactly, and not trained (outside --trainable_scopes).
        np.testing.assert_array_equal(start["CifarNet/" + name], old["OldNet/" + name])
        np.testing.assert_array_equal(end["CifarNet/" + name], old["OldNet/" + name])
    # Excluded: starts from its initialiser, not the checkpoint; trainable: it moved.
    assert not np.array_equal(start["CifarNet/fc4/weights"], old["OldNet/fc4/weights"])
    assert not np.array_equal(end["CifarNet/fc4/weights"], start["CifarNet/fc4/weights"])
    assert not np.array_equal(end["CifarNet/logits/weights"], start["CifarNet/logits/weights"])
    # The averages start at the restored weights and follow the trained ones.
    np.testing.assert_array_equal(start["CifarNet/fc3/weights/ExponentialMovingAverage"],
                                  old["OldNet/fc3/weights"])
    avg = end["CifarNet/fc4/weights/ExponentialMovingAverage"]
    assert not np.array_equal(avg, end["CifarNet/fc4/weights"])
    assert not np.array_equal(avg, start["CifarNet/fc4/weights"])

    # Run again into the same train_dir: its checkpoint wins over the warm start.
    proc = run_script(args + ["--stop_at_step=3"])
    assert "already holds checkpoint" in proc.stderr and "model.ckpt-2" in proc.stderr
    assert "warm-starting 8 of" not in proc.stderr
    resumed = read_ckpt(os.path.join(train_dir, "model.ckpt-3"))
    assert resumed["global_step"] == 3
    np.testing.assert_array_equal(resumed["CifarNet/conv1/weights"], old["OldNet/conv1/weights"])

    # Evaluation with --moving_average_decay reads the averages, without it the weights.
    with tf.Graph().as_default():
        from images.models import model_factory
        model_factory.get_network_fn("cifarnet", 10)(tf.zeros([1, 32, 32, 3]))
        tf.train.get_or_create_global_step()
        for decay, suffix in ((0.5, "/ExponentialMovingAverage"), (None, "")):
            mapping = evaluation.variables_to_restore(decay)
            with tf.Session() as sess:
                tf.train.Saver(mapping).restore(sess, os.path.join(train_dir, "model.ckpt-3"))
                for var in tf.model_variables():
                    np.testing.assert_array_equal(sess.run(var),
                                                  resumed[var.op.name + suffix])
    result = evaluation.evaluate(train_dir, "cifarnet", "cifar10", dataset_dir=cifar10_dir,
                                 split_name="train", batch_size=8, moving_average_decay=0.5)
    assert result["count"] == 16 and result["global_step"] == 3


def test_finetune_mismatch_stops_with_the_shapes_and_the_flag(tmp_path, cifar10_dir,
                                                              cifarnet_old_scope):
    old_dir, _ = cifarnet_old_scope
    # A 40x40 input makes fc3's input wider than the checkpoint's.
    proc = run_script(CIFARNET_FT + [
        "--dataset_dir=" + cifar10_dir, "--model_dir=" + old_dir,
        "--checkpoint_scope_map=OldNet:CifarNet", "--train_image_size=40", "--stop_at_step=1",
        "--train_dir=" + str(tmp_path / "bad")], check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    found = re.search(r"CifarNet/fc3/weights \(checkpoint OldNet/fc3/weights\): "
                      r"checkpoint \[(\d+), 384\], model \[(\d+), 384\]", proc.stderr)
    assert found, proc.stderr[-3000:]
    assert int(found.group(2)) > int(found.group(1))
    assert "--checkpoint_exclude_scopes=CifarNet/fc3" in proc.stderr


def test_evaluating_averages_of_a_checkpoint_without_them_is_a_clear_error(
        tmp_path, cifar10_dir, cifarnet_old_scope):
    old_dir, _ = cifarnet_old_scope
    pre = os.path.join(os.path.dirname(old_dir), "pretrain")
    with pytest.raises(ValueError, match="holds no moving averages.*--moving_average_decay"):
        evaluation.evaluate(pre, "cifarnet", "mock", num_classes=7, max_num_batches=1,
                            batch_size=2, moving_average_decay=0.9)


@pytest.mark.parametrize("args,needle", [
    (["--checkpoint_exclude_scopes=LeNet/fc4"], "need --task_type=finetune"),
    (["--checkpoint_scope_map=a:b"], "need --task_type=finetune"),
    (["--ignore_missing_vars"], "need --task_type=finetune"),
    (["--moving_average_decay=1.0"], "moving_average_decay must be in"),
])
def test_warm_start_flags_are_validated(args, needle):
    from absl import flags as absl_flags
    import flags as trainer_flags
    flag_values = trainer_flags.FLAGS
    try:
        flag_values.unparse_flags()
        with pytest.raises(absl_flags.Error, match=needle):
            flag_values(["train_image_classifiers.py"] + args)
    finally:
        flag_values.unparse_flags()
