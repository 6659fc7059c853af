"""images.models.nets builds what TF-slim's ``nets`` builds: outputs, end points, feature mode,
``*_base`` end points, ``reuse`` and the arg scopes' arguments.

Where ``tf_slim.nets`` (tf-slim 1.1.0) has a network, it is the reference: the same weights
must give the same logits, end points and ``Predictions`` op names.  Elsewhere the expected
names and shapes are slim's, as its source builds them.  Small inputs throughout.
"""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
import tf_slim as slim
from tf_slim.nets import alexnet as ref_alexnet
from tf_slim.nets import inception_v1 as ref_v1
from tf_slim.nets import inception_v2 as ref_v2
from tf_slim.nets import inception_v3 as ref_v3
from tf_slim.nets import overfeat as ref_overfeat
from tf_slim.nets import resnet_v1 as ref_resnet_v1
from tf_slim.nets import resnet_v2 as ref_resnet_v2
from tf_slim.nets import vgg as ref_vgg

import images  # noqa: F401  (compat shim)
from images.models import model_factory
from images.models.nets import (alexnet, cifarnet, inception, inception_utils, lenet,
                                mobilenet_v1, overfeat, resnet_utils, resnet_v1, resnet_v2, vgg)
from images.models.nets.mobilenet import mobilenet_v2
from images.models.nets.nasnet import nasnet, pnasnet


def _variables():
    return {v.op.name: v for v in tf.global_variables()}


def _build(fn, shape, arg_scope=None, **kwargs):
    """Builds ``fn`` on zeros of ``shape`` in the current graph; returns (net, end_points)."""
    images_in = tf.placeholder_with_default(np.zeros(shape, np.float32), shape)
    with slim.arg_scope(arg_scope or {}):
        return fn(images_in, **kwargs)


# ----------------------------------------------------------------------------- against tf_slim
# (ours, reference, arg scope, input side, extra end points slim's current version adds)
REFERENCES = {
    "alexnet_v2": (alexnet.alexnet_v2, ref_alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope,
                   224, set()),
    "overfeat": (overfeat.overfeat, ref_overfeat.overfeat, overfeat.overfeat_arg_scope, 231,
                 set()),
    "vgg_a": (vgg.vgg_a, ref_vgg.vgg_a, vgg.vgg_arg_scope, 224, set()),
    "inception_v1": (inception.inception_v1, ref_v1.inception_v1,
                     inception.inception_v1_arg_scope, 224, {"AvgPool_0a_7x7"}),
    "inception_v2": (inception.inception_v2, ref_v2.inception_v2,
                     inception.inception_v2_arg_scope, 96, {"AvgPool_1a", "PreLogits"}),
    "inception_v3": (inception.inception_v3, ref_v3.inception_v3,
                     inception.inception_v3_arg_scope, 107, {"AvgPool_1a"}),
    "resnet_v1_50": (resnet_v1.resnet_v1_50, ref_resnet_v1.resnet_v1_50,
                     resnet_v1.resnet_arg_scope, 64,
                     {"global_pool", "resnet_v1_50/spatial_squeeze"}),
    "resnet_v2_50": (resnet_v2.resnet_v2_50, ref_resnet_v2.resnet_v2_50,
                     resnet_v2.resnet_arg_scope, 64,
                     {"global_pool", "resnet_v2_50/spatial_squeeze"}),
}


