"""PLSC users' programs, data and models on fastnn (issue 15), single process.

PLSC's API as its own code defines it (PaddlePaddle/PLSC v0.1.0 and the v0.2.0 branch:
plsc/entry.py, plsc/config.py, plsc/models/resnet.py, plsc/utils/*_reader.py,
serving/server/plsc_serving/run, serving/client/face_service) is checked through ``plsc``,
``plsc_serving`` and ``face_service``.  Horovod runs: test_plsc_dist.py.
"""
import base64
import inspect
import json
import logging
import os
import sys

import numpy as np
import pytest

from conftest import run_script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "largescale_scripts"))
import datagen  # noqa: E402

import plsc  # noqa: E402
from images.largescale import Entry as LargeScaleEntry  # noqa: E402
from images.largescale import checkpoint, trainer as trainer_lib, verification  # noqa: E402

SMALL = dict(model_name="lenet", image_shape=(3, 28, 28), emb_dim=16, train_batch_size=8,
             test_batch_size=16, num_classes=5)


def small_entry(**kw):
    """A ``plsc.Entry`` on LeNet at 28x28 (through plsc.config, as a PLSC program would)."""
    import plsc.config
    saved = dict(plsc.config.config)
    plsc.config.config.update(SMALL, **kw)
    try:
        return plsc.Entry()
    finally:
        plsc.config.config.clear()
        plsc.config.config.update(saved)


# ---------------------------------------------------------------- the API surface
# PLSC's setters as plsc/entry.py defines them (v0.2.0 branch; set_image_shape and predict from
# v0.1.0): (name, [(parameter, default or REQUIRED)]).
REQUIRED = object()
PLSC_SETTERS = [
    ("set_model_name", [("model_name", REQUIRED)]),
    ("set_use_quant", [("quant", REQUIRED)]),
    ("set_input_info", [("input_holder", REQUIRED)]),
    ("set_val_targets", [("targets", REQUIRED)]),
    ("set_train_batch_size", [("batch_size", REQUIRED)]),
    ("set_log_period", [("period", REQUIRED)]),
    ("set_test_period", [("period", REQUIRED)]),
    ("set_lr_decay_factor", [("factor", REQUIRED)]),
    ("set_step_boundaries", [("boundaries", REQUIRED)]),
    ("set_mixed_precision", [("use_fp16", REQUIRED), ("init_loss_scaling", 1.0),
                             ("incr_every_n_steps", 2000), ("decr_every_n_nan_or_inf", 2),
                             ("incr_ratio", 2.0), ("decr_ratio", 0.5),
                             ("use_dynamic_loss_scaling", True), ("amp_lists", None)]),
    ("set_test_batch_size", [("batch_size", REQUIRED)]),
    ("set_hdfs_info", [("fs_name", REQUIRED), ("fs_ugi", REQUIRED), ("fs_dir_for_save", None),
                       ("fs_checkpoint_dir", None)]),
    ("set_model_save_dir", [("directory", REQUIRED)]),
    ("set_calc_acc", [("calc", REQUIRED)]),
    ("set_dataset_dir", [("directory", REQUIRED)]),
    ("set_train_image_num", [("num", REQUIRED)]),
    ("set_class_num", [("num", REQUIRED)]),
    ("set_model_parallel", [("flag", REQUIRED)]),
    ("set_sample_ratio", [("sample_ratio", REQUIRED)]),
    ("set_emb_size", [("size", REQUIRED)]),
    ("set_model", [("model", REQUIRED)]),
    ("set_train_epochs", [("num", REQUIRED)]),
    ("set_train_steps", [("num", REQUIRED)]),
    ("set_checkpoint_dir", [("directory", REQUIRED)]),
    ("set_max_last_checkpoint_num", [("num", REQUIRED)]),
    ("set_warmup_epochs", [("num", REQUIRED)]),
    ("set_loss_type", [("loss_type", REQUIRED), ("margin1", None), ("margin2", None),
                       ("margin3", None)]),
    ("set_optimizer", [("optimizer", REQUIRED)]),
    ("set_with_test", [("with_test", REQUIRED)]),
    ("set_distfc_attr", [("param_attr", None), ("bias_attr", None)]),
    ("set_image_shape", [("shape", REQUIRED)]),
    ("train", []), ("test", []), ("predict", []), ("convert_for_prediction", []),
]


