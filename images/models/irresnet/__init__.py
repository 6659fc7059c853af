"""IR-ResNet 50/100/101/152: insightface's and PLSC's face-recognition backbones (112x112)."""
from images.models.irresnet import irresnet
from images.models.registry import ModelRecord, register

# Forward multiply-adds at 112x112 with the default classifier (PLSC's 85,742 classes on the
# 512-wide embedding), counted from these graphs (tests/test_models.py recounts them).
_FLOPS = {50: 6.353e9, 100: 12.134e9, 101: 8.434e9, 152: 12.365e9}

# Names under which PLSC (plsc/models/resnet.py) knows them.
PLSC_NAMES = {"ResNet%d" % d: "irresnet_%d" % d for d in sorted(irresnet.UNITS)}

for _depth in sorted(irresnet.UNITS):
    register(ModelRecord(
        name="irresnet_%d" % _depth, network_fn=irresnet.make_network_fn(_depth),
        arg_scope_fn=irresnet.irresnet_arg_scope,
        default_image_size=irresnet.DEFAULT_IMAGE_SIZE, preprocessing_name="inception",
        flops=_FLOPS[_depth], default_num_classes=85742, family="irresnet", heavy=True,
        min_image_size=32, supported_kwargs=("dropout_keep_prob", "embedding_size")))
