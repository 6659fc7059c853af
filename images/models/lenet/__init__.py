"""LeNet (slim's variant for MNIST-sized inputs)."""
from images.models.lenet.lenet import lenet, lenet_arg_scope
from images.models.registry import ModelRecord, register

register(ModelRecord(
    name="lenet", network_fn=lenet, arg_scope_fn=lenet_arg_scope, default_image_size=28,
    preprocessing_name="lenet", flops=15.14e6, default_num_classes=10, family="lenet",
    min_image_size=28))
