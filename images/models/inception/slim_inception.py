"""Inception v1, v2 and v3 from ``tf_slim.nets`` behind the registry's calling convention.

Only the adaptation lives here: tf-slim 1.1.0's builders need a classifier, so feature mode
(``num_classes`` 0/None) builds their ``*_base`` trunk under the same scope and averages it to
``[batch, depth]``.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim
from tf_slim.nets import inception_v1, inception_v2, inception_v3

from images.models.common import add_classifier_end_points, pooled_features

# name -> (classifier builder, trunk builder, arg scope, variable scope, default image size)
NETS = {
    "inception_v1": (inception_v1.inception_v1, inception_v1.inception_v1_base,
                     inception_v1.inception_v1_arg_scope, "InceptionV1", 224),
    "inception_v2": (inception_v2.inception_v2, inception_v2.inception_v2_base,
                     inception_v2.inception_v2_arg_scope, "InceptionV2", 224),
    "inception_v3": (inception_v3.inception_v3, inception_v3.inception_v3_base,
                     inception_v3.inception_v3_arg_scope, "InceptionV3", 299),
}


def make_network_fn(name):
    """Returns ``fn(images, num_classes, is_training, ...)`` for the tf-slim network ``name``."""
    builder, base_builder, _, scope, size = NETS[name]

    def network_fn(images, num_classes, is_training=False, dropout_keep_prob=0.8,
                   spatial_squeeze=True, **options):
        if num_classes:
            logits, end_points = builder(
                images, num_classes=num_classes, is_training=is_training,
                dropout_keep_prob=dropout_keep_prob, spatial_squeeze=spatial_squeeze, **options)
            return add_classifier_end_points(logits, end_points)
        with tf.variable_scope(scope, values=[images]) as sc:
            with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
                net, end_points = base_builder(images, scope=sc)
        features = end_points["global_pool"] = pooled_features(net)
        return features, end_points

    network_fn.__name__ = name
    network_fn.default_image_size = size
    return network_fn


def arg_scope_fn(name):
    """The tf-slim arg_scope of ``name`` (batch norm, L2 ``weight_decay``)."""
    return NETS[name][2]
