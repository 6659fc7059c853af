"""Mixed precision (issues 5 and 11): the policy, master weights, loss scaling, 16-bit
resnet_v1_50 runs, the float32 fallback of ops without a 16-bit kernel, and every registry
network trained a step in float16 and bfloat16."""
import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from background_runs import BackgroundRuns
from conftest import ROOT, run_script

import images  # noqa: F401  (compat shim)
from images import training
from images.models import model_factory
from images.utils import losses, precision


# ----------------------------------------------------------------------------- policy
@pytest.mark.parametrize("kwargs, dtype, rewrite", [
    (dict(gpu_available=False, native_bf16=False), tf.float32, False),       # this machine
    (dict(gpu_available=False, native_bf16=True, onednn=True), tf.bfloat16, True),   # AMX
    (dict(gpu_available=False, native_bf16=True, onednn=False), tf.bfloat16, False),
    (dict(gpu_available=True, native_bf16=True), tf.float16, False),         # GPU default
    (dict(use_bf16=True, gpu_available=True), tf.bfloat16, False),
    (dict(use_bf16=True, native_bf16=False, onednn=False), tf.bfloat16, False),
    (dict(use_bf16=True, native_bf16=False, onednn=True), tf.bfloat16, True),
    (dict(use_fp16=True, native_bf16=True, onednn=True), tf.float16, False),
    (dict(use_fp16=False, gpu_available=True), tf.float32, False),
    (dict(use_bf16=False, native_bf16=True, onednn=True), tf.float32, False),
])
def test_policy_defaults_follow_the_machine(kwargs, dtype, rewrite):
    policy = precision.resolve_policy(**kwargs)
    assert (policy.dtype, policy.graph_rewrite) == (dtype, rewrite)
    assert policy.build_dtype == (tf.float32 if rewrite else dtype)
    assert policy.reason
    config = policy.configure_session(tf.ConfigProto())
    assert config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == (
        1 if rewrite else 0)


def test_policy_refuses_both_16_bit_types():
    with pytest.raises(ValueError, match="exclude each other"):
        precision.resolve_policy(use_fp16=True, use_bf16=True)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n\n")
    assert precision.cpu_has_native_bf16(precision.cpu_flags(str(info)))
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert not precision.cpu_has_native_bf16(precision.cpu_flags(str(info)))
    assert precision.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize("text, mode, value", [
    ("1.0", "none", 1.0), ("128", "static", 128.0), (" Dynamic ", "dynamic", 2.0 ** 15)])
def test_loss_scale_parsing(text, mode, value):
    cfg = precision.LossScaleConfig.parse(text)
    assert (cfg.mode, cfg.value) == (mode, value)


@pytest.mark.parametrize("text, message", [("0.5", ">= 1"), ("auto", "number >= 1 or 'dynamic'")])
def test_bad_loss_scale_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        precision.LossScaleConfig.parse(text)


# ----------------------------------------------------------------------------- loss scaling
def _quadratic(factor):
    """A 2x3 weight, momentum optimizer, and a gradient multiplied by ``factor`` (inf: overflow)."""
    w = tf.get_variable("w", initializer=tf.constant([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]]))

    @tf.custom_gradient
    def gate(x):
        return tf.identity(x), lambda dy: dy * factor
    loss = tf.reduce_sum(tf.square(gate(w)))
    return w, loss


def test_static_scale_gives_true_gradients_and_clipping_sees_them(graph):
    w, loss = _quadratic(1.0)
    inner = tf.train.GradientDescentOptimizer(1.0)
    opt = precision.GradientPolicyOptimizer(inner, precision.LossScaleConfig.parse("1024"),
                                            max_gradient_norm=1.0)
    (grad, _), = opt.compute_gradients(loss, var_list=[w])
    step = opt.apply_gradients([(grad, w)])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        before, g = sess.run([w.read_value(), grad])
        np.testing.assert_allclose(g, 2 * before, rtol=1e-6)  # d/dw sum(w^2), unscaled
        sess.run(step)
        after = sess.run(w)
    # The update is the gradient clipped to norm 1 (the scale must not inflate the norm).
    np.testing.assert_allclose(before - after, 2 * before / np.linalg.norm(2 * before), rtol=1e-5)


