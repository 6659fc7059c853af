"""ResNet v1 and v2 at depths 50/101/152/200 in the registry: :mod:`images.models.nets.resnet_v1`
and :mod:`images.models.nets.resnet_v2`."""
from images.models.nets import resnet_v1, resnet_v2
from images.models.registry import ModelRecord, register

# Forward multiply-adds at 224x224 with the 1000/1001-way classifier, measured with TF's profiler
# on these graphs (tests/test_models.py checks them).
_FLOPS = {
    "resnet_v1_50": 3.482e9, "resnet_v1_101": 7.194e9, "resnet_v1_152": 10.91e9,
    "resnet_v1_200": 14.4e9,
    "resnet_v2_50": 3.482e9, "resnet_v2_101": 7.194e9, "resnet_v2_152": 10.91e9,
    "resnet_v2_200": 14.4e9,
}

for _module, _classes in ((resnet_v1, 1000), (resnet_v2, 1001)):
    for _depth in (50, 101, 152, 200):
        _name = "%s_%d" % (_module.__name__.rsplit(".", 1)[1], _depth)
        register(ModelRecord(
            name=_name, network_fn=getattr(_module, _name), arg_scope_fn=_module.resnet_arg_scope,
            default_image_size=224, preprocessing_name="vgg", flops=_FLOPS[_name],
            default_num_classes=_classes, family="resnet", heavy=_depth > 50, min_image_size=32))
