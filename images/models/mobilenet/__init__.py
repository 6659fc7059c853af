"""MobileNet v1 (width 1.0/0.75/0.5/0.25) and v2 (1.0/1.4/0.35) in the registry:
:mod:`images.models.nets.mobilenet_v1` and :mod:`images.models.nets.mobilenet.mobilenet_v2`."""
from images.models.nets import mobilenet_v1
from images.models.nets.mobilenet import mobilenet_v2
from images.models.registry import ModelRecord, register

# Forward multiply-adds at 224x224 with 1001 classes, measured with TF's profiler on these graphs
# (tests/test_models.py checks them).
_FLOPS = {"mobilenet_v1": 568.7e6, "mobilenet_v1_075": 325.4e6, "mobilenet_v1_050": 149.5e6,
          "mobilenet_v1_025": 41.03e6, "mobilenet_v2": 300.8e6, "mobilenet_v2_140": 582.2e6,
          "mobilenet_v2_035": 59.29e6}

# slim's mobilenet_v2.mobilenet passes these on to the conv-def library (**kwargs).
V2_OPTIONS = ("depth_multiplier", "scope", "conv_defs", "finegrain_classification_mode",
              "min_depth", "divisible_by", "activation_fn", "prediction_fn", "reuse",
              "use_reduce_mean_for_pooling", "output_stride", "use_explicit_padding")

for _name in ("mobilenet_v1", "mobilenet_v1_075", "mobilenet_v1_050", "mobilenet_v1_025"):
    register(ModelRecord(
        name=_name, network_fn=getattr(mobilenet_v1, _name),
        arg_scope_fn=mobilenet_v1.mobilenet_v1_arg_scope, default_image_size=224,
        preprocessing_name="inception", flops=_FLOPS[_name], default_num_classes=1001,
        family="mobilenet", min_image_size=32))

for _name, _fn in (("mobilenet_v2", mobilenet_v2.mobilenet),
                   ("mobilenet_v2_140", mobilenet_v2.mobilenet_v2_140),
                   ("mobilenet_v2_035", mobilenet_v2.mobilenet_v2_035)):
    register(ModelRecord(
        name=_name, network_fn=_fn, arg_scope_fn=mobilenet_v2.training_scope,
        default_image_size=224, preprocessing_name="inception", flops=_FLOPS[_name],
        default_num_classes=1001, family="mobilenet", min_image_size=32,
        supported_kwargs=V2_OPTIONS))