def test_dynamic_scale_skips_halves_and_grows(graph):
    factor = tf.placeholder(tf.float32, [])
    w, loss = _quadratic(factor)
    inner = tf.train.MomentumOptimizer(0.01, 0.9)
    opt = precision.GradientPolicyOptimizer(
        inner, precision.LossScaleConfig("dynamic", 256.0, growth_steps=2, initial_dynamic=256.0))
    global_step = tf.train.get_or_create_global_step()
    train_op = training.build_train_op(opt, loss, global_step)
    slot = inner.get_slot(w, "momentum")
    scale = opt.loss_scale()
    assert {v.op.name for v in opt.variables()} >= {"loss_scale/scale", "loss_scale/good_steps"}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op, {factor: 1.0})
        w1, m1 = sess.run([w, slot])
        assert sess.run(scale) == 256.0
        sess.run(train_op, {factor: np.inf})                      # overflow: skipped
        np.testing.assert_array_equal(sess.run(w), w1)
        np.testing.assert_array_equal(sess.run(slot), m1)
        assert sess.run(scale) == 128.0 and sess.run(global_step) == 2
        sess.run(train_op, {factor: np.nan})                      # NaN too
        assert sess.run(scale) == 64.0
        sess.run(train_op, {factor: 1.0})
        assert sess.run(scale) == 64.0
        sess.run(train_op, {factor: 1.0})                         # 2 clean steps: doubles
        assert sess.run(scale) == 128.0 and sess.run(global_step) == 5
        assert not np.array_equal(sess.run(w), w1)


def test_dynamic_scale_never_grows_past_the_ceiling(graph):
    w, loss = _quadratic(1.0)
    opt = precision.GradientPolicyOptimizer(
        tf.train.GradientDescentOptimizer(1e-3),
        precision.LossScaleConfig("dynamic", 2.0 ** 23, growth_steps=1, initial_dynamic=2.0 ** 23))
    train_op = opt.minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(3):
            sess.run(train_op)
        assert sess.run(opt.loss_scale()) == precision.MAX_DYNAMIC_SCALE


# ----------------------------------------------------------------------------- resnet_v1_50
SIZE, BATCH, STEPS = 32, 4, 3
# Training-mode batch norm over 4 examples of 1x1 maps makes this resnet_v1_50 badly conditioned:
# perturbing its input by 0.1% moves the float32 loss by 1-4%, and its gradients reach 2e3 at
# initialisation (so a float16 loss scale above ~16 overflows).  So the 16-bit network is compared
# with float32 arithmetic on the same master weights: tightly in inference mode on the initial
# weights (moving statistics: well conditioned there, though not once training moves the weights
# away from the statistics), and loosely in training mode before every step.
TOLERANCE = {tf.float16: (0.01, 0.15), tf.bfloat16: (0.03, 0.35)}  # (inference, training)


def _resnet_run(compute_dtype, loss_scale):
    """Per step, the cross-entropies of the 16-bit and float32 networks on the same weights."""
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        x = tf.constant(np.random.RandomState(0).uniform(-1, 1, (BATCH, SIZE, SIZE, 3)),
                        tf.float32)
        y = tf.constant(np.arange(BATCH) % 10)

        def net(is_training):
            return model_factory.get_network_fn("resnet_v1_50", 10, weight_decay=1e-4,
                                                is_training=is_training)
        logits, _, _ = training.build_network(net(True), x, compute_dtype)
        loss, xent = losses.classification_loss(logits, y, 10)
        opt = precision.GradientPolicyOptimizer(tf.train.MomentumOptimizer(1e-3, 0.9),
                                                loss_scale)
        train_op = training.build_train_op(opt, loss, tf.train.get_or_create_global_step())
        ops = {(op.type, tuple(op.get_attr(a).name for a in ("T", "U") if a in op.node_def.attr))
               for op in graph.get_operations()
               if op.type in ("Conv2D", "FusedBatchNormV3", "FusedBatchNormGradV3")}
        info = {"logits": logits.dtype, "ops": ops,
                "variables": {v.op.name: v.dtype.base_dtype for v in tf.global_variables()}}
        fetch, initial = {"train": xent}, {}
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):  # the same variables
            for key, is_training, dtype in (("train32", True, tf.float32),
                                            ("infer", False, compute_dtype),
                                            ("infer32", False, tf.float32)):
                other, _, _ = training.build_network(net(is_training), x, dtype)
                (fetch if is_training else initial)[key] = tf.losses.sparse_softmax_cross_entropy(
                    y, other, loss_collection=None)
        weights = tf.model_variables()
        # Grappler adds nothing these checks need and costs seconds on a graph this size.
        config = tf.ConfigProto()
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            before = sess.run(weights)
            info.update(sess.run(initial))
            steps = []
            for _ in range(STEPS):
                steps.append(sess.run(fetch))  # before the update, so on the same weights
                sess.run(train_op)
            info.update({k: np.array([s[k] for s in steps]) for k in fetch})
            after = sess.run(weights)
            info["moved"] = sum(not np.array_equal(a, b) for a, b in zip(before, after))
            info["finite"] = all(np.isfinite(v).all() for v in sess.run(tf.global_variables()))
    return info


