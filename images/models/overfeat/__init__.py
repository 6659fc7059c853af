"""OverFeat (Sermanet et al. 2014, the "fast" model), built by ``tf_slim.nets``."""
from tf_slim.nets import overfeat

from images.models.common import slim_fc8_network
from images.models.registry import ModelRecord, register

register(ModelRecord(
    name="overfeat", network_fn=slim_fc8_network(overfeat.overfeat, "overfeat", 231),
    arg_scope_fn=overfeat.overfeat_arg_scope, default_image_size=231,
    preprocessing_name="inception", flops=2.647e9, default_num_classes=1000,
    family="overfeat", min_image_size=231,
    supported_kwargs=("dropout_keep_prob", "spatial_squeeze")))
