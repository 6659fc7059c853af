"""images.models.nets against TF-slim's ``nets`` package: modules, public names, signatures and
defaults, ``default_image_size``, the factory's maps.

The expected signatures below are transcribed from slim's source (research/slim/nets of
tensorflow/models, its TF 1.15 / tf_slim version) and compared with ``inspect.signature``:
names, order, kinds and default values (callables by identity).
"""
import ast
import importlib
import inspect

import pytest
import tensorflow.compat.v1 as tf
import tf_slim as slim

import images  # noqa: F401  (compat shim)
from images.models import model_factory
from images.models.nets import nets_factory
from images.models.nets.mobilenet import conv_blocks
from images.models.nets.nasnet import nasnet_utils

# module -> signatures, as slim's source writes them.
SLIM_SIGNATURES = {
    "alexnet": """
        alexnet_v2(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
                   spatial_squeeze=True, scope='alexnet_v2', global_pool=False)
        alexnet_v2_arg_scope(weight_decay=0.0005)""",
    "overfeat": """
        overfeat(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
                 spatial_squeeze=True, scope='overfeat', global_pool=False)
        overfeat_arg_scope(weight_decay=0.0005)""",
    "vgg": """
        vgg_a(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
              spatial_squeeze=True, scope='vgg_a', fc_conv_padding='VALID', global_pool=False)
        vgg_16(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
               spatial_squeeze=True, scope='vgg_16', fc_conv_padding='VALID', global_pool=False)
        vgg_19(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
               spatial_squeeze=True, scope='vgg_19', fc_conv_padding='VALID', global_pool=False)
        vgg_arg_scope(weight_decay=0.0005)""",
    "cifarnet": """
        cifarnet(images, num_classes=10, is_training=False, dropout_keep_prob=0.5,
                 prediction_fn=slim.softmax, scope='CifarNet')
        cifarnet_arg_scope(weight_decay=0.004)""",
    "lenet": """
        lenet(images, num_classes=10, is_training=False, dropout_keep_prob=0.5,
              prediction_fn=slim.softmax, scope='LeNet')
        lenet_arg_scope(weight_decay=0.0)""",
    "inception_utils": """
        inception_arg_scope(weight_decay=0.00004, use_batch_norm=True,
                            batch_norm_decay=0.9997, batch_norm_epsilon=0.001,
                            activation_fn=tf.nn.relu,
                            batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                            batch_norm_scale=False)""",
    "inception_v1": """
        inception_v1_base(inputs, final_endpoint='Mixed_5c', include_root_block=True,
                          scope='InceptionV1')
        inception_v1(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.8,
                     prediction_fn=slim.softmax, spatial_squeeze=True, reuse=None,
                     scope='InceptionV1', global_pool=False)""",
    "inception_v2": """
        inception_v2_base(inputs, final_endpoint='Mixed_5c', min_depth=16,
                          depth_multiplier=1.0, use_separable_conv=True, data_format='NHWC',
                          include_root_block=True, scope=None)
        inception_v2(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.8,
                     min_depth=16, depth_multiplier=1.0, prediction_fn=slim.softmax,
                     spatial_squeeze=True, reuse=None, scope='InceptionV2', global_pool=False)""",
    "inception_v3": """
        inception_v3_base(inputs, final_endpoint='Mixed_7c', min_depth=16,
                          depth_multiplier=1.0, scope=None)
        inception_v3(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.8,
                     min_depth=16, depth_multiplier=1.0, prediction_fn=slim.softmax,
                     spatial_squeeze=True, reuse=None, create_aux_logits=True,
                     scope='InceptionV3', global_pool=False)""",
    "inception_v4": """
        block_inception_a(inputs, scope=None, reuse=None)
        block_reduction_a(inputs, scope=None, reuse=None)
        block_inception_b(inputs, scope=None, reuse=None)
        block_reduction_b(inputs, scope=None, reuse=None)
        block_inception_c(inputs, scope=None, reuse=None)
        inception_v4_base(inputs, final_endpoint='Mixed_7d', scope=None)
        inception_v4(inputs, num_classes=1001, is_training=True, dropout_keep_prob=0.8,
                     reuse=None, scope='InceptionV4', create_aux_logits=True)""",
    "inception_resnet_v2": """
        block35(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None)
        block17(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None)
        block8(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None)
        inception_resnet_v2_base(inputs, final_endpoint='Conv2d_7b_1x1', output_stride=16,
                                 align_feature_maps=False, scope=None,
                                 activation_fn=tf.nn.relu)
        inception_resnet_v2(inputs, num_classes=1001, is_training=True, dropout_keep_prob=0.8,
                            reuse=None, scope='InceptionResnetV2', create_aux_logits=True,
                            activation_fn=tf.nn.relu)
        inception_resnet_v2_arg_scope(weight_decay=0.00004, batch_norm_decay=0.9997,
                                      batch_norm_epsilon=0.001, activation_fn=tf.nn.relu,
                                      batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                                      batch_norm_scale=False)""",
    "resnet_utils": """
        subsample(inputs, factor, scope=None)
        conv2d_same(inputs, num_outputs, kernel_size, stride, rate=1, scope=None)
        stack_blocks_dense(net, blocks, output_stride=None, store_non_strided_activations=False,
                           outputs_collections=None)
        resnet_arg_scope(weight_decay=0.0001, batch_norm_decay=0.997, batch_norm_epsilon=1e-5,
                         batch_norm_scale=True, activation_fn=tf.nn.relu, use_batch_norm=True,
                         batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS)""",
    "resnet_v1": """
        bottleneck(inputs, depth, depth_bottleneck, stride, rate=1, outputs_collections=None,
                   scope=None, use_bounded_activations=False)
        resnet_v1(inputs, blocks, num_classes=None, is_training=True, global_pool=True,
                  output_stride=None, include_root_block=True, spatial_squeeze=True,
                  store_non_strided_activations=False, reuse=None, scope=None)
        resnet_v1_block(scope, base_depth, num_units, stride)
        resnet_v1_50(inputs, num_classes=None, is_training=True, global_pool=True,
                     output_stride=None, spatial_squeeze=True,
                     store_non_strided_activations=False, min_base_depth=8, depth_multiplier=1,
                     reuse=None, scope='resnet_v1_50')
        resnet_v1_101(inputs, num_classes=None, is_training=True, global_pool=True,
                      output_stride=None, spatial_squeeze=True,
                      store_non_strided_activations=False, min_base_depth=8,
                      depth_multiplier=1, reuse=None, scope='resnet_v1_101')
        resnet_v1_152(inputs, num_classes=None, is_training=True, global_pool=True,
                      output_stride=None, store_non_strided_activations=False,
                      spatial_squeeze=True, min_base_depth=8, depth_multiplier=1, reuse=None,
                      scope='resnet_v1_152')
        resnet_v1_200(inputs, num_classes=None, is_training=True, global_pool=True,
                      output_stride=None, store_non_strided_activations=False,
                      spatial_squeeze=True, min_base_depth=8, depth_multiplier=1, reuse=None,
                      scope='resnet_v1_200')""",
    "resnet_v2": """
        bottleneck(inputs, depth, depth_bottleneck, stride, rate=1, outputs_collections=None,
                   scope=None)
        resnet_v2(inputs, blocks, num_classes=None, is_training=True, global_pool=True,
                  output_stride=None, include_root_block=True, spatial_squeeze=True,
                  reuse=None, scope=None)
        resnet_v2_block(scope, base_depth, num_units, stride)
        resnet_v2_50(inputs, num_classes=None, is_training=True, global_pool=True,
                     output_stride=None, spatial_squeeze=True, reuse=None, scope='resnet_v2_50')
        resnet_v2_101(inputs, num_classes=None, is_training=True, global_pool=True,
                      output_stride=None, spatial_squeeze=True, reuse=None,
                      scope='resnet_v2_101')
        resnet_v2_152(inputs, num_classes=None, is_training=True, global_pool=True,
                      output_stride=None, spatial_squeeze=True, reuse=None,
                      scope='resnet_v2_152')
        resnet_v2_200(inputs, num_classes=None, is_training=True, global_pool=True,
                      output_stride=None, spatial_squeeze=True, reuse=None,
                      scope='resnet_v2_200')""",
    "mobilenet_v1": """
        mobilenet_v1_base(inputs, final_endpoint='Conv2d_13_pointwise', min_depth=8,
                          depth_multiplier=1.0, conv_defs=None, output_stride=None,
                          use_explicit_padding=False, scope=None)
        mobilenet_v1(inputs, num_classes=1000, dropout_keep_prob=0.999, is_training=True,
                     min_depth=8, depth_multiplier=1.0, conv_defs=None,
                     prediction_fn=slim.softmax, spatial_squeeze=True, reuse=None,
                     scope='MobilenetV1', global_pool=False)
        mobilenet_v1_arg_scope(is_training=True, weight_decay=0.00004, stddev=0.09,
                               regularize_depthwise=False, batch_norm_decay=0.9997,
                               batch_norm_epsilon=0.001,
                               batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                               normalizer_fn=slim.batch_norm)
        wrapped_partial(func, *args, **kwargs)""",
    "mobilenet.mobilenet": """
        apply_activation(x, name=None, activation_fn=None)
        depth_multiplier(output_params, multiplier, divisible_by=8, min_depth=8,
                         **unused_kwargs)
        op(opfunc, multiplier_func=depth_multiplier, **params)
        safe_arg_scope(funcs, **kwargs)
        mobilenet_base(inputs, conv_defs, multiplier=1.0, final_endpoint=None,
                       output_stride=None, use_explicit_padding=False, scope=None,
                       is_training=False)
        mobilenet(inputs, num_classes=1001, prediction_fn=slim.softmax, reuse=None,
                  scope='Mobilenet', base_only=False, use_reduce_mean_for_pooling=False,
                  **mobilenet_args)
        global_pool(input_tensor, use_reduce_mean_for_pooling=False, pool_op=tf.nn.avg_pool2d)
        training_scope(is_training=True, weight_decay=0.00004, stddev=0.09,
                       dropout_keep_prob=0.8, bn_decay=0.997)""",
    "mobilenet.conv_blocks": """
        split_separable_conv2d(input_tensor, num_outputs, scope=None, normalizer_fn=None,
                               stride=1, rate=1, endpoints=None, use_explicit_padding=False)
        expand_input_by_factor(n, divisible_by=8)
        split_conv(input_tensor, num_outputs, num_ways, scope, divisible_by=8, **kwargs)
        expanded_conv(input_tensor, num_outputs, expansion_size=EXPANSION, stride=1, rate=1,
                      kernel_size=(3, 3), residual=True, normalizer_fn=None, split_projection=1,
                      split_expansion=1, split_divisible_by=8, expansion_transform=None,
                      depthwise_location='expansion', depthwise_channel_multiplier=1,
                      endpoints=None, use_explicit_padding=False, padding='SAME',
                      inner_activation_fn=None, depthwise_activation_fn=None,
                      project_activation_fn=tf.identity, depthwise_fn=slim.separable_conv2d,
                      expansion_fn=conv_blocks.split_conv, projection_fn=conv_blocks.split_conv,
                      scope=None)
        squeeze_excite(input_tensor, divisible_by=8, squeeze_factor=3,
                       inner_activation_fn=tf.nn.relu, gating_fn=tf.sigmoid,
                       squeeze_input_tensor=None, pool=None)""",
    "mobilenet.mobilenet_v2": """
        mobilenet(input_tensor, num_classes=1001, depth_multiplier=1.0, scope='MobilenetV2',
                  conv_defs=None, finegrain_classification_mode=False, min_depth=None,
                  divisible_by=None, activation_fn=None, **kwargs)
        mobilenet_base(input_tensor, depth_multiplier=1.0, **kwargs)
        mobilenet_base_group_norm(input_tensor, depth_multiplier=1.0, **kwargs)
        training_scope(**kwargs)
        wrapped_partial(func, *args, **kwargs)""",
    "nasnet.nasnet": """
        cifar_config()
        large_imagenet_config()
        mobile_imagenet_config()
        nasnet_cifar_arg_scope(weight_decay=5e-4, batch_norm_decay=0.9, batch_norm_epsilon=1e-5)
        nasnet_mobile_arg_scope(weight_decay=4e-5, batch_norm_decay=0.9997,
                                batch_norm_epsilon=1e-3)
        nasnet_large_arg_scope(weight_decay=5e-5, batch_norm_decay=0.9997,
                               batch_norm_epsilon=1e-3)
        build_nasnet_cifar(images, num_classes, is_training=True, config=None,
                           current_step=None)
        build_nasnet_mobile(images, num_classes, is_training=True, final_endpoint=None,
                            config=None, current_step=None)
        build_nasnet_large(images, num_classes, is_training=True, final_endpoint=None,
                           config=None, current_step=None)""",
    "nasnet.pnasnet": """
        large_imagenet_config()
        mobile_imagenet_config()
        pnasnet_large_arg_scope(weight_decay=4e-5, batch_norm_decay=0.9997,
                                batch_norm_epsilon=0.001)
        pnasnet_mobile_arg_scope(weight_decay=4e-5, batch_norm_decay=0.9997,
                                 batch_norm_epsilon=0.001)
        build_pnasnet_large(images, num_classes, is_training=True, final_endpoint=None,
                            config=None)
        build_pnasnet_mobile(images, num_classes, is_training=True, final_endpoint=None,
                             config=None)""",
    "nasnet.nasnet_utils": """
        calc_reduction_layers(num_cells, num_reduction_layers)
        get_channel_index(data_format=INVALID)
        get_channel_dim(shape, data_format=INVALID)
        global_avg_pool(x, data_format=INVALID)
        factorized_reduction(net, output_filters, stride, data_format=INVALID)
        drop_path(net, keep_prob, is_training=True)""",
    "nets_factory": """
        get_network_fn(name, num_classes, weight_decay=0.0, is_training=False)""",
}