def test_plsc_package_gives_plscs_entry_with_plscs_signatures():
    assert issubclass(plsc.Entry, LargeScaleEntry)
    for name, expected in PLSC_SETTERS:
        params = list(inspect.signature(getattr(plsc.Entry, name)).parameters.values())[1:]
        got = [(p.name, REQUIRED if p.default is inspect.Parameter.empty else p.default)
               for p in params if p.kind is not p.VAR_KEYWORD][:len(expected)]
        assert got == expected, name
        # Anything beyond PLSC's parameters is optional: PLSC's calls still work.
        assert all(p.default is not p.empty or p.kind is p.VAR_KEYWORD
                   for p in params[len(expected):]), name
    ins = plsc.Entry()
    for attr in ("train_reader", "test_reader", "predict_reader"):
        assert getattr(ins, attr) is None
    # The attributes PLSC programs read.
    assert (ins.train_batch_size, ins.num_classes, ins.emb_dim, ins.model_name,
            ins.loss_type, ins.margin2, ins.num_trainers, ins.trainer_id) == (
        32, 85742, 512, "ResNet50", "dist_arcface", 0.5, 1, 0)
    ins.train_batch_size = 32  # assignment goes through the setter
    assert ins.global_train_batch_size == 32
    from plsc.models import BaseModel, ResNet50, ResNet100  # noqa: F401
    from plsc.models.base_model import BaseModel as B2
    from plsc.utils import base64_reader, jpeg_reader  # noqa: F401
    assert B2 is BaseModel


def test_settings_without_meaning_here_are_refused_with_what_to_do():
    ins = plsc.Entry()
    ins.set_use_quant(False)
    with pytest.raises(ValueError, match="TFLiteConverter"):
        ins.set_use_quant(True)
    with pytest.raises(ValueError, match="amp_lists"):
        ins.set_mixed_precision(True, amp_lists=object())
    with pytest.raises(ValueError, match="ParamAttr"):
        ins.set_distfc_attr(param_attr={"initializer": "xavier"})
    with pytest.raises(ValueError, match="tensorflow-io"):
        ins.set_hdfs_info("hdfs://namenode:9000", "user,passwd", "some_dir")
    with pytest.raises(ValueError, match="file system URI"):
        ins.set_hdfs_info("you_hdfs_addr", "name,passwd", "some_dir")
    with pytest.raises(ValueError, match="tf.compat.v1.train.Optimizer"):
        ins.set_optimizer(object())
    with pytest.raises(ValueError, match="exactly 'image' and 'label'"):
        ins.set_input_info([{"name": "image", "shape": [-1, 3, 112, 112], "dtype": "float32"},
                            {"name": "mask", "shape": [-1, 1], "dtype": "float32"},
                            {"name": "label", "shape": [-1, 1], "dtype": "int64"}])
    with pytest.raises(ValueError, match="'label'"):
        ins.set_input_info([{"name": "image", "shape": [-1, 3, 112, 112], "dtype": "float32"}])
    ins.set_loss_type("dist_arcface")
    with pytest.raises(ValueError, match="set_loss_type\\('arcface'\\)"):
        ins.set_model_parallel(False)
    with pytest.raises(ValueError, match="margin1, margin2 and margin3"):
        ins.set_loss_type("my_margin", 1.0, 0.3)
    with pytest.raises(ValueError, match="PLSC's names: ResNet100"):
        ins.set_model_name("ResNet34")
    ins.set_optimizer("adam")
    with pytest.raises(ValueError, match="momentum optimizer"):
        ins.set_fc_momentum_dtype("bfloat16")
    from plsc_serving.run import PLSCServer
    with pytest.raises(ValueError, match="convert_for_prediction"):
        PLSCServer().get_model("face_resnet50")