def _reference_run(name):
    ours, reference, arg_scope, size, added = REFERENCES[name]
    x = np.random.RandomState(0).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    results = {}
    values = None
    for which, fn in (("reference", reference), ("ours", ours)):
        with tf.Graph().as_default():
            tf.set_random_seed(0)
            net, end_points = _build(fn, x.shape, arg_scope(), num_classes=7,
                                     is_training=False)
            variables = _variables()
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                if values is None:
                    values = sess.run(variables)
                else:
                    assert sorted(values) == sorted(variables)
                    for var_name, var in variables.items():
                        var.load(values[var_name], sess)
                feed = {tf.get_default_graph().get_tensor_by_name("PlaceholderWithDefault:0"): x}
                out = sess.run(tf.reshape(net, [1, 7]), feed)
            prediction = end_points.get("Predictions", end_points.get("predictions"))
            results[which] = (out, {k: v.shape.as_list() for k, v in end_points.items()},
                              None if prediction is None else prediction.op.name)
    return results, added


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_same_weights_same_outputs_as_tf_slim(name):
    results, added = _reference_run(name)
    ours, reference = results["ours"], results["reference"]
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-4, atol=1e-5)
    shared = set(reference[1]) & set(ours[1])
    assert set(ours[1]) - shared == added
    # tf-slim 1.1.0's ResNets keep the unsqueezed logits' shape for 'predictions'.
    assert set(reference[1]) - shared == set()
    assert {k: ours[1][k] for k in shared if k != "predictions"} == {
        k: reference[1][k] for k in shared if k != "predictions"}
    assert ours[2] == reference[2]


# ----------------------------------------------------------------------------- slim's names
# Networks tf-slim 1.1.0 lacks: slim's op name of the softmax and a sample of end points.
def test_prediction_op_names_and_end_points():
    cases = [
        (cifarnet.cifarnet, [2, 32, 32, 3], {}, "CifarNet/Predictions/Reshape_1",
         {"conv1": [2, 32, 32, 64], "Flatten": [2, 4096], "fc4": [2, 192], "Logits": [2, 7]}),
        (lenet.lenet, [2, 28, 28, 1], {}, "Predictions/Reshape_1",
         {"pool2": [2, 7, 7, 64], "fc3": [2, 1024], "dropout3": [2, 1024]}),
        (mobilenet_v1.mobilenet_v1_025, [2, 64, 64, 3], {}, "MobilenetV1/Predictions/Reshape_1",
         {"Conv2d_0": [2, 32, 32, 8], "Conv2d_13_pointwise": [2, 2, 2, 256],
          "AvgPool_1a": [2, 1, 1, 256], "Logits": [2, 7]}),
        (mobilenet_v2.mobilenet_v2_035, [2, 64, 64, 3], {"is_training": True},
         "MobilenetV2/Predictions/Reshape_1",
         {"layer_1": [2, 32, 32, 16], "layer_18/output": [2, 2, 2, 112],
          "layer_18/expansion_output": [2, 2, 2, 336], "layer_19": [2, 2, 2, 1280],
          "global_pool": [2, 1, 1, 1280], "Logits": [2, 7]}),
    ]
    for fn, shape, kwargs, prediction, expected in cases:
        with tf.Graph().as_default():
            logits, end_points = _build(fn, shape, num_classes=7, **kwargs)
            assert end_points["Predictions"].op.name == prediction
            assert logits.shape.as_list() == [2, 7]
            assert {k: end_points[k].shape.as_list() for k in expected} == expected


@pytest.mark.heavy
def test_large_networks_end_points_and_prediction_names():
    cases = [
        (inception.inception_v4, [1, 107, 107, 3], "InceptionV4/Logits/Predictions",
         {"Mixed_6h": [1, 5, 5, 1024], "AuxLogits": [1, 7], "global_pool": [1, 1, 1, 1536],
          "PreLogitsFlatten": [1, 1536]}),
        (inception.inception_resnet_v2, [1, 107, 107, 3],
         "InceptionResnetV2/Logits/Predictions",
         {"PreAuxLogits": [1, 5, 5, 1088], "Conv2d_7b_1x1": [1, 2, 2, 1536],
          "AuxLogits": [1, 7], "global_pool": [1, 1, 1, 1536]}),
        (pnasnet.build_pnasnet_mobile, [1, 75, 75, 3], "final_layer/predictions",
         {"Stem": [1, 10, 10, 135], "Cell_8": [1, 3, 3, 1080], "AuxLogits": [1, 7],
          "global_pool": [1, 1080]}),
    ]
    for fn, shape, prediction, expected in cases:
        with tf.Graph().as_default():
            tf.train.get_or_create_global_step()
            logits, end_points = _build(fn, shape, num_classes=7)
            assert end_points["Predictions"].op.name == prediction
            assert logits.shape.as_list() == [shape[0], 7]
            assert {k: end_points[k].shape.as_list() for k in expected} == expected


