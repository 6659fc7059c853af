"""Inception-v4 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning"), with the variable names of TF-slim's ``InceptionV4`` checkpoint.

Stem (Mixed_3a..5a), 4 Inception-A (Mixed_5b..5e), Reduction-A (Mixed_6a), 7 Inception-B
(Mixed_6b..6h), Reduction-B (Mixed_7a), 3 Inception-C (Mixed_7b..7d); an auxiliary classifier on
Mixed_6h.  35x35x384 -> 17x17x1024 -> 8x8x1536 at 299x299.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.common import add_classifier_end_points, pooled_features
from images.models.inception.blocks import (apply_layers, avg_pool, conv, fork, global_average,
                                            inception_arg_scope, max_pool, mixed)

_STEM = [
    conv(32, 3, "Conv2d_1a_3x3", stride=2, padding="VALID"),
    conv(32, 3, "Conv2d_2a_3x3", padding="VALID"),
    conv(64, 3, "Conv2d_2b_3x3"),
]

_MIXED_3A = [
    [max_pool(3, "MaxPool_0a_3x3", stride=2, padding="VALID")],
    [conv(96, 3, "Conv2d_0a_3x3", stride=2, padding="VALID")],
]

_MIXED_4A = [
    [conv(64, 1, "Conv2d_0a_1x1"), conv(96, 3, "Conv2d_1a_3x3", padding="VALID")],
    [conv(64, 1, "Conv2d_0a_1x1"), conv(64, (1, 7), "Conv2d_0b_1x7"),
     conv(64, (7, 1), "Conv2d_0c_7x1"), conv(96, 3, "Conv2d_1a_3x3", padding="VALID")],
]

_MIXED_5A = [
    [conv(192, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [max_pool(3, "MaxPool_1a_3x3", stride=2, padding="VALID")],
]

_INCEPTION_A = [
    [conv(96, 1, "Conv2d_0a_1x1")],
    [conv(64, 1, "Conv2d_0a_1x1"), conv(96, 3, "Conv2d_0b_3x3")],
    [conv(64, 1, "Conv2d_0a_1x1"), conv(96, 3, "Conv2d_0b_3x3"), conv(96, 3, "Conv2d_0c_3x3")],
    [avg_pool(3, "AvgPool_0a_3x3"), conv(96, 1, "Conv2d_0b_1x1")],
]

_REDUCTION_A = [
    [conv(384, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [conv(192, 1, "Conv2d_0a_1x1"), conv(224, 3, "Conv2d_0b_3x3"),
     conv(256, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [max_pool(3, "MaxPool_1a_3x3", stride=2, padding="VALID")],
]

_INCEPTION_B = [
    [conv(384, 1, "Conv2d_0a_1x1")],
    [conv(192, 1, "Conv2d_0a_1x1"), conv(224, (1, 7), "Conv2d_0b_1x7"),
     conv(256, (7, 1), "Conv2d_0c_7x1")],
    [conv(192, 1, "Conv2d_0a_1x1"), conv(192, (7, 1), "Conv2d_0b_7x1"),
     conv(224, (1, 7), "Conv2d_0c_1x7"), conv(224, (7, 1), "Conv2d_0d_7x1"),
     conv(256, (1, 7), "Conv2d_0e_1x7")],
    [avg_pool(3, "AvgPool_0a_3x3"), conv(128, 1, "Conv2d_0b_1x1")],
]

_REDUCTION_B = [
    [conv(192, 1, "Conv2d_0a_1x1"), conv(192, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [conv(256, 1, "Conv2d_0a_1x1"), conv(256, (1, 7), "Conv2d_0b_1x7"),
     conv(320, (7, 1), "Conv2d_0c_7x1"), conv(320, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [max_pool(3, "MaxPool_1a_3x3", stride=2, padding="VALID")],
]

_INCEPTION_C = [
    [conv(256, 1, "Conv2d_0a_1x1")],
    [conv(384, 1, "Conv2d_0a_1x1"),
     fork(conv(256, (1, 3), "Conv2d_0b_1x3"), conv(256, (3, 1), "Conv2d_0c_3x1"))],
    [conv(384, 1, "Conv2d_0a_1x1"), conv(448, (3, 1), "Conv2d_0b_3x1"),
     conv(512, (1, 3), "Conv2d_0c_1x3"),
     fork(conv(256, (1, 3), "Conv2d_0d_1x3"), conv(256, (3, 1), "Conv2d_0e_3x1"))],
    [avg_pool(3, "AvgPool_0a_3x3"), conv(256, 1, "Conv2d_0b_1x1")],
]

# (end point, block) in order; the stem convolutions come first, one end point each.
_BLOCKS = ([("Mixed_3a", _MIXED_3A), ("Mixed_4a", _MIXED_4A), ("Mixed_5a", _MIXED_5A)]
           + [("Mixed_5" + c, _INCEPTION_A) for c in "bcde"]
           + [("Mixed_6a", _REDUCTION_A)]
           + [("Mixed_6" + c, _INCEPTION_B) for c in "bcdefgh"]
           + [("Mixed_7a", _REDUCTION_B)]
           + [("Mixed_7" + c, _INCEPTION_C) for c in "bcd"])


def inception_v4_base(images, scope="InceptionV4"):
    """The convolutional trunk up to Mixed_7d; returns ``(net, end_points)``."""
    end_points = {}
    with tf.variable_scope(scope, "InceptionV4", [images]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1,
                            padding="SAME"):
            net = images
            for layer in _STEM:
                net = end_points[layer.name] = apply_layers(net, [layer])
            for name, block in _BLOCKS:
                net = end_points[name] = mixed(net, block, name)
    return net, end_points


def inception_v4(images, num_classes=1001, is_training=False, dropout_keep_prob=0.8,
                 create_aux_logits=True, scope="InceptionV4"):
    """Inception-v4 classifier.

    Args:
      images: ``[batch, height, width, 3]``; 299x299 by default, at least 107x107 with the
        auxiliary head (its 5x5 pooling needs a 5x5 Mixed_6h).
      num_classes: classifier width; 0 or None returns the pooled ``[batch, 1536]`` features.
      is_training: batch-norm statistics and dropout in training mode.
      dropout_keep_prob: keep probability before the classifier.
      create_aux_logits: build the auxiliary classifier on Mixed_6h (``AuxLogits``).
      scope: variable scope.

    Returns:
      ``(logits or features, end_points)``.
    """
    with tf.variable_scope(scope, "InceptionV4", [images]) as sc:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v4_base(images, scope=sc)
            with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1,
                                padding="SAME"):
                if create_aux_logits and num_classes:
                    with tf.variable_scope("AuxLogits"):
                        aux = slim.avg_pool2d(end_points["Mixed_6h"], [5, 5], stride=3,
                                              padding="VALID", scope="AvgPool_1a_5x5")
                        aux = slim.conv2d(aux, 128, [1, 1], scope="Conv2d_1b_1x1")
                        aux = slim.conv2d(aux, 768, aux.shape[1:3].as_list(), padding="VALID",
                                          scope="Conv2d_2a")
                        aux = slim.flatten(aux)
                        end_points["AuxLogits"] = slim.fully_connected(
                            aux, num_classes, activation_fn=None, scope="Aux_logits")
                with tf.variable_scope("Logits"):
                    net = end_points["global_pool"] = global_average(net, "AvgPool_1a")
                    if not num_classes:
                        return pooled_features(net), end_points
                    net = slim.dropout(net, dropout_keep_prob, scope="Dropout_1b")
                    net = end_points["PreLogitsFlatten"] = slim.flatten(
                        net, scope="PreLogitsFlatten")
                    logits = slim.fully_connected(net, num_classes, activation_fn=None,
                                                  scope="Logits")
    end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return add_classifier_end_points(logits, end_points)


inception_v4.default_image_size = 299
inception_v4_arg_scope = inception_arg_scope
