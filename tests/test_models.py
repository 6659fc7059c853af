"""The model zoo, tested through its registry: every test is parametrised over ``list_models()``.

For each network one graph is built at its default size in training mode with the published class
count.  On it: the checkpoint's variable names and shapes (``tests/data/variables``), parameter
counts against published figures, the record's FLOPs against TF's profiler, the end points,
logits and pooled-feature shapes (feature mode shares the classifier graph's variables) and a
gradient for every trainable variable.  Light networks also run once there (finite outputs, no
zero gradient); heavy ones (slow to build) run only through the trainer, at a small size.

Every network trains two steps through ``train_image_classifiers`` (``--dataset_name=mock``, tiny
``--train_image_size``, ``--batch_size=2``; the trainer fails on a non-finite loss).  Those runs go
through ``tests/data/train_models_worker.py`` in one background process started with this module,
so TensorFlow starts once for all of them and they use the second core while this process builds
graphs.
"""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from background_runs import BackgroundRuns

import images  # noqa: F401  (compat shim)
from images.models import flops as flops_lib
from images.models import model_factory
from images.models.nets.nasnet import nasnet_utils
from images.preprocessing import preprocessing_factory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
VARIABLES = os.path.join(DATA, "variables")

# ../shared/reference/FASTNN.md: FastNN's model map.
FASTNN_MODELS = """alexnet_v2 cifarnet overfeat vgg_a vgg_16 vgg_19 inception_v1 inception_v2
    inception_v3 inception_v4 inception_resnet_v2 lenet resnet_v1_50 resnet_v1_101 resnet_v1_152
    resnet_v1_200 resnet_v2_50 resnet_v2_101 resnet_v2_152 resnet_v2_200 mobilenet_v1
    mobilenet_v1_075 mobilenet_v1_050 mobilenet_v1_025 mobilenet_v2 mobilenet_v2_140
    mobilenet_v2_035 nasnet_cifar nasnet_mobile nasnet_large pnasnet_large
    pnasnet_mobile""".split()
# PLSC's and insightface's face-recognition backbones (112x112, PLSC's 85,742 classes).
PLSC_MODELS = ["irresnet_50", "irresnet_100", "irresnet_101", "irresnet_152"]

# Exact parameter counts of the same networks published elsewhere: all variables (batch-norm
# moving statistics included), 1000 classes, no auxiliary head.  The Keras Applications models are
# ports of the TF-slim checkpoints; TF Model Garden's golden ResNet-50 count has no classifier.
EXACT_PARAMETERS = {
    "vgg_16": 138357544,              # Keras VGG16
    "vgg_19": 143667240,              # Keras VGG19
    "mobilenet_v1": 4253864,          # Keras MobileNet
    "mobilenet_v2": 3538984,          # Keras MobileNetV2
    "mobilenet_v2_140": 6156712,      # Keras MobileNetV2(alpha=1.4)
    "inception_v3": 23851784,         # Keras InceptionV3
    "inception_resnet_v2": 55873736,  # Keras InceptionResNetV2
    "nasnet_mobile": 5326716,         # Keras NASNetMobile
    "nasnet_large": 88949818,         # Keras NASNetLarge
}
EXACT_PARAMETERS_WITHOUT_CLASSIFIER = {"resnet_v1_50": 23561152}  # TF Model Garden golden

# Rounded figures (trainable parameters with the 1000/1001-way classifier, no auxiliary head):
# TF-slim's model tables and the papers.  Their counting differs slightly (some leave out the
# batch-norm scales and offsets), hence 1.5%.
APPROX_PARAMETERS = {
    "resnet_v1_50": 25.6e6, "inception_v4": 42.7e6, "mobilenet_v1_075": 2.59e6,
    "mobilenet_v1_050": 1.34e6, "mobilenet_v1_025": 0.47e6, "mobilenet_v2_035": 1.66e6,
    "nasnet_cifar": 3.3e6, "pnasnet_large": 86.1e6, "pnasnet_mobile": 5.1e6,
}

