"""OverFeat in the registry: :func:`images.models.nets.overfeat.overfeat`."""
from images.models.nets import overfeat
from images.models.registry import ModelRecord, register

register(ModelRecord(
    name="overfeat", network_fn=overfeat.overfeat, arg_scope_fn=overfeat.overfeat_arg_scope,
    default_image_size=231, preprocessing_name="inception", flops=2.647e9,
    default_num_classes=1000, family="overfeat", min_image_size=231))