def test_nasnet_builders_default_to_training_with_the_aux_head():
    """slim's NASNet builders default to is_training=True: AuxLogits with default arguments."""
    with tf.Graph().as_default():
        tf.train.get_or_create_global_step()
        logits, end_points = _build(nasnet.build_nasnet_mobile, [1, 75, 75, 3],
                                    num_classes=7, final_endpoint=None)
        assert end_points["AuxLogits"].shape.as_list() == [1, 7]
        assert end_points["Predictions"].op.name == "final_layer/predictions"
        assert {"Stem", "Cell_0", "Reduction_Cell_0", "Reduction_Cell_1", "Cell_11",
                "global_pool", "Logits"} <= set(end_points)
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            net, end_points = _build(nasnet.build_nasnet_mobile, [1, 75, 75, 3], num_classes=7,
                                     is_training=False, final_endpoint="Cell_3")
        assert net is end_points["Cell_3"] and "AuxLogits" not in end_points


# ----------------------------------------------------------------------------- feature mode
# network -> (shape, kwargs, slim's pre-logits end point, its shape)
FEATURES = {
    "alexnet_v2": (alexnet.alexnet_v2, [1, 224, 224, 3], {}, "alexnet_v2/fc7", [1, 1, 1, 4096]),
    "vgg_16": (vgg.vgg_16, [1, 32, 32, 3], {"fc_conv_padding": "SAME", "global_pool": True},
               "global_pool", [1, 1, 1, 4096]),
    "inception_v1": (inception.inception_v1, [1, 224, 224, 3], {}, "AvgPool_0a_7x7",
                     [1, 1, 1, 1024]),
    "inception_v2": (inception.inception_v2, [1, 64, 64, 3], {}, "AvgPool_1a", [1, 1, 1, 1024]),
    "inception_v3": (inception.inception_v3, [1, 75, 75, 3], {}, "AvgPool_1a",
                     [1, 1, 1, 2048]),
    "resnet_v1_50": (resnet_v1.resnet_v1_50, [1, 64, 64, 3], {}, "global_pool",
                     [1, 1, 1, 2048]),
    "mobilenet_v1": (mobilenet_v1.mobilenet_v1, [1, 64, 64, 3], {}, "AvgPool_1a",
                     [1, 1, 1, 1024]),
    "mobilenet_v2": (mobilenet_v2.mobilenet, [1, 64, 64, 3], {}, "global_pool",
                     [1, 1, 1, 1280]),
    "cifarnet": (cifarnet.cifarnet, [1, 32, 32, 3], {}, "fc4", [1, 192]),
    "lenet": (lenet.lenet, [1, 28, 28, 1], {}, "fc3", [1, 1024]),
}


@pytest.mark.parametrize("name", sorted(FEATURES))
@pytest.mark.parametrize("num_classes", [0, None])
def test_feature_mode_returns_slims_pre_logits_end_point(name, num_classes):
    fn, shape, kwargs, end_point, features_shape = FEATURES[name]
    arg_scope = model_factory.get_model_record(name).arg_scope_fn()
    with tf.Graph().as_default():
        net, end_points = _build(fn, shape, arg_scope, num_classes=num_classes, **kwargs)
        assert net is end_points[end_point]
        assert net.shape.as_list() == features_shape
        assert not {"Logits", "Predictions", "predictions", "AuxLogits"} & set(end_points)
        assert not [v for v in _variables() if v.endswith(("fc8/weights", "logits/weights",
                                                           "Conv2d_1c_1x1/weights",
                                                           "Conv2d_0c_1x1/weights"))]
        if name != "lenet":
            # The registry's feature mode (trainer, large-scale backbone): [batch, depth].
            with tf.variable_scope(tf.get_variable_scope(), reuse=True):
                features, registry_end_points = model_factory.get_network_fn(
                    name, num_classes, **kwargs)(tf.zeros(shape[:3] + [3]))
            assert features.shape.as_list() == [1, features_shape[-1]]
            # Collected end points carry the (second, uniquified) name scope: same entries.
            assert len(registry_end_points) == len(end_points)