def test_setters_take_effect(tmp_path):
    import tensorflow.compat.v1 as tf
    from plsc.models import ResNet50
    ins = small_entry()
    ins.set_model_name("ResNet100")
    assert ins.config.model == "irresnet_100" and ins.model_name == "ResNet100"
    ins.set_model(ResNet50(emb_dim=128))
    assert (ins.config.model, ins.emb_dim) == ("irresnet_50", 128)
    ins.set_input_info([{"name": "image", "shape": [-1, 3, 32, 32], "dtype": "float32"},
                        {"name": "label", "shape": [-1], "dtype": "int64"}])
    assert ins.image_shape == (3, 32, 32)
    ins.set_loss_type("cosface", margin3=0.4)
    assert ins.config.margins == (1.0, 0.0, 0.4)
    ins.set_loss_type("my_margin", 1.0, 0.3, 0.2)  # PLSC's user-defined combined margin
    assert (ins.loss_type, ins.config.margins) == ("combined", (1.0, 0.3, 0.2))
    ins.set_train_steps(7)
    ins.set_train_epochs(2)
    assert (ins.train_steps, ins.train_epochs) == (None, 2.0)

    ins = small_entry()
    ins.set_dataset_dir(None)
    ins.set_loss_type("arcface")
    ins.set_model_parallel(True)
    ins.set_train_steps(6)
    ins.set_step_boundaries([2, 4])
    ins.set_lr_decay_factor(0.5)
    ins.set_distfc_attr(param_attr=0.5)
    ins.set_max_last_checkpoint_num(0)
    t = ins.trainer()
    assert t.loss_type == "dist_arcface"
    assert t.checkpointer.max_to_keep == trainer_lib.KEEP_ALL
    base = 0.1 * 8 / 1024
    with t.graph.as_default(), tf.Session() as sess:
        sess.run([t.global_step.initializer, t.fc.weights.initializer])
        rates = []
        for step in (0, 2, 4):
            sess.run(t.global_step.assign(step))
            rates.append(sess.run(t.learning_rate))
        assert np.std(sess.run(t.fc.weights)) == pytest.approx(0.5, rel=0.1)
    np.testing.assert_allclose(rates, [base, base * 0.5, base * 0.25], rtol=1e-6)

    ins = small_entry()
    ins.set_dataset_dir(None)
    ins.set_loss_type("softmax")
    ins.set_distfc_attr(bias_attr=0.25)
    ins.set_optimizer(tf.train.GradientDescentOptimizer(0.05))
    ins.set_train_steps(2)
    ins.set_model_save_dir(str(tmp_path / "sgd"))
    with ins.trainer() as t:
        assert t.fit() == 2
        values = t.variable_values()
        assert t.run(t.learning_rate) == pytest.approx(0.05)
    assert not [n for n in values if "Momentum" in n]  # the program's optimizer, not momentum
    assert values["dist_fc/bias"].shape == (5,)
    with tf.Graph().as_default():  # the bias started at 0.25 (SGD moves it a little)
        assert abs(float(np.mean(values["dist_fc/bias"])) - 0.25) < 0.05


# ---------------------------------------------------------------- the backbones
# insightface's LResNet100E-IR as OpenVINO's model zoo describes it (face-recognition-resnet100-
# arcface: 65.1320 M parameters, 24.2115 GFLOPs at 112x112).
PUBLISHED_R100 = dict(params=65.1320e6, flops=24.2115e9)
# Trainable parameters of the embedding networks (no classifier), from their definition.
EXACT_TRAINABLE = {"irresnet_50": 43590336, "irresnet_100": 65155648,
                   "irresnet_101": 54223296, "irresnet_152": 70765248}
UNITS = {"irresnet_50": (3, 4, 14, 3), "irresnet_100": (3, 13, 30, 3),
         "irresnet_101": (3, 4, 23, 3), "irresnet_152": (3, 8, 36, 3)}


