"""ResNet v1 and v2 at depths 50/101/152/200, built by ``tf_slim.nets``."""
from images.models.registry import ModelRecord, register
from images.models.resnet import resnet

# Forward multiply-adds at 224x224 with the 1000/1001-way classifier, measured with TF's profiler
# on these graphs (tests/test_models.py checks them).
_FLOPS = {
    "resnet_v1_50": 3.482e9, "resnet_v1_101": 7.194e9, "resnet_v1_152": 10.91e9,
    "resnet_v1_200": 14.4e9,
    "resnet_v2_50": 3.482e9, "resnet_v2_101": 7.194e9, "resnet_v2_152": 10.91e9,
    "resnet_v2_200": 14.4e9,
}

for _version, _classes in (("v1", 1000), ("v2", 1001)):
    for _depth in (50, 101, 152, 200):
        _name = "resnet_%s_%d" % (_version, _depth)
        register(ModelRecord(
            name=_name, network_fn=resnet.make_network_fn(_version, _depth),
            arg_scope_fn=resnet.resnet_arg_scope, default_image_size=224,
            preprocessing_name="vgg", flops=_FLOPS[_name], default_num_classes=_classes,
            family="resnet", heavy=_depth > 50, min_image_size=32,
            supported_kwargs=("global_pool", "spatial_squeeze", "output_stride")))
