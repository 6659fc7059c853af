"""MobileNet v2 (Sandler et al. 2018, inverted residuals and linear bottlenecks), with the
variable names of TF-slim's ``MobilenetV2`` checkpoints (``MobilenetV2/expanded_conv_1/expand``,
``.../depthwise``, ``.../project``, ``MobilenetV2/Conv_1``, ``MobilenetV2/Logits/Conv2d_1c_1x1``).

Layer 1 is a 3x3 convolution to 32; layers 2..18 are bottlenecks (1x1 expansion by 6 — none in
the first — , 3x3 depthwise, linear 1x1 projection, residual when shapes allow); layer 19 is a 1x1
convolution to 1280.  The width multiplier rounds depths to multiples of 8; below 1.0 the last
layer stays at 1280 (slim's ``finegrain_classification_mode``, used by the published 0.35 model).
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.common import add_classifier_end_points, pooled_features

# (expansion factor, stride, output depth) of the 17 bottlenecks.
BOTTLENECKS = ((1, 1, 16),
               (6, 2, 24), (6, 1, 24),
               (6, 2, 32), (6, 1, 32), (6, 1, 32),
               (6, 2, 64), (6, 1, 64), (6, 1, 64), (6, 1, 64),
               (6, 1, 96), (6, 1, 96), (6, 1, 96),
               (6, 2, 160), (6, 1, 160), (6, 1, 160),
               (6, 1, 320))
FIRST_DEPTH = 32
LAST_DEPTH = 1280


def make_divisible(value, divisor=8, min_value=None):
    """Nearest multiple of ``divisor`` to ``value`` (at least ``min_value``), never 10% below."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _bottleneck(net, expansion, stride, depth, expansion_divisor, scope):
    """Inverted residual: expand (if wider), depthwise 3x3, linear projection, shortcut."""
    in_depth = int(net.shape[3])
    inner = make_divisible(in_depth * expansion, expansion_divisor)
    with tf.variable_scope(scope, values=[net]):
        shortcut = net
        if inner > in_depth:
            net = slim.conv2d(net, inner, [1, 1], scope="expand")
        net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=1, stride=stride,
                                    scope="depthwise")
        net = slim.conv2d(net, depth, [1, 1], activation_fn=tf.identity, scope="project")
        if stride == 1 and depth == in_depth:
            net = net + shortcut
        return tf.identity(net, name="output")


def mobilenet_v2_base(images, depth_multiplier=1.0, finegrain_classification_mode=False,
                      scope="MobilenetV2"):
    """Layers 1..19 (to the 1x1x1280 convolution); returns ``(net, end_points)``."""
    if depth_multiplier <= 0:
        raise ValueError("depth_multiplier must be > 0, got %r" % depth_multiplier)

    def depth(d):
        return make_divisible(d * depth_multiplier, 8, 8)

    last = LAST_DEPTH
    if finegrain_classification_mode and depth_multiplier < 1:
        last = LAST_DEPTH / depth_multiplier  # the multiplier then brings it back to 1280
    end_points = {}
    with tf.variable_scope(scope, "MobilenetV2", [images]):
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding="SAME"):
            net = end_points["layer_1"] = slim.conv2d(images, depth(FIRST_DEPTH), [3, 3],
                                                      stride=2, scope="Conv")
            for i, (expansion, stride, out) in enumerate(BOTTLENECKS):
                name = "expanded_conv" if i == 0 else "expanded_conv_%d" % i
                # The first bottleneck's "expansion" by 1 is not rounded to a multiple of 8.
                net = end_points["layer_%d" % (i + 2)] = _bottleneck(
                    net, expansion, stride, depth(out), 1 if i == 0 else 8, name)
            net = end_points["layer_%d" % (len(BOTTLENECKS) + 2)] = slim.conv2d(
                net, depth(last), [1, 1], stride=1, scope="Conv_1")
    return net, end_points


def mobilenet_v2(images, num_classes=1001, is_training=False, dropout_keep_prob=0.8,
                 depth_multiplier=1.0, finegrain_classification_mode=False,
                 scope="MobilenetV2"):
    """MobileNet v2 classifier.

    Args:
      images: ``[batch, height, width, 3]``, 224x224 by default (any size: global pooling).
      num_classes: classifier width; 0 or None returns the pooled ``[batch, depth]`` features.
      is_training: batch-norm statistics and dropout in training mode.
      dropout_keep_prob: keep probability before the classifier.
      depth_multiplier: width multiplier (1.0, 1.4, 0.35 published).
      finegrain_classification_mode: keep the last layer at 1280 for multipliers below 1.
      scope: variable scope.

    Returns:
      ``(logits or features, end_points)``.
    """
    with tf.variable_scope(scope, "MobilenetV2", [images]) as sc:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = mobilenet_v2_base(images, depth_multiplier,
                                                finegrain_classification_mode, scope=sc)
            net = tf.identity(net, name="embedding")
            with tf.variable_scope("Logits"):
                net = end_points["global_pool"] = tf.reduce_mean(
                    net, [1, 2], keepdims=True, name="global_pool")
                if not num_classes:
                    return pooled_features(net), end_points
                net = slim.dropout(net, keep_prob=dropout_keep_prob, scope="Dropout")
                logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                     normalizer_fn=None,
                                     biases_initializer=tf.zeros_initializer(),
                                     scope="Conv2d_1c_1x1")
                logits = tf.squeeze(logits, [1, 2], name="output")
    return add_classifier_end_points(logits, end_points)


mobilenet_v2.default_image_size = 224


def mobilenet_v2_arg_scope(weight_decay=0.00004, stddev=0.09, batch_norm_decay=0.997):
    """slim's MobileNet v2 training scope: batch norm and ReLU6 after every convolution, L2 on
    the full convolutions and the classifier, none on the depthwise filters."""
    regularizer = slim.l2_regularizer(weight_decay)
    with slim.arg_scope([slim.conv2d, slim.fully_connected, slim.separable_conv2d],
                        weights_initializer=tf.truncated_normal_initializer(stddev=stddev),
                        normalizer_fn=slim.batch_norm, activation_fn=tf.nn.relu6):
        with slim.arg_scope([slim.batch_norm], center=True, scale=True, decay=batch_norm_decay,
                            updates_collections=tf.GraphKeys.UPDATE_OPS):
            with slim.arg_scope([slim.conv2d, slim.fully_connected],
                                weights_regularizer=regularizer):
                with slim.arg_scope([slim.separable_conv2d], weights_regularizer=None) as sc:
                    return sc