@pytest.mark.heavy
@pytest.mark.parametrize("dtype, loss_scale", [
    (tf.float16, precision.LossScaleConfig("dynamic", 16.0, 2000, 16.0)),
    (tf.bfloat16, precision.LossScaleConfig()),  # 8 bits of mantissa: no scaling needed
])
def test_16_bit_resnet_v1_50_stays_finite_and_close_to_float32(dtype, loss_scale):
    run = _resnet_run(dtype, loss_scale)
    # float32 master weights and batch-norm statistics; the network computes in dtype.
    assert set(run["variables"].values()) <= {tf.float32, tf.int64}
    assert run["ops"] == {("Conv2D", (dtype.name,)),
                          ("FusedBatchNormV3", (dtype.name, "float32")),
                          ("FusedBatchNormGradV3", (dtype.name, "float32"))}
    assert run["logits"] == tf.float32
    assert run["finite"] and np.isfinite(run["train"]).all()
    assert run["moved"] > 100  # the steps were applied: weights and statistics trained
    infer_tol, train_tol = TOLERANCE[dtype]
    assert run["infer"] == pytest.approx(run["infer32"], rel=infer_tol)
    np.testing.assert_allclose(run["train"], run["train32"], rtol=train_tol)


@pytest.mark.heavy
def test_bf16_graph_rewrite_computes_in_bfloat16_and_matches_float32():
    proc = run_script([os.path.join(ROOT, "tests", "hvd_scripts", "bf16_rewrite.py"),
                       str(SIZE), str(BATCH), "2"], env={"TF_ENABLE_ONEDNN_OPTS": "1"})
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["graph_rewrite"] and result["build_dtype"] == "float32"
    assert result["float32_bf16_convs"] == 0
    assert result["rewrite_bf16_convs"] >= 53 * 2  # every convolution, forward and backward
    assert np.isfinite(result["rewrite"]).all()
    # The first step runs on the same initial weights in both sessions.
    infer_tol, train_tol = TOLERANCE[tf.bfloat16]
    assert result["rewrite_infer"] == pytest.approx(result["float32_infer"], rel=infer_tol)
    assert result["rewrite"][0] == pytest.approx(result["float32"][0], rel=train_tol)


# ----------------------------------------------------------------------------- the trainer
def test_trainer_fp16_defaults_to_dynamic_loss_scaling(tmp_path):
    proc = run_script([os.path.join(ROOT, "train_image_classifiers.py"), "--model_name=lenet",
                       "--dataset_name=mock", "--num_classes=10", "--batch_size=4",
                       "--stop_at_step=2", "--use_fp16", "--loss_scale_initial=128",
                       "--train_dir=" + str(tmp_path)])
    assert "float16 (float32 master weights cast on read)" in proc.stderr
    assert "loss scale: dynamic" in proc.stderr
    import tensorflow.compat.v1 as tf1
    reader = tf1.train.load_checkpoint(str(tmp_path))
    assert reader.get_variable_to_dtype_map()["LeNet/conv1/weights"] == tf1.float32
    assert reader.get_tensor("loss_scale/scale") in (128.0, 64.0, 32.0)  # 2 steps, no growth


# ----------------------------------------------------------------------------- kernel fallback
def test_op_without_a_16_bit_kernel_runs_in_float32_between_casts(graph):
    """LRN has float32 and float16 CPU kernels, no bfloat16 one (DESIGN.md, trap 9)."""
    x = tf.constant(np.random.RandomState(0).uniform(0, 1, (2, 4, 4, 8)), tf.float32)
    with precision.float32_fallback():
        out = tf.nn.lrn(tf.cast(x, tf.bfloat16), 2, bias=1.0, alpha=0.1, beta=0.75)
        half = tf.nn.lrn(tf.cast(x, tf.float16), 2, bias=1.0, alpha=0.1, beta=0.75)
        conv = tf.nn.conv2d(tf.cast(x, tf.bfloat16), tf.ones([1, 1, 8, 8], tf.bfloat16), 1,
                            "SAME")
    assert out.dtype == tf.bfloat16 and half.dtype == tf.float16  # callers see their type
    lrn_types = sorted(op.get_attr("T").name for op in graph.get_operations()
                       if op.type == "LRN")
    assert lrn_types == ["float16", "float32"]  # float16 has a kernel: kept
    assert conv.op.type == "Conv2D" and conv.op.get_attr("T") == tf.bfloat16  # untouched
    grad, = tf.gradients(tf.reduce_sum(tf.cast(out, tf.float32)), x)
    assert {op.get_attr("T").name for op in graph.get_operations()
            if op.type == "LRNGrad"} == {"float32"}
    reference = tf.nn.lrn(x, 2, bias=1.0, alpha=0.1, beta=0.75)
    with tf.Session() as sess:
        got, want, g = sess.run([tf.cast(out, tf.float32), reference, grad])
    np.testing.assert_allclose(got, want, rtol=1e-2)  # bfloat16's 8-bit mantissa
    assert np.isfinite(g).all()


