"""CifarNet in the registry: :func:`images.models.nets.cifarnet.cifarnet`."""
from images.models.nets import cifarnet
from images.models.registry import ModelRecord, register

register(ModelRecord(
    name="cifarnet", network_fn=cifarnet.cifarnet, arg_scope_fn=cifarnet.cifarnet_arg_scope,
    default_image_size=32, preprocessing_name="cifarnet", flops=32.78e6, default_num_classes=10,
    family="cifarnet", min_image_size=32))