def _expected_variables(name):
    # tests/data/variables is what test_models.py checks the built graphs against.
    out = {}
    with open(os.path.join(HERE, "data", "variables", name + ".txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                var, shape = line.split()
                out[var] = [int(d) for d in shape.split(",") if d]
    return out


@pytest.mark.parametrize("name", sorted(EXACT_TRAINABLE))
def test_irresnet_structure_and_parameter_counts(name):
    from images.models import model_factory
    variables = _expected_variables(name)
    trainable = sum(int(np.prod(s)) for v, s in variables.items()
                    if not v.endswith(("moving_mean", "moving_variance"))
                    and "/logits/" not in v)
    assert trainable == EXACT_TRAINABLE[name]
    units = [len({v.split("/")[2] for v in variables if v.split("/")[1:2] == ["stage%d" % s]})
             for s in range(1, 5)]
    assert tuple(units) == UNITS[name]
    # 3x3 stride-1 stem, 3x3 convolutions in the units, the BN-Dropout-FC-BN head on 7x7x512.
    assert variables[name + "/conv0/weights"] == [3, 3, 3, 64]
    assert variables[name + "/stage1/unit1/conv1/weights"] == [3, 3, 64, 64]
    assert variables[name + "/stage1/unit1/prelu/alpha"] == [64]
    assert variables[name + "/fc1/weights"] == [7 * 7 * 512, 512]
    assert name + "/fc1_bn/gamma" not in variables and name + "/fc1_bn/beta" in variables
    if name == "irresnet_100":
        assert trainable == pytest.approx(PUBLISHED_R100["params"], rel=1e-3)
        record = model_factory.get_model_record(name)
        classifier = 512 * record.default_num_classes
        assert 2 * (record.flops - classifier) == pytest.approx(PUBLISHED_R100["flops"],
                                                                rel=5e-3)


# ---------------------------------------------------------------- data, epochs, checkpoints
@pytest.fixture(scope="module")
def label_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("plsc_label")
    data = str(root / "train_data")
    datagen.write_label_dataset(data, 62, 5)
    datagen.write_pair_set(os.path.join(data, "tiny.bin"), num_pairs=20)
    return data


def test_label_txt_epochs_checkpoints_and_test_after_train(label_data, tmp_path, caplog):
    first = small_entry(dataset_dir=label_data)
    first.set_train_epochs(1)
    first.set_with_test(False)
    first.set_model_save_dir(str(tmp_path / "X"))
    assert first.train()["step"] == 8  # 62 images at a global batch of 8: 8 steps per epoch
    assert os.path.islink(str(tmp_path / "X" / "0"))  # PLSC's epoch name

    ins = small_entry(dataset_dir=label_data)
    ins.set_checkpoint_dir(str(tmp_path / "X" / "0"))  # PLSC's './saved_model/0/'
    ins.set_model_save_dir(str(tmp_path / "Y"))
    ins.set_train_epochs(2)
    ins.set_warmup_epochs(1)
    ins.set_val_targets("tiny,agedb_30")  # agedb_30.bin is missing: skipped with a warning
    ins.set_test_period(4)
    # The entry's logging setup stops "fastnn" records reaching the root logger, where caplog
    # listens: listen on "fastnn" itself.
    logging.getLogger("fastnn").addHandler(caplog.handler)
    try:
        with ins.trainer() as t:
            assert (t.steps_per_epoch, t.total_steps, t.warmup_steps, t.save_steps) == (
                8, 16, 8, 8)
            assert t.data_format == "label_txt" and t.val_targets == ["tiny"]
            assert t.fit() == 16
            assert sorted(t.results) == [12, 16]  # every test_period steps after the restart
    finally:
        logging.getLogger("fastnn").removeHandler(caplog.handler)
    assert "agedb_30 skipped" in caplog.text
    assert os.path.realpath(str(tmp_path / "Y" / "1")) == os.path.realpath(
        str(tmp_path / "Y" / "ckpt-16"))

    # test(), predict() and the export use the model just trained, not the starting checkpoint.
    res = ins.test()
    assert list(res) == ["tiny"] and res["tiny"]["step"] == 16 and res["tiny"]["pairs"] == 20
    fresh = small_entry(dataset_dir=label_data, val_targets="tiny")
    fresh.set_checkpoint_dir(str(tmp_path / "X" / "0"))
    assert fresh.test()["tiny"]["step"] == 8
    export_dir = ins.convert_for_prediction()
    with open(os.path.join(label_data, "images", "00003.jpg"), "rb") as f:
        jpeg = f.read()
    served = _saved_model_embeddings(export_dir, [jpeg])
    np.testing.assert_allclose(ins.predict([jpeg]), served, atol=1e-5)  # one decoder
    assert not np.allclose(fresh.predict([jpeg]), served, atol=1e-3)
    # predict() without images: PLSC's, the dataset's images in order, one embedding each.
    every = ins.predict()
    assert every.shape == (62, 16)
    np.testing.assert_allclose(every[3], served[0], atol=1e-5)


def _saved_model_embeddings(export_dir, encoded):
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default(), tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, [tf.saved_model.SERVING], export_dir)
        sig = meta.signature_def["serving_default"]
        return sess.run(sig.outputs["embeddings"].name,
                        {sig.inputs["image_bytes"].name: encoded})


def test_verification_decodes_as_training_does():
    # A JPEG gives the same pixels to verification as to the training pipeline (TensorFlow's
    # decoder); PIL's decoder differs by a few levels on some pixels.
    import io
    import tensorflow.compat.v1 as tf
    from PIL import Image
    from images.largescale import data
    rng = np.random.RandomState(3)
    jpeg = datagen.jpeg_bytes(rng.randint(0, 256, (28, 28, 3)).astype(np.uint8), quality=75)
    ours = verification.decode_images([jpeg], (3, 28, 28))[0]
    with tf.Graph().as_default(), tf.Session() as sess:
        train = sess.run(data.preprocess(data.decode_encoded(tf.constant(jpeg), 3), 28, 28,
                                         is_training=False))
    np.testing.assert_array_equal((ours - 127.5) / 128.0, train)
    pil = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.float32)
    assert np.abs(pil - ours).max() >= 1  # what predict() and test() used to decode with


# ---------------------------------------------------------------- custom readers
def _reader(n, calls, shape=(3, 28, 28), bad_label=None):
    def reader():
        calls.append(1)
        rng = np.random.RandomState(len(calls))
        batch = []
        for i in range(n):
            label = i % 5 if bad_label is None or i != 3 else bad_label
            image = rng.uniform(-1, 1, shape).astype(np.float32) + label * 0.2
            batch.append((image, label))
            if len(batch) == 4:  # what paddle.batch(reader, 4) yields
                yield batch
                batch = []
        if batch:
            yield batch
    return reader