def test_without_the_fallback_the_bfloat16_op_is_kept(graph):
    out = tf.nn.lrn(tf.zeros([1, 2, 2, 4], tf.bfloat16))
    assert out.op.get_attr("T") == tf.bfloat16
    with pytest.raises(tf.errors.InvalidArgumentError, match="No OpKernel.*LRN"):
        with tf.Session() as sess:
            sess.run(out)


def test_trainer_cifarnet_bf16_trains(tmp_path):
    """The command of issue 11: `--model_name=cifarnet --use_bf16` died on LRN."""
    proc = run_script([os.path.join(ROOT, "train_image_classifiers.py"), "--model_name=cifarnet",
                       "--dataset_name=mock", "--num_classes=10", "--batch_size=4",
                       "--stop_at_step=2", "--use_bf16", "--train_dir=" + str(tmp_path)])
    assert "bfloat16" in proc.stderr
    reader = tf.train.load_checkpoint(str(tmp_path))
    assert reader.get_tensor("global_step") == 2
    assert reader.get_variable_to_dtype_map()["CifarNet/conv1/weights"] == tf.float32


# ----------------------------------------------------------------------------- every network
# Each registry network trains a step in float16 (dynamic loss scaling) and bfloat16 through
# tests/data/precision_sweep_worker.py (float32: tests/test_models.py trains every network
# through the trainer).  Inputs are the smallest each network takes; options shrink the
# networks whose classifier is a fixed-size VALID convolution where slim offers them.
SWEEP_OPTIONS = {
    "alexnet_v2": (195, 1, {"global_pool": True}),   # fc6: a VALID 5x5 on pool5
    "overfeat": (231, 1, {}),                        # fc6: a VALID 6x6, nothing smaller
    "inception_v1": (32, 2, {"global_pool": True}),
    "vgg_a": (32, 2, {"fc_conv_padding": "SAME", "global_pool": True}),
    "vgg_16": (32, 2, {"fc_conv_padding": "SAME", "global_pool": True}),
    "vgg_19": (32, 2, {"fc_conv_padding": "SAME", "global_pool": True}),
}
# MobileNet v2's and the ResNets' gradients near the input reach 5e4 at 32x32 with two examples
# (batch norm over 1x1 last maps): beyond float16 even unscaled.  At 64x64 MobileNet v2's stay
# below 500.
SWEEP_OPTIONS.update({name: (64, 2, {}) for name in model_factory.list_models()
                      if name.startswith(("mobilenet_v2", "resnet_"))})
SWEEP_DTYPES = ("float16", "bfloat16")


def _sweep_spec(name, dtype):
    size, batch, options = SWEEP_OPTIONS.get(
        name, (model_factory.get_model_record(name).min_image_size, 2, {}))
    spec = "%s:%s:%d:%d" % (name, dtype, size, batch)
    return spec + (":" + json.dumps(options, separators=(",", ":")) if options else "")


SWEEP = [pytest.param(name, dtype, marks=[pytest.mark.heavy]
                      if model_factory.get_model_record(name).heavy else [])
         for name in model_factory.list_models() for dtype in SWEEP_DTYPES]


@pytest.fixture(scope="module")
def sweep_runs(request, tmp_path_factory):
    """Starts the sweep workers with the first sweep test, for every selected sweep test."""
    keys = [(item.callspec.params["name"], item.callspec.params["dtype"])
            for item in request.session.items
            if getattr(item, "originalname", None) == "test_every_network_trains_in_16_bit"
            and item.module is request.module]
    runs = BackgroundRuns(os.path.join(ROOT, "tests", "data", "precision_sweep_worker.py"),
                          [(key, _sweep_spec(*key)) for key in keys],
                          str(tmp_path_factory.mktemp("precision_sweep")),
                          key_of=lambda record: (record["name"], record["dtype"]))
    yield runs
    runs.stop()


@pytest.mark.parametrize("name, dtype", SWEEP)
def test_every_network_trains_in_16_bit(name, dtype, sweep_runs):
    result = sweep_runs.result((name, dtype))
    assert "error" not in result, result["error"]
    assert result["variable_dtypes"] == ["float32", "int64"]  # float32 master weights
    assert result["logits_dtype"] == "float32"
    assert result["finite"] and np.isfinite(result["losses"]).all()
    assert result["moved"] > 0, "no step was applied in %d tries" % len(result["losses"])
    if dtype == "float16":
        assert 1.0 <= result["loss_scale"] <= 8.0  # dynamic: never grown in so few steps
    fallbacks = result["float32_fallbacks"]
    if name == "cifarnet" and dtype == "bfloat16":
        assert fallbacks == {"LRN,bfloat16": 2}  # norm1 and norm2
    else:
        assert fallbacks == {}  # every other op of the zoo has a 16-bit CPU kernel
