"""Inception v1-v4 and Inception-ResNet-v2.

v1-v3 are built by ``tf_slim.nets``; v4 and Inception-ResNet-v2, which tf-slim 1.1.0 lacks, are
written here from the published architecture with the checkpoints' variable names.
"""
from images.models.inception import inception_resnet_v2 as _irv2
from images.models.inception import inception_v4 as _v4
from images.models.inception import slim_inception
from images.models.registry import ModelRecord, register

# Forward multiply-adds at the default size with the 1000/1001-way classifier, measured with TF's
# profiler on these graphs (tests/test_models.py checks them).
_FLOPS = {"inception_v1": 1.498e9, "inception_v2": 1.935e9, "inception_v3": 5.713e9,
          "inception_v4": 12.25e9, "inception_resnet_v2": 13.16e9}

# v1's final 7x7 pooling wants a 7x7 map; v3's auxiliary head (like v4's and Inception-ResNet-v2's)
# pools 5x5 windows of the 17x17 stage, which needs at least 107x107 inputs.
_MIN_SIZE = {"inception_v1": 224, "inception_v2": 32, "inception_v3": 107}

for _name, _classes, _aux, _kwargs in (
        ("inception_v1", 1001, False, ("dropout_keep_prob", "spatial_squeeze")),
        ("inception_v2", 1001, False, ("dropout_keep_prob", "spatial_squeeze")),
        ("inception_v3", 1001, True, ("dropout_keep_prob", "spatial_squeeze",
                                      "create_aux_logits"))):
    register(ModelRecord(
        name=_name, network_fn=slim_inception.make_network_fn(_name),
        arg_scope_fn=slim_inception.arg_scope_fn(_name),
        default_image_size=slim_inception.NETS[_name][4], preprocessing_name="inception",
        has_aux_logits=_aux, flops=_FLOPS[_name], default_num_classes=_classes,
        family="inception", heavy=_name == "inception_v3",
        min_image_size=_MIN_SIZE[_name], supported_kwargs=_kwargs))

register(ModelRecord(
    name="inception_v4", network_fn=_v4.inception_v4, arg_scope_fn=_v4.inception_v4_arg_scope,
    default_image_size=299, preprocessing_name="inception", has_aux_logits=True,
    flops=_FLOPS["inception_v4"], default_num_classes=1001, family="inception", heavy=True,
    min_image_size=107, supported_kwargs=("dropout_keep_prob", "create_aux_logits")))

register(ModelRecord(
    name="inception_resnet_v2", network_fn=_irv2.inception_resnet_v2,
    arg_scope_fn=_irv2.inception_resnet_v2_arg_scope, default_image_size=299,
    preprocessing_name="inception", has_aux_logits=True, flops=_FLOPS["inception_resnet_v2"],
    default_num_classes=1001, family="inception", heavy=True, min_image_size=107,
    supported_kwargs=("dropout_keep_prob", "create_aux_logits")))