# ----------------------------------------------------------------------------- *_base
def _final_endpoint_sweep(base_fn, shape, names, **kwargs):
    """Builds ``base_fn`` up to each of ``names``: it stops there, with the end points so far."""
    for i, end_point in enumerate(names):
        with tf.Graph().as_default():
            net, end_points = _build(base_fn, shape, final_endpoint=end_point, **kwargs)
            assert net is end_points[end_point]
            assert list(end_points) == names[:i + 1], end_point
    with tf.Graph().as_default(), pytest.raises(ValueError, match="Unknown final endpoint"):
        _build(base_fn, shape, final_endpoint="Mixed_9z", **kwargs)


V1_END_POINTS = ["Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3",
                 "MaxPool_3a_3x3", "Mixed_3b", "Mixed_3c", "MaxPool_4a_3x3", "Mixed_4b",
                 "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "MaxPool_5a_2x2", "Mixed_5b",
                 "Mixed_5c"]
V2_END_POINTS = ["Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3",
                 "MaxPool_3a_3x3", "Mixed_3b", "Mixed_3c", "Mixed_4a", "Mixed_4b", "Mixed_4c",
                 "Mixed_4d", "Mixed_4e", "Mixed_5a", "Mixed_5b", "Mixed_5c"]


def test_inception_v1_base_each_final_endpoint():
    _final_endpoint_sweep(inception.inception_v1_base, [1, 64, 64, 3], V1_END_POINTS)
    with tf.Graph().as_default():  # without the root block the modules start at the input
        net, end_points = _build(inception.inception_v1_base, [1, 28, 28, 192],
                                 include_root_block=False)
        assert list(end_points) == V1_END_POINTS[5:] and net.shape.as_list() == [1, 7, 7, 1024]


def test_inception_v2_base_each_final_endpoint():
    _final_endpoint_sweep(inception.inception_v2_base, [1, 64, 64, 3], V2_END_POINTS,
                          depth_multiplier=0.25)
    with tf.Graph().as_default():
        net, end_points = _build(inception.inception_v2_base, [1, 64, 64, 3],
                                 use_separable_conv=False)
        assert "InceptionV2/Conv2d_1a_7x7/weights" in _variables()
        assert end_points["Mixed_5c"].shape.as_list() == [1, 2, 2, 1024]
    with tf.Graph().as_default(), pytest.raises(ValueError, match="only supports NHWC"):
        _build(inception.inception_v2_base, [1, 3, 64, 64], data_format="NCHW")
    with tf.Graph().as_default(), pytest.raises(ValueError, match="not greater than zero"):
        _build(inception.inception_v2_base, [1, 64, 64, 3], depth_multiplier=0)


def test_mobilenet_v1_base_each_final_endpoint_and_output_stride():
    names = ["Conv2d_0"] + ["Conv2d_%d_%s" % (i, kind) for i in range(1, 14)
                            for kind in ("depthwise", "pointwise")]
    _final_endpoint_sweep(mobilenet_v1.mobilenet_v1_base, [1, 32, 32, 3], names,
                          depth_multiplier=0.25)
    with tf.Graph().as_default():
        net, _ = _build(mobilenet_v1.mobilenet_v1_base, [1, 64, 64, 3], output_stride=8,
                        depth_multiplier=0.25)
        assert net.shape.as_list() == [1, 8, 8, 256]
        net, _ = _build(mobilenet_v1.mobilenet_v1_base, [1, 64, 64, 3],
                        use_explicit_padding=True, depth_multiplier=0.25, scope="padded")
        assert net.shape.as_list() == [1, 2, 2, 256]


