"""Inception v1-v4 and Inception-ResNet-v2 in the registry: :mod:`images.models.nets.inception`."""
from images.models.nets import inception
from images.models.registry import ModelRecord, register

# Forward multiply-adds at the default size with the 1000/1001-way classifier, measured with TF's
# profiler on these graphs (tests/test_models.py checks them).
_FLOPS = {"inception_v1": 1.498e9, "inception_v2": 1.935e9, "inception_v3": 5.713e9,
          "inception_v4": 12.25e9, "inception_resnet_v2": 13.16e9}

# v1's final 7x7 pooling wants a 7x7 map; the auxiliary heads of v3, v4 and Inception-ResNet-v2
# pool 5x5 windows of the 17x17 stage, which needs at least 107x107 inputs.
for _name, _arg_scope, _aux, _min, _heavy in (
        ("inception_v1", inception.inception_v3_arg_scope, False, 224, False),
        ("inception_v2", inception.inception_v3_arg_scope, False, 32, False),
        ("inception_v3", inception.inception_v3_arg_scope, True, 107, True),
        ("inception_v4", inception.inception_v4_arg_scope, True, 107, True),
        ("inception_resnet_v2", inception.inception_resnet_v2_arg_scope, True, 107, True)):
    _fn = getattr(inception, _name)
    register(ModelRecord(
        name=_name, network_fn=_fn, arg_scope_fn=_arg_scope,
        default_image_size=_fn.default_image_size, preprocessing_name="inception",
        has_aux_logits=_aux, flops=_FLOPS[_name], default_num_classes=1001, family="inception",
        heavy=_heavy, min_image_size=_min))
