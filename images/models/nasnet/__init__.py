"""NASNet-A (CIFAR, Mobile, Large) and PNASNet-5 (Large, Mobile) in the registry:
:mod:`images.models.nets.nasnet.nasnet` and :mod:`images.models.nets.nasnet.pnasnet`."""
from images.models.nets.nasnet import nasnet, pnasnet
from images.models.registry import ModelRecord, register

# Forward multiply-adds at the default size with the 1001-way (10 for CIFAR) classifier, measured
# with TF's profiler on these graphs (tests/test_models.py checks them).
_FLOPS = {"nasnet_cifar": 544.3e6, "nasnet_mobile": 563.6e6, "nasnet_large": 23.78e9,
          "pnasnet_large": 24.94e9, "pnasnet_mobile": 587.3e6}

# min_image_size: the auxiliary head's 5x5 pooling needs a 5x5 map before the second reduction.
# nasnet_cifar is cheap to run but, with 20 cells, as slow to build as nasnet_large: heavy.
for _name, _fn, _scope_fn, _preprocessing, _classes, _heavy, _min in (
        ("nasnet_cifar", nasnet.build_nasnet_cifar, nasnet.nasnet_cifar_arg_scope, "cifarnet",
         10, True, 32),
        ("nasnet_mobile", nasnet.build_nasnet_mobile, nasnet.nasnet_mobile_arg_scope,
         "inception", 1001, False, 75),
        ("nasnet_large", nasnet.build_nasnet_large, nasnet.nasnet_large_arg_scope, "inception",
         1001, True, 75),
        ("pnasnet_large", pnasnet.build_pnasnet_large, pnasnet.pnasnet_large_arg_scope,
         "inception", 1001, True, 75),
        ("pnasnet_mobile", pnasnet.build_pnasnet_mobile, pnasnet.pnasnet_mobile_arg_scope,
         "inception", 1001, False, 75)):
    register(ModelRecord(
        name=_name, network_fn=_fn, arg_scope_fn=_scope_fn,
        default_image_size=_fn.default_image_size, preprocessing_name=_preprocessing,
        has_aux_logits=True, flops=_FLOPS[_name], default_num_classes=_classes, family="nasnet",
        heavy=_heavy, min_image_size=_min))