@pytest.mark.heavy
def test_large_bases_final_endpoints():
    """A sample of end points of the large trunks (each build redoes the layers before it)."""
    _final_endpoint_sweep(inception.inception_v4_base, [1, 75, 75, 3],
                          ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Mixed_3a",
                           "Mixed_4a", "Mixed_5a", "Mixed_5b"])
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3",
             "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_5a_3x3", "Mixed_5b", "Mixed_6a"]
    _final_endpoint_sweep(inception.inception_resnet_v2_base, [1, 75, 75, 3], names)
    with tf.Graph().as_default():
        net, _ = _build(inception.inception_resnet_v2_base, [1, 75, 75, 3],
                        final_endpoint="PreAuxLogits", output_stride=8, align_feature_maps=True)
        assert net.shape.as_list() == [1, 10, 10, 1088]
    with tf.Graph().as_default(), pytest.raises(ValueError, match="8 or 16"):
        _build(inception.inception_resnet_v2_base, [1, 75, 75, 3], output_stride=4)
    with tf.Graph().as_default():
        net, end_points = _build(inception.inception_v3_base, [1, 75, 75, 3],
                                 final_endpoint="Mixed_5d", depth_multiplier=0.25)
        assert net is end_points["Mixed_5d"] and "Mixed_6a" not in end_points


def test_mobilenet_v2_base_final_endpoint_and_options():
    with tf.Graph().as_default():
        net, end_points = _build(mobilenet_v2.mobilenet_base, [1, 64, 64, 3],
                                 final_endpoint="layer_5", depth_multiplier=0.35)
        assert net is end_points["layer_5"] and "layer_6" not in end_points
        assert end_points["layer_5/output"] is net
        net, end_points = _build(mobilenet_v2.mobilenet_base, [1, 64, 64, 3], output_stride=16,
                                 depth_multiplier=0.35, scope="OS16")
        assert net.shape.as_list() == [1, 4, 4, 448]  # 1280 * 0.35: no finegrain mode here
        with pytest.raises(ValueError, match="generic multiplier"):
            _build(mobilenet_v2.mobilenet, [1, 64, 64, 3], multiplier=0.5)


def test_resnet_output_stride_blocks_and_depth_multiplier():
    with tf.Graph().as_default():
        net, end_points = _build(resnet_v1.resnet_v1_50, [1, 64, 64, 3], global_pool=False,
                                 output_stride=8, depth_multiplier=0.25)
        assert net.shape.as_list() == [1, 8, 8, 512]  # 4 * base depth 128
        assert end_points["resnet_v1_50/block4"].shape.as_list() == [1, 8, 8, 512]
        assert _variables()["resnet_v1_50/block1/unit_1/bottleneck_v1/conv1/weights"].shape[
            -1] == 16
        with pytest.raises(ValueError, match="multiple of 4"):
            _build(resnet_v1.resnet_v1_50, [1, 64, 64, 3], output_stride=6, scope="bad")
    with tf.Graph().as_default():  # the generic builder from resnet_utils blocks
        blocks = [resnet_v2.resnet_v2_block("block1", base_depth=4, num_units=2, stride=2),
                  resnet_v2.resnet_v2_block("block2", base_depth=8, num_units=1, stride=1)]
        net, end_points = _build(resnet_v2.resnet_v2, [2, 32, 32, 3], blocks=blocks,
                                 num_classes=3, scope="tiny")
        assert net.shape.as_list() == [2, 3]
        assert end_points["tiny/logits"].shape.as_list() == [2, 1, 1, 3]
        assert end_points["predictions"].op.name == "tiny/predictions/Reshape_1"
        assert isinstance(blocks[0], resnet_utils.Block)
        net, end_points = _build(resnet_v1.resnet_v1, [2, 32, 32, 3], scope="stored",
                                 blocks=[resnet_v1.resnet_v1_block("b1", 4, 2, 2)],
                                 store_non_strided_activations=True, global_pool=False)
        # The block's output is collected before its subsampling (pool1 is VALID without
        # resnet_arg_scope: 16 -> 7).
        assert end_points["stored/b1"].shape.as_list() == [2, 7, 7, 16]
        assert net.shape.as_list() == [2, 4, 4, 16]


