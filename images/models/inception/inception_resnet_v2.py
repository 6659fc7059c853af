"""Inception-ResNet-v2 (Szegedy et al. 2016), with the variable names of TF-slim's
``InceptionResnetV2`` checkpoint.

Stem to 35x35x320 (Mixed_5b), 10 x block35 (``Repeat/block35_<i>``, scale 0.17), Reduction-A
(Mixed_6a, 17x17x1088), 20 x block17 (``Repeat_1``, scale 0.10), the auxiliary classifier's input
(``PreAuxLogits``), Reduction-B (Mixed_7a, 8x8x2080), 9 x block8 (``Repeat_2``, scale 0.20), a last
block8 without activation (``Block8``) and a 1x1 convolution to 1536 (``Conv2d_7b_1x1``).
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.common import add_classifier_end_points, pooled_features
from images.models.inception.blocks import (apply_layers, avg_pool, conv, global_average,
                                            inception_arg_scope, max_pool, mixed, residual)

_STEM = [
    conv(32, 3, "Conv2d_1a_3x3", stride=2, padding="VALID"),
    conv(32, 3, "Conv2d_2a_3x3", padding="VALID"),
    conv(64, 3, "Conv2d_2b_3x3"),
    max_pool(3, "MaxPool_3a_3x3", stride=2, padding="VALID"),
    conv(80, 1, "Conv2d_3b_1x1", padding="VALID"),
    conv(192, 3, "Conv2d_4a_3x3", padding="VALID"),
    max_pool(3, "MaxPool_5a_3x3", stride=2, padding="VALID"),
]

_MIXED_5B = [
    [conv(96, 1, "Conv2d_1x1")],
    [conv(48, 1, "Conv2d_0a_1x1"), conv(64, 5, "Conv2d_0b_5x5")],
    [conv(64, 1, "Conv2d_0a_1x1"), conv(96, 3, "Conv2d_0b_3x3"), conv(96, 3, "Conv2d_0c_3x3")],
    [avg_pool(3, "AvgPool_0a_3x3"), conv(64, 1, "Conv2d_0b_1x1")],
]

_BLOCK35 = [
    [conv(32, 1, "Conv2d_1x1")],
    [conv(32, 1, "Conv2d_0a_1x1"), conv(32, 3, "Conv2d_0b_3x3")],
    [conv(32, 1, "Conv2d_0a_1x1"), conv(48, 3, "Conv2d_0b_3x3"), conv(64, 3, "Conv2d_0c_3x3")],
]

_MIXED_6A = [
    [conv(384, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [conv(256, 1, "Conv2d_0a_1x1"), conv(256, 3, "Conv2d_0b_3x3"),
     conv(384, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [max_pool(3, "MaxPool_1a_3x3", stride=2, padding="VALID")],
]

_BLOCK17 = [
    [conv(192, 1, "Conv2d_1x1")],
    [conv(128, 1, "Conv2d_0a_1x1"), conv(160, (1, 7), "Conv2d_0b_1x7"),
     conv(192, (7, 1), "Conv2d_0c_7x1")],
]

_MIXED_7A = [
    [conv(256, 1, "Conv2d_0a_1x1"), conv(384, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [conv(256, 1, "Conv2d_0a_1x1"), conv(288, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [conv(256, 1, "Conv2d_0a_1x1"), conv(288, 3, "Conv2d_0b_3x3"),
     conv(320, 3, "Conv2d_1a_3x3", stride=2, padding="VALID")],
    [max_pool(3, "MaxPool_1a_3x3", stride=2, padding="VALID")],
]

_BLOCK8 = [
    [conv(192, 1, "Conv2d_1x1")],
    [conv(192, 1, "Conv2d_0a_1x1"), conv(224, (1, 3), "Conv2d_0b_1x3"),
     conv(256, (3, 1), "Conv2d_0c_3x1")],
]


def _repeat(net, count, branches, scale, activation_fn, scope, block_name):
    with tf.variable_scope(scope):
        for i in range(1, count + 1):
            net = residual(net, branches, scale, activation_fn, "%s_%d" % (block_name, i))
    return net


def inception_resnet_v2_base(images, activation_fn=tf.nn.relu, scope="InceptionResnetV2"):
    """The trunk up to Conv2d_7b_1x1 (8x8x1536 at 299); returns ``(net, end_points)``."""
    end_points = {}
    with tf.variable_scope(scope, "InceptionResnetV2", [images]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1,
                            padding="SAME"):
            net = images
            for layer in _STEM:
                net = end_points[layer.name] = apply_layers(net, [layer])
            net = end_points["Mixed_5b"] = mixed(net, _MIXED_5B, "Mixed_5b")
            net = _repeat(net, 10, _BLOCK35, 0.17, activation_fn, "Repeat", "block35")
            net = end_points["Mixed_6a"] = mixed(net, _MIXED_6A, "Mixed_6a")
            net = _repeat(net, 20, _BLOCK17, 0.10, activation_fn, "Repeat_1", "block17")
            end_points["PreAuxLogits"] = net
            net = end_points["Mixed_7a"] = mixed(net, _MIXED_7A, "Mixed_7a")
            net = _repeat(net, 9, _BLOCK8, 0.20, activation_fn, "Repeat_2", "block8")
            net = residual(net, _BLOCK8, 1.0, None, "Block8")
            net = end_points["Conv2d_7b_1x1"] = slim.conv2d(net, 1536, [1, 1],
                                                            scope="Conv2d_7b_1x1")
    return net, end_points


def inception_resnet_v2(images, num_classes=1001, is_training=False, dropout_keep_prob=0.8,
                        create_aux_logits=True, activation_fn=tf.nn.relu,
                        scope="InceptionResnetV2"):
    """Inception-ResNet-v2 classifier.

    Args:
      images: ``[batch, height, width, 3]``; 299x299 by default, at least 107x107 with the
        auxiliary head.
      num_classes: classifier width; 0 or None returns the pooled ``[batch, 1536]`` features.
      is_training: batch-norm statistics and dropout in training mode.
      dropout_keep_prob: keep probability before the classifier.
      create_aux_logits: build the auxiliary classifier on PreAuxLogits (``AuxLogits``).
      activation_fn: activation of the residual blocks.
      scope: variable scope.

    Returns:
      ``(logits or features, end_points)``.
    """
    with tf.variable_scope(scope, "InceptionResnetV2", [images]) as sc:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_resnet_v2_base(images, activation_fn, scope=sc)
            if create_aux_logits and num_classes:
                with tf.variable_scope("AuxLogits"):
                    aux = slim.avg_pool2d(end_points["PreAuxLogits"], 5, stride=3,
                                          padding="VALID", scope="Conv2d_1a_3x3")
                    aux = slim.conv2d(aux, 128, 1, scope="Conv2d_1b_1x1")
                    aux = slim.conv2d(aux, 768, aux.shape[1:3].as_list(), padding="VALID",
                                      scope="Conv2d_2a_5x5")
                    aux = slim.flatten(aux)
                    end_points["AuxLogits"] = slim.fully_connected(
                        aux, num_classes, activation_fn=None, scope="Logits")
            with tf.variable_scope("Logits"):
                net = end_points["global_pool"] = global_average(net, "AvgPool_1a_8x8")
                if not num_classes:
                    return pooled_features(net), end_points
                net = slim.flatten(net)
                net = end_points["PreLogitsFlatten"] = slim.dropout(
                    net, dropout_keep_prob, scope="Dropout")
                logits = slim.fully_connected(net, num_classes, activation_fn=None,
                                              scope="Logits")
    end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return add_classifier_end_points(logits, end_points)


inception_resnet_v2.default_image_size = 299


def inception_resnet_v2_arg_scope(weight_decay=0.00004, batch_norm_decay=0.9997,
                                  batch_norm_epsilon=0.001):
    """TF-slim's Inception-ResNet-v2 hyper-parameters (L2 on weights and biases)."""
    return inception_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon,
                               regularize_biases=True)
