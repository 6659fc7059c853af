"""VGG A, 16 and 19 in the registry: :mod:`images.models.nets.vgg`."""
from images.models.nets import vgg
from images.models.registry import ModelRecord, register

# Forward multiply-adds at 224x224 with 1000 classes, measured with TF's profiler on these graphs
# (tests/test_models.py checks them).
_FLOPS = {"vgg_a": 7.609e9, "vgg_16": 15.47e9, "vgg_19": 19.63e9}

for _name, _builder in (("vgg_a", vgg.vgg_a), ("vgg_16", vgg.vgg_16), ("vgg_19", vgg.vgg_19)):
    register(ModelRecord(
        name=_name, network_fn=_builder, arg_scope_fn=vgg.vgg_arg_scope, default_image_size=224,
        preprocessing_name="vgg", flops=_FLOPS[_name], default_num_classes=1000, family="vgg",
        heavy=True, min_image_size=224))