# slim's default_image_size attributes.
DEFAULT_IMAGE_SIZES = {
    "alexnet.alexnet_v2": 224, "overfeat.overfeat": 231, "vgg.vgg_a": 224, "vgg.vgg_16": 224,
    "vgg.vgg_19": 224, "cifarnet.cifarnet": 32, "lenet.lenet": 28,
    "inception_v1.inception_v1": 224, "inception_v2.inception_v2": 224,
    "inception_v3.inception_v3": 299, "inception_v4.inception_v4": 299,
    "inception_resnet_v2.inception_resnet_v2": 299, "resnet_v1.resnet_v1": 224,
    "resnet_v1.resnet_v1_50": 224, "resnet_v1.resnet_v1_200": 224, "resnet_v2.resnet_v2": 224,
    "resnet_v2.resnet_v2_152": 224, "mobilenet_v1.mobilenet_v1": 224,
    "mobilenet_v1.mobilenet_v1_025": 224, "mobilenet.mobilenet_v2.mobilenet": 224,
    "mobilenet.mobilenet_v2.mobilenet_v2_140": 224, "nasnet.nasnet.build_nasnet_cifar": 32,
    "nasnet.nasnet.build_nasnet_mobile": 224, "nasnet.nasnet.build_nasnet_large": 331,
    "nasnet.pnasnet.build_pnasnet_large": 331, "nasnet.pnasnet.build_pnasnet_mobile": 224,
}