def test_train_test_and_predict_readers_are_used():
    calls = []
    ins = small_entry(dataset_dir=None)
    ins.set_train_batch_size(4)
    ins.set_train_epochs(1)
    ins.set_model_save_dir(None)  # test() and predict() then use the trained model in memory
    ins.train_reader = _reader(18, calls)
    with ins.trainer() as t:
        assert t.data_format == "reader" and t.steps_per_epoch == 5  # one pass: 18 samples
        assert t.fit() == 5
    assert len(calls) >= 2  # counted once, then read for training

    def test_reader(data_dir, val_targets):
        rng = np.random.RandomState(0)
        images = rng.uniform(-1, 1, (40, 3, 28, 28)).astype(np.float32)
        images[1::2] = images[0::2]  # pairs (2i, 2i+1) are identical
        return [([images, images[:, :, :, ::-1]], [True] * 20)], ["mine"]

    ins.test_reader = test_reader
    res = ins.test()
    assert list(res) == ["mine"] and res["mine"]["accuracy"] == 1.0
    ins.predict_reader = _reader(6, [])
    assert ins.predict().shape == (6, 16)

    bad = small_entry(dataset_dir=None)
    bad.set_train_steps(2)
    bad.set_model_save_dir(None)
    bad.train_reader = _reader(8, [], bad_label=9)
    with pytest.raises(Exception, match="label 9, outside"):
        bad.train()


# ---------------------------------------------------------------- 16-bit FC momentum, scaling
def test_bfloat16_fc_momentum_follows_float32_and_saves_as_float32(graph):
    import tensorflow.compat.v1 as tf
    from images.largescale import fc_optimizer
    rng = np.random.RandomState(0)
    init = rng.randn(10, 4).astype(np.float32)
    grads = [rng.randn(3, 4).astype(np.float32) for _ in range(4)]
    rows = [np.array([1, 4, 4]), np.array([0, 1, 9]), np.array([2, 4, 7]), np.array([1, 2, 3])]
    out = {}
    for kind in ("float32", "bfloat16"):
        with tf.Graph().as_default():
            var = tf.Variable(init)
            inner = tf.train.MomentumOptimizer(0.1, 0.9)
            opt = inner if kind == "float32" else fc_optimizer.LowPrecisionMomentum(
                inner, [var], tf.bfloat16)
            g = tf.placeholder(tf.float32, [3, 4])
            idx = tf.placeholder(tf.int32, [3])
            step = opt.apply_gradients([(tf.IndexedSlices(g, idx, [10, 4]), var)])
            slot = opt.get_slot(var, "momentum")
            view = fc_optimizer.checkpoint_view(slot)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                for gv, iv in zip(grads, rows):
                    sess.run(step, {g: gv, idx: iv})
                out[kind] = sess.run([var, view])
                assert slot.dtype.base_dtype == (tf.float32 if kind == "float32" else
                                                 tf.bfloat16)
                assert out[kind][1].dtype == np.float32
    (w32, m32), (w16, m16) = out["float32"], out["bfloat16"]
    untouched = [5, 6, 8]
    np.testing.assert_array_equal(w16[untouched], init[untouched])
    np.testing.assert_allclose(w16, w32, rtol=0, atol=2e-3)
    np.testing.assert_allclose(m16, m32, rtol=1e-2, atol=1e-2)
    assert not np.array_equal(m16, m32)  # it is stored in 16 bits


def test_partial_fc_with_bfloat16_momentum_trains_and_resumes_in_float32(tmp_path):
    def make(dtype, steps):
        ins = small_entry(dataset_dir=None, num_classes=50)
        ins.set_sample_ratio(0.2)
        ins.set_fc_momentum_dtype(dtype)
        ins.set_train_steps(steps)
        ins.set_model_save_dir(str(tmp_path / "pfc"))
        return ins

    with make("bfloat16", 3).trainer() as t:
        t.fit()
        assert t.optimizer.get_slot(t.fc.weights, "momentum").dtype.base_dtype.name == \
            "bfloat16"
    folder = checkpoint.resolve_checkpoint(str(tmp_path / "pfc"))
    saved = np.load(os.path.join(folder, "shard-00000-of-00001.npz"))
    assert saved["weights/momentum"].dtype == np.float32
    assert 0 < np.count_nonzero(np.any(saved["weights/momentum"], axis=1)) < 50  # sampled rows
    assert make("float32", 5).train()["step"] == 5  # the checkpoint loads into float32


def test_plsc_dynamic_loss_scaling_rule(graph):
    import tensorflow.compat.v1 as tf
    from images.largescale.loss_scaling import PLSCLossScaleOptimizer
    var = tf.Variable([1.0])
    bad = tf.placeholder(tf.bool, [])
    opt = PLSCLossScaleOptimizer(tf.train.GradientDescentOptimizer(1.0), init_loss_scaling=8.0,
                                 incr_every_n_steps=3, decr_every_n_nan_or_inf=2,
                                 incr_ratio=4.0, decr_ratio=0.25)
    grad = tf.where(bad, tf.constant([np.nan]), tf.constant([0.5]))
    step = opt.apply_gradients([(grad, var)])
    scale = opt.loss_scale()
    trace = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for is_bad in (True, False, True, True, False, False, False):
            sess.run(step, {bad: is_bad})
            trace.append((float(sess.run(scale)), float(sess.run(var)[0])))
    # One bad step alone does not shrink the scale (decr_every_n_nan_or_inf=2) but is skipped;
    # a good step resets the count; two bad in a row shrink by decr_ratio; three good grow it.
    assert trace == [(8.0, 1.0), (8.0, 0.5), (8.0, 0.5), (2.0, 0.5), (2.0, 0.0), (2.0, -0.5),
                     (8.0, -1.0)]


