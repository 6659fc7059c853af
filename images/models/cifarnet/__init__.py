"""CifarNet (slim's small CIFAR-10 network)."""
from images.models.cifarnet.cifarnet import cifarnet, cifarnet_arg_scope
from images.models.registry import ModelRecord, register

register(ModelRecord(
    name="cifarnet", network_fn=cifarnet, arg_scope_fn=cifarnet_arg_scope, default_image_size=32,
    preprocessing_name="cifarnet", flops=32.78e6, default_num_classes=10, family="cifarnet",
    min_image_size=32))
