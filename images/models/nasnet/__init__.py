"""NASNet-A (CIFAR, Mobile, Large) and PNASNet-5 (Large, Mobile), written from the papers with
the variable names of TF-slim's published checkpoints."""
from images.models.nasnet import nasnet as _nasnet
from images.models.nasnet import pnasnet as _pnasnet
from images.models.registry import ModelRecord, register

# Forward multiply-adds at the default size with the 1001-way (10 for CIFAR) classifier, measured
# with TF's profiler on these graphs (tests/test_models.py checks them).
_FLOPS = {"nasnet_cifar": 544.3e6, "nasnet_mobile": 563.6e6, "nasnet_large": 23.78e9,
          "pnasnet_large": 24.94e9, "pnasnet_mobile": 587.3e6}

_KWARGS = ("dropout_keep_prob", "drop_path_keep_prob")

# min_image_size: the auxiliary head's 5x5 pooling needs a 5x5 map before the second reduction.
# nasnet_cifar is cheap to run but, with 20 cells, as slow to build as nasnet_large: heavy.
for _name, _fn, _scope_fn, _size, _preprocessing, _classes, _heavy, _min in (
        ("nasnet_cifar", _nasnet.nasnet_cifar, _nasnet.nasnet_cifar_arg_scope, 32, "cifarnet",
         10, True, 32),
        ("nasnet_mobile", _nasnet.nasnet_mobile, _nasnet.nasnet_mobile_arg_scope, 224,
         "inception", 1001, False, 75),
        ("nasnet_large", _nasnet.nasnet_large, _nasnet.nasnet_large_arg_scope, 331, "inception",
         1001, True, 75),
        ("pnasnet_large", _pnasnet.pnasnet_large, _pnasnet.pnasnet_arg_scope, 331, "inception",
         1001, True, 75),
        ("pnasnet_mobile", _pnasnet.pnasnet_mobile, _pnasnet.pnasnet_arg_scope, 224,
         "inception", 1001, False, 75)):
    register(ModelRecord(
        name=_name, network_fn=_fn, arg_scope_fn=_scope_fn, default_image_size=_size,
        preprocessing_name=_preprocessing, has_aux_logits=True, flops=_FLOPS[_name],
        default_num_classes=_classes, family="nasnet", heavy=_heavy, min_image_size=_min,
        supported_kwargs=_KWARGS))
