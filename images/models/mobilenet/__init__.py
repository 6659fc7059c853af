"""MobileNet v1 (width 1.0/0.75/0.5/0.25) and v2 (1.0/1.4/0.35), written from the papers with
the variable names of TF-slim's published checkpoints."""
import functools

from images.models.mobilenet import mobilenet_v1 as _v1
from images.models.mobilenet import mobilenet_v2 as _v2
from images.models.registry import ModelRecord, register

# Forward multiply-adds at 224x224 with 1001 classes, measured with TF's profiler on these graphs
# (tests/test_models.py checks them).
_FLOPS = {"mobilenet_v1": 568.7e6, "mobilenet_v1_075": 325.4e6, "mobilenet_v1_050": 149.5e6,
          "mobilenet_v1_025": 41.03e6, "mobilenet_v2": 300.8e6, "mobilenet_v2_140": 582.2e6,
          "mobilenet_v2_035": 59.29e6}


def _variant(fn, name, **fixed):
    variant = functools.partial(fn, **fixed)
    variant.__name__ = name
    variant.default_image_size = 224
    return variant


for _name, _multiplier in (("mobilenet_v1", 1.0), ("mobilenet_v1_075", 0.75),
                           ("mobilenet_v1_050", 0.5), ("mobilenet_v1_025", 0.25)):
    register(ModelRecord(
        name=_name, network_fn=_variant(_v1.mobilenet_v1, _name, depth_multiplier=_multiplier),
        arg_scope_fn=_v1.mobilenet_v1_arg_scope, default_image_size=224,
        preprocessing_name="inception", flops=_FLOPS[_name], default_num_classes=1001,
        family="mobilenet", min_image_size=32,
        supported_kwargs=("dropout_keep_prob", "global_pool", "spatial_squeeze")))

# slim's 0.35 model keeps the last layer at 1280 (finegrain classification mode); 1.4 widens it.
for _name, _multiplier, _finegrain in (("mobilenet_v2", 1.0, False),
                                       ("mobilenet_v2_140", 1.4, False),
                                       ("mobilenet_v2_035", 0.35, True)):
    register(ModelRecord(
        name=_name, network_fn=_variant(_v2.mobilenet_v2, _name, depth_multiplier=_multiplier,
                                        finegrain_classification_mode=_finegrain),
        arg_scope_fn=_v2.mobilenet_v2_arg_scope, default_image_size=224,
        preprocessing_name="inception", flops=_FLOPS[_name], default_num_classes=1001,
        family="mobilenet", min_image_size=32, supported_kwargs=("dropout_keep_prob",)))