# ---------------------------------------------------------------- the base64 tool, PLSC's way
def test_base64_tool_in_place_as_plscs_reader_expects(tmp_path):
    from plsc.utils import base64_reader
    data = str(tmp_path / "b64")
    datagen.write_base64_dataset(data, 21, 5, num_files=3, size=8)
    with open(os.path.join(data, "data-2.txt")) as f:  # label first, as PLSC's tool read it
        lines = [ln.rstrip("\n").split("\t") for ln in f]
    with open(os.path.join(data, "data-2.txt"), "w") as f:
        f.write("".join("%s\t%s\n" % (lab, b64) for b64, lab in lines))
    proc = run_script(["tools/process_base64_files.py", "--data_dir", data, "--file_list",
                       "file_list.txt", "--nranks", "2", "--in_place"])
    assert "1 padding" in proc.stdout and "7 line(s) had the label first" in proc.stdout
    names = open(os.path.join(data, "file_list.txt")).read().split()
    assert names == ["base64_rank_0", "base64_rank_1"]  # exactly nranks entries
    assert open(os.path.join(data, "file_list.txt.before_shuffle")).read().split() == [
        "data-0.txt", "data-1.txt", "data-2.txt"]
    assert os.path.exists(os.path.join(data, "data-0.txt"))  # inputs kept unless asked
    for name in names:
        rows = [ln.split("\t") for ln in open(os.path.join(data, name)).read().splitlines()]
        assert len(rows) == 11 and all(r[1].isdigit() and len(r[0]) > 20 for r in rows)
    # PLSC's reader: trainer 1 of 2 reads its own file.
    os.environ["PADDLE_TRAINER_ID"], os.environ["PADDLE_TRAINERS_NUM"] = "1", "2"
    try:
        samples = list(base64_reader.train(data, 5, size=8)())
    finally:
        del os.environ["PADDLE_TRAINER_ID"], os.environ["PADDLE_TRAINERS_NUM"]
    assert len(samples) == 11 and samples[0][0].shape == (3, 8, 8)
    # Again in place (the inputs are now the outputs), then deleting the old inputs.
    run_script(["tools/process_base64_files.py", "--data_dir", data, "--file_list",
                "file_list.txt", "--nranks", "2", "--in_place", "--seed", "5"])
    proc = run_script(["tools/process_base64_files.py", "--data_dir", data, "--file_list",
                       "file_list.txt.before_shuffle", "--nranks", "2", "--in_place",
                       "--delete_inputs"])
    assert "deleted 3 input file(s)" in proc.stdout
    assert sorted(n for n in os.listdir(data) if not n.startswith("file_list")) == names


# ---------------------------------------------------------------- HDFS through TF file systems
def test_hdfs_info_uploads_and_downloads_through_tensorflow_file_systems(tmp_path):
    import tensorflow as tf
    ins = small_entry(dataset_dir=None)
    ins.set_train_steps(2)
    ins.set_model_save_dir(str(tmp_path / "saved_model"))
    ins.set_hdfs_info("ram://hdfs", "alice,secret", "some_dir")
    assert os.environ.get("HADOOP_USER_NAME") == "alice"
    ins.train()
    assert tf.io.gfile.exists("ram://hdfs/some_dir/saved_model/checkpoint.json")

    other = small_entry(dataset_dir=None)
    other.set_checkpoint_dir(str(tmp_path / "fetched"))
    other.set_model_save_dir(str(tmp_path / "export"))
    other.set_hdfs_info("ram://hdfs", "alice,secret", fs_checkpoint_dir="some_dir/saved_model")
    export_dir = other.convert_for_prediction()
    assert os.path.exists(os.path.join(str(tmp_path / "fetched"), "checkpoint.json"))
    assert os.path.exists(os.path.join(export_dir, "saved_model.pb"))


# ---------------------------------------------------------------- PLSC's documented programs
PROGRAMS = os.path.join(HERE, "largescale_scripts", "plsc_programs")
RUNNER = os.path.join(HERE, "largescale_scripts", "run_plsc_program.py")