_MISSING = object()


def _module(name):
    return importlib.import_module("images.models.nets." + name)


def _parse(text):
    """``[(function name, [(parameter, kind, default source or _MISSING)])]`` of ``text``."""
    calls = []
    for line_group in ast.parse(inspect.cleandoc(text)).body:
        call = line_group.value
        params = [(a.id, "positional", _MISSING) if isinstance(a, ast.Name) else
                  ("*" + a.value.id, "var_positional", _MISSING) for a in call.args]
        for kw in call.keywords:
            if kw.arg is None:
                params.append(("**" + kw.value.id, "var_keyword", _MISSING))
            else:
                params.append((kw.arg, "positional", ast.unparse(kw.value)))
        calls.append((call.func.id, params))
    return calls


def _expected_default(source, module):
    namespace = {"slim": slim, "tf": tf, "INVALID": nasnet_utils.INVALID,
                 "conv_blocks": conv_blocks, "depth_multiplier": getattr(
                     module, "depth_multiplier", None), "EXPANSION": _MISSING}
    return eval(source, namespace)  # noqa: S307  (our own table of literals and names)


def _actual_params(fn):
    params = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            params.append(("*" + p.name, "var_positional", _MISSING))
        elif p.kind is p.VAR_KEYWORD:
            params.append(("**" + p.name, "var_keyword", _MISSING))
        else:
            params.append((p.name, "positional",
                           _MISSING if p.default is p.empty else p.default))
    return params


