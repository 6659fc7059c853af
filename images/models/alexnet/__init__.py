"""AlexNet v2 (the one-tower AlexNet of Krizhevsky 2014), built by ``tf_slim.nets``."""
from tf_slim.nets import alexnet

from images.models.common import slim_fc8_network
from images.models.registry import ModelRecord, register

register(ModelRecord(
    name="alexnet_v2", network_fn=slim_fc8_network(alexnet.alexnet_v2, "alexnet_v2", 224),
    arg_scope_fn=alexnet.alexnet_v2_arg_scope, default_image_size=224,
    preprocessing_name="inception", flops=736.6e6, default_num_classes=1000,
    family="alexnet", min_image_size=224,
    supported_kwargs=("dropout_keep_prob", "spatial_squeeze")))