def _program(name, cwd, *args, settings=None, check=True):
    config = dict(SMALL, **(settings or {}))
    return run_script([RUNNER, json.dumps(config), os.path.join(PROGRAMS, name)]
                      + [str(a) for a in args], cwd=cwd, check=check, timeout=900)


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def doc_dir(tmp_path_factory):
    """A working directory as PLSC's quick start has it: ./train_data with label.txt, images and
    lfw.bin; ./data/00000000.jpg for the serving client."""
    work = tmp_path_factory.mktemp("plsc_docs")
    datagen.write_label_dataset(str(work / "train_data"), 40, 5)
    datagen.write_pair_set(str(work / "train_data" / "lfw.bin"), num_pairs=20)
    os.makedirs(str(work / "data"))
    rng = np.random.RandomState(7)
    with open(str(work / "data" / "00000000.jpg"), "wb") as f:
        f.write(datagen.jpeg_bytes(datagen.class_image(2, rng)))
    return str(work)


def test_quick_start_serving_and_client_programs_run_unchanged(doc_dir):
    import signal
    import subprocess
    import time
    from face_service import FaceService, ServingError
    from images.serving.client import ServingClient
    proc = _program("train.py", doc_dir)
    assert "label_txt data from ./train_data" in proc.stderr and "[lfw] accuracy" in proc.stderr
    assert os.path.exists(os.path.join(doc_dir, "saved_model", "0", "meta.json"))
    proc = _program("val.py", doc_dir)
    assert "testing the model of step 5" in proc.stderr and "[lfw] accuracy" in proc.stderr
    os.symlink(os.path.join(doc_dir, "saved_model", "0"), os.path.join(doc_dir, "pretrain_model"))
    _program("export_for_inference.py", doc_dir)
    export = os.path.join(doc_dir, "inference_model", "serving", "1")
    assert os.path.exists(os.path.join(export, "saved_model.pb"))

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, RUNNER, "{}", os.path.join(PROGRAMS, "serve.py"),
         os.path.join(doc_dir, "inference_model"), str(port)], cwd=doc_dir,
        env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    address = "127.0.0.1:%d" % port
    try:
        deadline = time.time() + 300
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                ServingClient(address, "face", timeout=5).status()
                break
            except ServingError:
                assert time.time() < deadline, "the server did not come up"
                time.sleep(1)
        out = _program("client.py", doc_dir, address, settings={})
        embedding = json.loads(out.stdout.strip().splitlines()[-1])
        with open(os.path.join(doc_dir, "data", "00000000.jpg"), "rb") as f:
            jpeg = f.read()
        expected = _saved_model_embeddings(export, [jpeg])[0]
        assert isinstance(embedding, list) and len(embedding) == 16
        np.testing.assert_allclose(embedding, expected, atol=1e-5)

        fc = FaceService()
        fc.connect_all_server([address])
        reply = fc.infer(json.dumps({"base64_string": [base64.b64encode(jpeg).decode()] * 3}))
        assert len(reply["instance"]) == 3
        np.testing.assert_allclose(reply["instance"][2]["embedding"], expected, atol=1e-5)
        with pytest.raises(ServingError, match="not valid base64"):
            fc.infer({"base64_string": ["not base64!"]})
        with pytest.raises(ServingError, match="could not process the images"):
            fc.encode([b"not an image"])
        fc.close()
        # TF Serving's REST API on the same server and model.
        rest = ServingClient(address, "face").predict(
            inputs={"image_bytes": [{"b64": base64.b64encode(jpeg).decode()}]})
        np.testing.assert_allclose(rest["outputs"]["embeddings"][0], expected, atol=1e-5)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    log = server.stdout.read()
    assert code == 0, log
    assert "Start serving on the CPU (no GPU visible) port = %d" % port in log
    assert "Server is going to quit" in log
    with pytest.raises(ServingError):  # the model server went down with the program
        ServingClient(address, "face", timeout=2).status()


def test_mixed_precision_hdfs_and_custom_reader_programs_run_unchanged(doc_dir, tmp_path):
    proc = _program("mixed_precision.py", str(tmp_path), settings=dict(
        dataset_dir=os.path.join(doc_dir, "train_data"), train_steps=2,
        model_save_dir=str(tmp_path / "fp16")))
    assert "training stopped at step 2" in proc.stderr
    remote = "file://" + str(tmp_path / "remote")
    _program("hdfs_upload.py", str(tmp_path), remote, settings=dict(
        dataset_dir=None, train_steps=2))
    assert os.path.exists(str(tmp_path / "remote" / "some_dir" / "saved_model" /
                              "checkpoint.json"))
    proc = _program("custom_reader.py", str(tmp_path), os.path.join(doc_dir, "train_data"),
                    str(tmp_path / "reader"), settings=dict(with_test=False))
    assert "train_reader (the program's own reader)" in proc.stderr
    assert "5 steps (5 per epoch)" in proc.stderr  # one pass of the reader: 40 images / 8


