"""ResNet v1/v2 from ``tf_slim.nets`` behind the registry's calling convention.

Only the adaptation lives here: feature mode (``num_classes`` 0/None gives ``[batch, 2048]``) and
the ``Logits``/``Predictions`` end points under their usual names.
"""
import tensorflow.compat.v1 as tf
from tf_slim.nets import resnet_utils, resnet_v1, resnet_v2

_BUILDERS = {
    ("v1", 50): resnet_v1.resnet_v1_50, ("v1", 101): resnet_v1.resnet_v1_101,
    ("v1", 152): resnet_v1.resnet_v1_152, ("v1", 200): resnet_v1.resnet_v1_200,
    ("v2", 50): resnet_v2.resnet_v2_50, ("v2", 101): resnet_v2.resnet_v2_101,
    ("v2", 152): resnet_v2.resnet_v2_152, ("v2", 200): resnet_v2.resnet_v2_200,
}


def resnet_arg_scope(weight_decay=0.0001):
    """slim's ResNet arg_scope (batch norm with decay 0.997, L2 ``weight_decay`` on convs)."""
    return resnet_utils.resnet_arg_scope(weight_decay=weight_decay)


def make_network_fn(version, depth):
    """Returns ``fn(images, num_classes, is_training, ...)`` for ``resnet_<version>_<depth>``."""
    builder = _BUILDERS[(version, depth)]

    def network_fn(images, num_classes, is_training=False, global_pool=True,
                   spatial_squeeze=True, output_stride=None):
        # tf_slim 1.1.0's builders take no spatial_squeeze: their logits stay [batch, 1, 1, n].
        logits, end_points = builder(
            images, num_classes=num_classes or None, is_training=is_training,
            global_pool=global_pool, output_stride=output_stride)
        if num_classes and spatial_squeeze:
            logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
        if not num_classes:
            if global_pool:
                logits = tf.squeeze(logits, [1, 2], name="features")
            return logits, end_points
        end_points.setdefault("Logits", logits)
        if "predictions" in end_points:
            end_points["Predictions"] = end_points["predictions"]
        return logits, end_points

    network_fn.__name__ = "resnet_%s_%d" % (version, depth)
    network_fn.default_image_size = 224
    return network_fn
