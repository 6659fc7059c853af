"""AlexNet v2 in the registry: :func:`images.models.nets.alexnet.alexnet_v2`."""
from images.models.nets import alexnet
from images.models.registry import ModelRecord, register

register(ModelRecord(
    name="alexnet_v2", network_fn=alexnet.alexnet_v2, arg_scope_fn=alexnet.alexnet_v2_arg_scope,
    default_image_size=224, preprocessing_name="inception", flops=736.6e6,
    default_num_classes=1000, family="alexnet", min_image_size=224))
