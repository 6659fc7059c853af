"""MobileNet v1 (Howard et al. 2017), with the variable names of TF-slim's ``MobilenetV1``
checkpoints (``MobilenetV1/Conv2d_<i>_depthwise/depthwise_weights``, ...).

A full 3x3 convolution, then 13 depthwise-separable layers (3x3 depthwise + 1x1 pointwise, each
with batch norm and ReLU6); the width multiplier scales every layer's depth (at least 8).
"""
import collections

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.common import add_classifier_end_points, pooled_features

# kind: 'conv' (full convolution) or 'sep' (depthwise-separable); stride; depth at multiplier 1.
Layer = collections.namedtuple("Layer", ["kind", "stride", "depth"])

LAYERS = ((Layer("conv", 2, 32),)
          + tuple(Layer("sep", s, d) for s, d in (
              (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
              (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))))


def mobilenet_v1_base(images, depth_multiplier=1.0, min_depth=8, scope="MobilenetV1"):
    """The 14 layers (Conv2d_0 .. Conv2d_13_pointwise); returns ``(net, end_points)``."""
    if depth_multiplier <= 0:
        raise ValueError("depth_multiplier must be > 0, got %r" % depth_multiplier)

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    end_points = {}
    with tf.variable_scope(scope, "MobilenetV1", [images]):
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding="SAME"):
            net = images
            for i, layer in enumerate(LAYERS):
                if layer.kind == "conv":
                    name = "Conv2d_%d" % i
                    net = end_points[name] = slim.conv2d(net, depth(layer.depth), [3, 3],
                                                         stride=layer.stride, scope=name)
                    continue
                name = "Conv2d_%d_depthwise" % i
                # num_outputs=None: depthwise only (one 3x3 filter per channel).
                net = end_points[name] = slim.separable_conv2d(
                    net, None, [3, 3], depth_multiplier=1, stride=layer.stride, scope=name)
                name = "Conv2d_%d_pointwise" % i
                net = end_points[name] = slim.conv2d(net, depth(layer.depth), [1, 1], stride=1,
                                                     scope=name)
    return net, end_points


def _reduced_kernel(net, kernel):
    """The 7x7 pooling window, shrunk to the map when the input is smaller than 224."""
    shape = net.shape.as_list()
    if shape[1] is None or shape[2] is None:
        return kernel
    return [min(shape[1], kernel[0]), min(shape[2], kernel[1])]


def mobilenet_v1(images, num_classes=1001, is_training=False, dropout_keep_prob=0.999,
                 depth_multiplier=1.0, min_depth=8, spatial_squeeze=True, global_pool=False,
                 scope="MobilenetV1"):
    """MobileNet v1 classifier.

    Args:
      images: ``[batch, height, width, 3]``, 224x224 by default.
      num_classes: classifier width; 0 or None returns the pooled ``[batch, depth]`` features.
      is_training: batch-norm statistics and dropout in training mode.
      dropout_keep_prob: keep probability before the classifier.
      depth_multiplier: width multiplier (1.0, 0.75, 0.5, 0.25 published).
      min_depth: smallest layer depth after the multiplier.
      spatial_squeeze: logits ``[batch, classes]`` instead of ``[batch, 1, 1, classes]``.
      global_pool: average the whole final map (any input size) instead of a 7x7 window.
      scope: variable scope.

    Returns:
      ``(logits or features, end_points)``.
    """
    if images.shape.ndims != 4:
        raise ValueError("MobileNet expects [batch, height, width, channels], got %s"
                         % images.shape)
    with tf.variable_scope(scope, "MobilenetV1", [images]) as sc:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = mobilenet_v1_base(images, depth_multiplier, min_depth, scope=sc)
            with tf.variable_scope("Logits"):
                if global_pool:
                    net = end_points["global_pool"] = tf.reduce_mean(
                        net, [1, 2], keepdims=True, name="global_pool")
                else:
                    net = end_points["AvgPool_1a"] = slim.avg_pool2d(
                        net, _reduced_kernel(net, [7, 7]), padding="VALID", scope="AvgPool_1a")
                if not num_classes:
                    return pooled_features(net), end_points
                net = slim.dropout(net, keep_prob=dropout_keep_prob, scope="Dropout_1b")
                logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                     normalizer_fn=None, scope="Conv2d_1c_1x1")
                if spatial_squeeze:
                    logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
    return add_classifier_end_points(logits, end_points)


mobilenet_v1.default_image_size = 224


def mobilenet_v1_arg_scope(weight_decay=0.00004, stddev=0.09, regularize_depthwise=False,
                           batch_norm_decay=0.9997, batch_norm_epsilon=0.001):
    """Batch norm (with scale) and ReLU6 after every convolution; L2 on the full convolutions."""
    batch_norm_params = {"center": True, "scale": True, "decay": batch_norm_decay,
                         "epsilon": batch_norm_epsilon,
                         "updates_collections": tf.GraphKeys.UPDATE_OPS}
    regularizer = slim.l2_regularizer(weight_decay)
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                        weights_initializer=tf.truncated_normal_initializer(stddev=stddev),
                        activation_fn=tf.nn.relu6, normalizer_fn=slim.batch_norm):
        with slim.arg_scope([slim.batch_norm], **batch_norm_params):
            with slim.arg_scope([slim.conv2d], weights_regularizer=regularizer):
                with slim.arg_scope([slim.separable_conv2d], weights_regularizer=(
                        regularizer if regularize_depthwise else None)) as sc:
                    return sc