# Published forward multiply-adds at the default size (TF-slim's tables and the papers).
PUBLISHED_MULTIPLY_ADDS = {
    "mobilenet_v1": 569e6, "mobilenet_v1_075": 317e6, "mobilenet_v1_050": 150e6,
    "mobilenet_v1_025": 41e6, "mobilenet_v2": 300e6, "mobilenet_v2_140": 582e6,
    "mobilenet_v2_035": 59e6, "nasnet_mobile": 564e6, "nasnet_large": 23.8e9,
    "pnasnet_large": 25.0e9, "pnasnet_mobile": 588e6, "inception_resnet_v2": 13.2e9,
}

# slim's softmax end point: 'predictions' for the ResNets, none for the networks whose classifier
# is the convolution fc8, 'Predictions' for the others.
def _prediction_key(name):
    if name.startswith("resnet_"):
        return "predictions"
    if name.startswith(("alexnet", "overfeat", "vgg")):
        return None
    return "Predictions"


def _params(names):
    return [pytest.param(n, marks=pytest.mark.heavy)
            if model_factory.get_model_record(n).heavy else n for n in names]


ALL = _params(model_factory.list_models())


def read_expected(name):
    """``{variable: shape}`` from ``tests/data/variables/<name>.txt``."""
    expected = {}
    with open(os.path.join(VARIABLES, name + ".txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            var, shape = line.split()
            expected[var] = [int(d) for d in shape.split(",") if d]
    return expected


# ----------------------------------------------------------------------------- the registry
def test_registry_holds_fastnn_model_map():
    assert sorted(model_factory.list_models()) == sorted(FASTNN_MODELS + PLSC_MODELS)
    assert model_factory.list_models("resnet_v1_*") == [
        "resnet_v1_101", "resnet_v1_152", "resnet_v1_200", "resnet_v1_50"]
    assert model_factory.list_models("mobilenet_v2*") == [
        "mobilenet_v2", "mobilenet_v2_035", "mobilenet_v2_140"]
    assert model_factory.list_models("no_such_*") == []


def _fastnn_preprocessing(name):
    if name in ("lenet", "cifarnet"):
        return name
    if name == "nasnet_cifar":
        return "cifarnet"
    return "vgg" if name.startswith(("vgg_", "resnet_")) else "inception"


def _tf_slim_size(name):
    sizes = {"inception_v3": 299, "inception_v4": 299, "inception_resnet_v2": 299,
             "nasnet_large": 331, "pnasnet_large": 331, "cifarnet": 32, "nasnet_cifar": 32,
             "lenet": 28, "overfeat": 231}
    sizes.update({n: 112 for n in PLSC_MODELS})
    return sizes.get(name, 224)


@pytest.mark.parametrize("name", model_factory.list_models())
def test_record_fields(name):
    record = model_factory.get_model_record(name)
    assert record.name == name and record.family
    assert record.default_image_size == _tf_slim_size(name)
    assert record.network_fn.default_image_size == record.default_image_size
    assert record.preprocessing_name == _fastnn_preprocessing(name)
    assert record.preprocessing_name in preprocessing_factory.list_preprocessing()
    assert record.flops > 0
    assert record.default_num_classes in (10, 1000, 1001, 85742)
    assert record.min_image_size and record.min_image_size <= record.default_image_size
    assert record.has_aux_logits == name.startswith(
        ("inception_v3", "inception_v4", "inception_resnet_v2", "nasnet", "pnasnet"))


def test_models_doc_matches_the_registry():
    """docs/models.md is generated from the registry (tests/data/make_models_doc.py)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "make_models_doc", os.path.join(DATA, "make_models_doc.py"))
    doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(doc)
    with open(os.path.join(ROOT, "docs", "models.md"), encoding="utf-8") as f:
        assert f.read() == doc.render(), "run python tests/data/make_models_doc.py"


def test_unknown_names_and_options_are_rejected():
    with pytest.raises(ValueError, match="valid names: .*alexnet_v2"):
        model_factory.get_network_fn("resnet_v3_50", 10)
    with pytest.raises(ValueError, match="does not take global_pool; it takes: dropout_keep_prob"):
        model_factory.get_network_fn("lenet", 10, global_pool=True)
    fn = model_factory.get_network_fn("cifarnet", 10)
    with tf.Graph().as_default(), pytest.raises(ValueError, match="spatial_squeeze"):
        fn(tf.zeros([1, 32, 32, 3]), spatial_squeeze=False)


# ----------------------------------------------------------------------------- every network
def _classifier_input_depth(variables, num_classes):
    """Input width of the classifier: its weights are the non-auxiliary ``[..., d, classes]``."""
    depths = {shape[-2] for var, shape in variables.items()
              if var.endswith("weights") and shape[-1] == num_classes and not _is_aux(var)}
    assert len(depths) == 1, depths
    return depths.pop()


def _is_aux(var):
    return "AuxLogits" in var or var.startswith("aux_") or "/aux_" in var


def _count(variables, keep):
    return sum(int(np.prod(shape)) for var, shape in variables.items() if keep(var))


def _check_parameter_counts(name, variables, trainable, num_classes):
    depth = _classifier_input_depth(variables, num_classes)
    to_1000 = (1000 - num_classes) * (depth + 1)  # the same network with 1000 classes
    classifier = num_classes * (depth + 1)
    everything = _count(variables, lambda v: not _is_aux(v))
    if name in EXACT_PARAMETERS:
        assert everything + to_1000 == EXACT_PARAMETERS[name]
    if name in EXACT_PARAMETERS_WITHOUT_CLASSIFIER:
        assert everything - classifier == EXACT_PARAMETERS_WITHOUT_CLASSIFIER[name]
    if name in APPROX_PARAMETERS:
        count = _count(variables, lambda v: v in trainable and not _is_aux(v))
        assert count == pytest.approx(APPROX_PARAMETERS[name], rel=0.015)


def _loss(logits, end_points, labels, num_classes):
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    if "AuxLogits" in end_points:
        loss += 0.4 * tf.losses.sparse_softmax_cross_entropy(labels, end_points["AuxLogits"])
    return loss + tf.add_n(tf.losses.get_regularization_losses() or [tf.constant(0.0)])


@pytest.mark.parametrize("name", ALL)
def test_network(name):
    """One training-mode graph at the default size: everything but the trainer.

    Light networks also get their gradients and run once (finite logits, features and loss; a
    non-zero gradient for every variable).  Heavy ones are only built here: they train through
    the trainer below, at a small size, which also reports any variable without a gradient.
    """
    record = model_factory.get_model_record(name)
    size, classes = record.default_image_size, record.default_num_classes
    batch = 1 if record.heavy else 2
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        tf.train.get_or_create_global_step()
        images_in = tf.random.uniform([batch, size, size, 3], -1.0, 1.0)
        labels = tf.constant(np.arange(batch) % classes)
        network_fn = model_factory.get_network_fn(name, classes, weight_decay=1e-4,
                                                  is_training=True)
        logits, end_points = network_fn(images_in)
        variables = {v.op.name: v.shape.as_list() for v in tf.global_variables()
                     if v.op.name != "global_step"}
        trainable = {v.op.name for v in tf.trainable_variables()}

        # The published checkpoint's variables, names and shapes.
        expected = read_expected(name)
        assert sorted(set(expected) - set(variables)) == [], "missing checkpoint variables"
        assert sorted(set(variables) - set(expected)) == [], "variables the checkpoint lacks"
        assert {v: s for v, s in variables.items() if expected[v] != s} == {}
        _check_parameter_counts(name, variables, trainable, classes)

        # FLOPs: the record against the profiler on this graph (and published figures).
        multiply_adds = flops_lib.multiply_adds_to(logits) / batch
        assert multiply_adds == pytest.approx(record.flops, rel=0.02)
        if name in PUBLISHED_MULTIPLY_ADDS:
            assert multiply_adds == pytest.approx(PUBLISHED_MULTIPLY_ADDS[name], rel=0.03)

        assert logits.shape.as_list() == [batch, classes]
        key = _prediction_key(name)
        if key:
            assert end_points[key].shape.as_list() == [batch, classes]
        assert not ({"Predictions", "predictions"} - {key}) & set(end_points)  # slim's only
        assert ("AuxLogits" in end_points) == record.has_aux_logits
        if record.has_aux_logits:
            assert end_points["AuxLogits"].shape.as_list() == [batch, classes]

        if not record.heavy:  # heavy ones: the trainer below checks every variable's gradient
            loss = _loss(logits, end_points, labels, classes)
            weights = tf.trainable_variables()
            grads = tf.gradients(loss, weights)
            assert [v.op.name for v, g in zip(weights, grads) if g is None] == []

        # Feature mode: pooled [batch, depth], on the classifier graph's own variables
        # (reuse=True fails on any variable the classifier graph lacks).
        depth = _classifier_input_depth(variables, classes)
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            features, _ = model_factory.get_network_fn(name, 0, is_training=False)(images_in)
        assert features.shape.as_list() == [batch, depth]
        if record.heavy:
            return

        fetches = {"logits": logits, "loss": loss, "grads": grads, "features": features}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            out = sess.run(fetches)
    assert np.isfinite(out["logits"]).all() and np.isfinite(out["loss"])
    assert all(np.isfinite(g).all() for g in out["grads"])
    zero = [v.op.name for v, g in zip(weights, out["grads"]) if not np.any(g)]
    assert zero == [], "variables whose gradient is zero"
    assert np.isfinite(out["features"]).all()


@pytest.mark.parametrize("name", ["lenet", "mobilenet_v1_025"])  # MatMul, Conv2D, depthwise
def test_flop_count_equals_the_profiler(name):
    with tf.Graph().as_default():
        logits, _ = model_factory.get_network_fn(name, 10)(tf.zeros([2, 64, 64, 3]))
        direct = flops_lib.multiply_adds_to(logits)
        assert direct > 0
        assert direct == flops_lib.profiler_multiply_adds_to(logits)


# ----------------------------------------------------------------------------- options
def _run(tensors, feed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(tensors, feed)


def test_is_training_switches_batch_norm_and_dropout():
    with tf.Graph().as_default():
        x = tf.random.uniform([2, 32, 32, 3], seed=1)
        model_factory.get_network_fn("mobilenet_v1_025", 5, is_training=False)(x)
        assert tf.get_collection(tf.GraphKeys.UPDATE_OPS) == []
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            model_factory.get_network_fn("mobilenet_v1_025", 5, is_training=True)(x)
        assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == 2 * 27  # mean, variance


def test_dropout_keep_prob_is_honoured():
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        x = tf.random.uniform([4, 28, 28, 3], seed=2)
        kept, _ = model_factory.get_network_fn("lenet", 5, is_training=True,
                                               dropout_keep_prob=1.0)(x)
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            dropped, _ = model_factory.get_network_fn("lenet", 5, is_training=True,
                                                      dropout_keep_prob=0.5)(x)
            inference, _ = model_factory.get_network_fn("lenet", 5, is_training=False,
                                                        dropout_keep_prob=0.5)(x)
        a, b, c = _run([kept, dropped, inference])
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)  # keep 1.0 == no dropout
    assert not np.allclose(a, b)


def test_global_pool_and_spatial_squeeze():
    with tf.Graph().as_default():
        x = tf.zeros([1, 320, 320, 3])
        fn = model_factory.get_network_fn("mobilenet_v1_025", 7)
        windowed, _ = fn(x, spatial_squeeze=False)
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            pooled, _ = fn(x, global_pool=True)
            unsqueezed, _ = fn(x, global_pool=True, spatial_squeeze=False)
    # 320 / 32 = 10: slim's 7x7 average pool keeps its default stride of 2, leaving
    # (10 - 7) // 2 + 1 = 2 positions a side; global pooling leaves one value per class.
    assert windowed.shape.as_list() == [1, 2, 2, 7]
    assert pooled.shape.as_list() == [1, 7]
    assert unsqueezed.shape.as_list() == [1, 1, 1, 7]


def test_create_aux_logits_option():
    with tf.Graph().as_default():
        _, end_points = model_factory.get_network_fn(
            "inception_v3", 5, is_training=True, create_aux_logits=False)(
            tf.zeros([1, 128, 128, 3]))
        assert "AuxLogits" not in end_points
        assert not [v for v in tf.global_variables() if "AuxLogits" in v.op.name]


def test_nasnet_drop_path_follows_cell_depth_and_schedule():
    """Drop-path in training: whole examples dropped, the rest scaled by 1/keep, ramping up."""
    x = np.random.RandomState(4).uniform(0.5, 1.0, (64, 8, 8, 4)).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        step = tf.placeholder(tf.int64, [])
        cell = nasnet_utils.NasNetANormalCell(4, drop_path_keep_prob=0.5, total_num_cells=2,
                                              total_training_steps=10)
        cell._cell_num = 1  # what building the cell sets  # pylint: disable=protected-access
        last = cell._apply_drop_path(tf.constant(x), current_step=step)   # keep 0.5
        cell._cell_num = 0
        first = cell._apply_drop_path(tf.constant(x), current_step=step)  # keep 0.75
        with tf.Session() as sess:
            at_start = sess.run(last, {step: 0})
            at_end, first_at_end = sess.run([last, first], {step: 10})
    np.testing.assert_array_equal(at_start, x)  # the schedule starts with nothing dropped
    for out, keep, (low, high) in ((at_end, 0.5, (16, 48)), (first_at_end, 0.75, (2, 30))):
        per_example = out.reshape(64, -1)
        dropped = np.all(per_example == 0, axis=1)
        assert low < dropped.sum() < high  # about 64 * (1 - keep), four deviations wide
        np.testing.assert_allclose(per_example[~dropped], x.reshape(64, -1)[~dropped] / keep,
                                   rtol=1e-6)


# ----------------------------------------------------------------------------- the trainer
def _trainer_size(name):
    """The smallest input the network takes in training (auxiliary heads included)."""
    return model_factory.get_model_record(name).min_image_size


@pytest.fixture(scope="module", autouse=True)
def trainer_runs(request, tmp_path_factory):
    """Starts the trainer worker with the module when any trainer test is selected."""
    names = [item.callspec.params["name"] for item in request.session.items
             if getattr(item, "originalname", None) == "test_trains_through_trainer"
             and item.module is request.module]
    if not names:
        yield None
        return
    workdir = str(tmp_path_factory.mktemp("zoo_trainer"))
    # Two workers, each with every other network: once the module's other tests are done, the
    # trainer runs are all that is left, and one process would leave a core idle.
    runs = BackgroundRuns(os.path.join(DATA, "train_models_worker.py"),
                          [(n, "%s:%d" % (n, _trainer_size(n))) for n in names], workdir,
                          key_of=lambda record: record["name"],
                          extra_args=[os.path.join(workdir, "train")])
    yield runs
    runs.stop()


@pytest.mark.parametrize("name", ALL)
def test_trains_through_trainer(name, trainer_runs):
    result = trainer_runs.result(name)
    assert result["returncode"] == 0, result.get("error") or "\n".join(result["log"])
    assert result["logged_steps"] == [1, 2], result["log"]  # --log_loss_every_n_iters=1
    assert all(np.isfinite(result["losses"]))
    assert result["gradient_warnings"] == []