def test_plsc_server_resolves_models_and_checks_its_arguments(tmp_path):
    from plsc_serving.run import PLSCServer, resolve_model_path
    version = tmp_path / "save" / "serving" / "3"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    # A model save dir with serving/, the serving base, or one version folder.
    assert resolve_model_path(str(tmp_path / "save")) == str(tmp_path / "save" / "serving")
    assert resolve_model_path(str(tmp_path / "save" / "serving")) == str(
        tmp_path / "save" / "serving")
    single = resolve_model_path(str(version))
    assert os.path.realpath(os.path.join(single, "1")) == str(version)
    with pytest.raises(FileNotFoundError, match="convert_for_prediction"):
        PLSCServer().with_model(model_path=str(tmp_path))
    fs = PLSCServer(with_gpu=False)
    with pytest.raises(ValueError, match="with_model"):
        fs.run(port=_free_port())
    fs.with_model(model_path=str(tmp_path / "save"))
    conf = fs.show_conf()
    assert conf["base_path"] == fs.get_path() == str(tmp_path / "save" / "serving")
    assert "/FaceClassifyService/inference" in conf["routes"] and conf["with_gpu"] is False
    with pytest.raises(ValueError, match="at least one port"):
        fs.run_multi(port_list=[])
    with pytest.raises(ValueError, match="as many gpu_index_list"):
        PLSCServer().run_multi(gpu_index_list=[0], port_list=[8010, 8011])
    # PLSC's port is the HTTP port; gRPC goes to a socket of this object's own, not TCP 8500.
    cmd = fs.command(8010)
    assert "--rest_api_port=8010" in cmd and "--port=0" in cmd
    assert "--model_name=face" in cmd and "--plsc_model_name=face" in cmd
    sockets = [a.split("=", 1)[1] for a in cmd + fs.command(8011)
               if a.startswith("--grpc_socket_path=")]
    other = PLSCServer(with_gpu=False)
    other.with_model(model_path=str(tmp_path / "save"))
    sockets += [a.split("=", 1)[1] for a in other.command(8010)
                if a.startswith("--grpc_socket_path=")]
    assert len(set(sockets)) == 3 and all(len(p) < 100 for p in sockets)
    fs.stop()
    other.stop()
    assert not any(os.path.exists(os.path.dirname(p)) for p in sockets)


def test_run_multi_serves_each_port_with_grpc_on_its_own_socket(tmp_path):
    import socket
    import threading
    import time

    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    from face_service import FaceService
    from images.serving.toy_model import save_toy_model
    from plsc_serving.run import PLSCServer
    version = save_toy_model(str(tmp_path / "model"), 1, kind="embedding", seed=3)
    jpeg = datagen.jpeg_bytes(datagen.class_image(1, np.random.RandomState(0)))
    expected = _saved_model_embeddings(version, [jpeg])[0]
    ports = [_free_port(), _free_port()]
    fs = PLSCServer(with_gpu=False)
    fs.with_model(model_path=str(tmp_path / "model"))
    errors = []

    def serve():
        try:
            fs.run_multi(port_list=ports)  # returns once stop() has ended the servers
        except BaseException as e:  # noqa: BLE001  reported by the test below
            errors.append(e)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 300
        while not (len(fs.ports) == 2 and all(p.poll() is None for p in fs.p_list)
                   and _answers(ports[1])):
            assert not errors and thread.is_alive() and time.time() < deadline, errors
            time.sleep(0.5)
        fc = FaceService()
        fc.connect_all_server(["127.0.0.1:%d" % p for p in ports])
        for _ in ports:  # round-robin: each server once
            np.testing.assert_allclose(fc.encode([jpeg])[0], expected, atol=1e-5)
        fc.close()
        conf = fs.show_conf()
        assert conf["ports"] == ports and len(set(conf["grpc"])) == 2
        for target in conf["grpc"]:
            with grpc.insecure_channel(target) as channel:
                request = get_model_status_pb2.GetModelStatusRequest()
                request.model_spec.name = "face"
                reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                    request, timeout=30)
                assert reply.model_version_status[0].state == \
                    get_model_status_pb2.ModelVersionStatus.AVAILABLE
        # A port already taken is refused before a server starts, rather than the server that
        # holds it answering for the new one.
        second = PLSCServer(with_gpu=False)
        second.with_model(model_path=str(tmp_path / "model"))
        with pytest.raises(OSError, match="port %d on 0.0.0.0 is in use" % ports[0]):
            second.run(port=ports[0])
        assert second.p_list == []
    finally:
        fs.stop()
        thread.join(60)
    assert not thread.is_alive() and not errors, errors
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def _answers(port):
    import httpx
    try:
        return httpx.get("http://127.0.0.1:%d/v1/models/face" % port, timeout=2).status_code \
            == 200
    except httpx.HTTPError:
        return False