CASES = [(module, name, params) for module, text in SLIM_SIGNATURES.items()
         for name, params in _parse(text)]


@pytest.mark.parametrize("module, name, expected", CASES,
                         ids=["%s.%s" % (m, n) for m, n, _ in CASES])
def test_signature_and_defaults_are_slims(module, name, expected):
    mod = _module(module)
    fn = getattr(mod, name)
    actual = _actual_params(fn)
    assert [(p, k) for p, k, _ in actual] == [(p, k) for p, k, _ in expected]
    for (param, _, default), (_, _, source) in zip(actual, expected):
        if source is _MISSING:
            assert default is _MISSING, param
            continue
        want = _expected_default(source, mod)
        if want is _MISSING:  # a lambda made by the default expression: check what it does
            assert default(num_inputs=16) == 96, param
        elif callable(want) or isinstance(want, type):
            assert default is want, (param, default, want)
        else:
            assert default == want and type(default) is type(want), (param, default, want)


@pytest.mark.parametrize("path, size", sorted(DEFAULT_IMAGE_SIZES.items()))
def test_default_image_size(path, size):
    module, name = path.rsplit(".", 1)
    assert getattr(_module(module), name).default_image_size == size


def test_module_attributes_and_aliases():
    vgg, mobilenet_v1 = _module("vgg"), _module("mobilenet_v1")
    assert vgg.vgg_d is vgg.vgg_16 and vgg.vgg_e is vgg.vgg_19
    resnet_v1, resnet_v2, resnet_utils = (_module("resnet_v1"), _module("resnet_v2"),
                                          _module("resnet_utils"))
    assert resnet_v1.resnet_arg_scope is resnet_utils.resnet_arg_scope
    assert resnet_v2.resnet_arg_scope is resnet_utils.resnet_arg_scope
    assert resnet_utils.Block._fields == ("scope", "unit_fn", "args")
    inception = _module("inception")
    utils = _module("inception_utils")
    for version in ("v1", "v2", "v3", "v4"):
        assert getattr(inception, "inception_%s_arg_scope" % version) is utils.inception_arg_scope
        for suffix in ("", "_base"):
            assert getattr(inception, "inception_%s%s" % (version, suffix)) is getattr(
                _module("inception_" + version), "inception_%s%s" % (version, suffix))
    assert inception.inception_resnet_v2_base is _module(
        "inception_resnet_v2").inception_resnet_v2_base
    # MobileNet v1's layer list and partials.
    defs = mobilenet_v1.MOBILENETV1_CONV_DEFS
    assert isinstance(defs[0], mobilenet_v1.Conv) and len(defs) == 14
    assert [d.depth for d in defs] == [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512,
                                      512, 1024, 1024]
    assert [d.stride for d in defs] == [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert mobilenet_v1.mobilenet_v1_050.keywords == {"depth_multiplier": 0.5}
    assert mobilenet_v1.mobilenet_v1_025.__name__ == "mobilenet_v1"
    # MobileNet v2's conv def and partials.
    v2 = _module("mobilenet.mobilenet_v2")
    assert v2.__all__ == ["training_scope", "mobilenet_base", "mobilenet", "V2_DEF"]
    spec = v2.V2_DEF["spec"]
    assert len(spec) == 19 and spec[0].params == {"stride": 2, "num_outputs": 32,
                                                 "kernel_size": [3, 3]}
    assert spec[-1].params == {"stride": 1, "kernel_size": [1, 1], "num_outputs": 1280}
    assert [o.params.get("stride", 1) for o in spec[1:18]].count(2) == 4
    assert v2.mobilenet_v2_035.keywords == {"depth_multiplier": 0.35,
                                            "finegrain_classification_mode": True}
    assert v2.mobilenet_v2_140.keywords == {"depth_multiplier": 1.4}
    # NASNet configurations are HParams with slim's values.
    nasnet, pnasnet = _module("nasnet.nasnet"), _module("nasnet.pnasnet")
    large = nasnet.large_imagenet_config()
    assert (large.num_cells, large.num_conv_filters, large.drop_path_keep_prob,
            large.skip_reduction_layer_input, large.data_format) == (18, 168, 0.7, 1, "NHWC")
    assert nasnet.cifar_config().total_training_steps == 937500
    assert nasnet.mobile_imagenet_config().values()["num_conv_filters"] == 44
    assert (pnasnet.large_imagenet_config().num_conv_filters,
            pnasnet.mobile_imagenet_config().num_cells) == (216, 9)
    config = nasnet.mobile_imagenet_config()
    config.set_hparam("num_cells", 6)
    assert config.num_cells == 6
    with pytest.raises(ValueError, match="Unknown hyperparameter"):
        config.set_hparam("no_such_field", 1)
    assert nasnet_utils.calc_reduction_layers(18, 2) == [6, 12]


def test_nets_factory_maps_match_the_registry():
    # slim's map holds slim's networks; the registry adds the PLSC face backbones
    extra = {name for name in model_factory.list_models()
             if model_factory.get_model_record(name).family == "irresnet"}
    assert extra, "the IR-ResNets are registered"
    assert sorted(nets_factory.networks_map) == sorted(set(model_factory.list_models()) - extra)
    assert sorted(nets_factory.arg_scopes_map) == sorted(nets_factory.networks_map)
    for name, fn in nets_factory.networks_map.items():
        record = model_factory.get_model_record(name)
        assert record.network_fn is fn, name  # one implementation per network
        assert nets_factory.arg_scopes_map[name] is record.arg_scope_fn, name
        assert nets_factory.get_network_fn(name, 10).default_image_size == (
            record.default_image_size)
    with pytest.raises(ValueError, match="Name of network unknown resnet_v3"):
        nets_factory.get_network_fn("resnet_v3", 10)