# ----------------------------------------------------------------------------- reuse
@pytest.mark.parametrize("fn, shape, kwargs", [
    (inception.inception_v1, [1, 64, 64, 3], {"global_pool": True}),
    (mobilenet_v1.mobilenet_v1_025, [1, 32, 32, 3], {}),
    (resnet_v1.resnet_v1_50, [1, 32, 32, 3], {"depth_multiplier": 0.25}),
    (mobilenet_v2.mobilenet_v2_035, [1, 32, 32, 3], {}),
], ids=["inception_v1", "mobilenet_v1", "resnet_v1_50", "mobilenet_v2"])
def test_reuse_shares_every_variable(fn, shape, kwargs):
    with tf.Graph().as_default():
        _build(fn, shape, num_classes=5, **kwargs)
        first = set(_variables())
        _build(fn, shape, num_classes=5, reuse=True, **kwargs)
        assert set(_variables()) == first
        with pytest.raises(ValueError, match="already exists"):
            _build(fn, shape, num_classes=5, **kwargs)


# ----------------------------------------------------------------------------- arg scopes
def _ops_and_variables(fn, shape, arg_scope, **kwargs):
    with tf.Graph().as_default() as graph:
        _build(fn, shape, arg_scope, **kwargs)
        return {op.type for op in graph.get_operations()}, set(_variables()), len(
            tf.get_collection(tf.GraphKeys.UPDATE_OPS))


def test_arg_scope_arguments_take_effect():
    base = inception.inception_v1_base
    end = {"final_endpoint": "Conv2d_1a_7x7"}
    _, names, _ = _ops_and_variables(base, [1, 32, 32, 3],
                                     inception_utils.inception_arg_scope(), **end)
    assert "InceptionV1/Conv2d_1a_7x7/BatchNorm/beta" in names
    assert "InceptionV1/Conv2d_1a_7x7/BatchNorm/gamma" not in names
    _, names, _ = _ops_and_variables(
        base, [1, 32, 32, 3], inception_utils.inception_arg_scope(batch_norm_scale=True), **end)
    assert "InceptionV1/Conv2d_1a_7x7/BatchNorm/gamma" in names
    ops, names, _ = _ops_and_variables(
        base, [1, 32, 32, 3], inception_utils.inception_arg_scope(
            use_batch_norm=False, activation_fn=tf.nn.relu6), **end)
    assert "InceptionV1/Conv2d_1a_7x7/biases" in names and "Relu6" in ops
    assert not [n for n in names if "BatchNorm" in n]
    _, names, _ = _ops_and_variables(
        inception.inception_resnet_v2_base, [1, 75, 75, 3],
        inception.inception_resnet_v2_arg_scope(batch_norm_scale=True),
        final_endpoint="Conv2d_1a_3x3")
    assert "InceptionResnetV2/Conv2d_1a_3x3/BatchNorm/gamma" in names
    # MobileNet v1's scope carries batch norm's mode (None leaves it to batch norm's default,
    # training).
    for is_training, updates in ((True, 2), (False, 0), (None, 2)):
        _, _, update_ops = _ops_and_variables(
            mobilenet_v1.mobilenet_v1_base, [1, 32, 32, 3],
            mobilenet_v1.mobilenet_v1_arg_scope(is_training=is_training),
            final_endpoint="Conv2d_0")
        assert update_ops == updates, is_training
    ops, names, _ = _ops_and_variables(
        resnet_v1.bottleneck, [1, 8, 8, 16], resnet_utils.resnet_arg_scope(
            use_batch_norm=False, activation_fn=tf.nn.relu6), depth=16, depth_bottleneck=4,
        stride=1, scope="unit")
    assert "Relu6" in ops and not [n for n in names if "BatchNorm" in n]
    with tf.Graph().as_default():
        with slim.arg_scope(mobilenet_v2.training_scope(dropout_keep_prob=0.5,
                                                        is_training=True)):
            _, end_points = _build(mobilenet_v2.mobilenet_v2_035, [1, 32, 32, 3])
        dropout = [op for op in tf.get_default_graph().get_operations()
                   if op.name.startswith("MobilenetV2/Logits/Dropout")]
        assert dropout and "Predictions" in end_points
