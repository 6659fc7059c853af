"""LeNet in the registry: :func:`images.models.nets.lenet.lenet`."""
from images.models.nets import lenet
from images.models.registry import ModelRecord, register

register(ModelRecord(
    name="lenet", network_fn=lenet.lenet, arg_scope_fn=lenet.lenet_arg_scope,
    default_image_size=28, preprocessing_name="lenet", flops=15.14e6, default_num_classes=10,
    family="lenet", min_image_size=28))
