"""Inception v2 (Ioffe and Szegedy 2015, batch-normalised Inception), TF-slim's
``nets.inception_v2``.

The trunk is a table built by one small engine; beyond tf-slim 1.1.0 it has
``use_separable_conv``, ``data_format``, ``include_root_block``, ``global_pool`` and feature
mode (``num_classes`` 0/None).
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets import _inception_base, inception_utils
from images.models.nets._blocks import (avg_pool, conv, max_pool, pooled_logits,
                                        reduced_kernel_size_for_small_input, trunc_normal)

_reduced_kernel_size_for_small_input = reduced_kernel_size_for_small_input

# The 1x1 reductions before 3x3s start from a truncated normal of 0.09, the pool projections
# from 0.1 (the initialisers slim trains these networks with).
_ROOT_AFTER_CONV1 = [("MaxPool_2a_3x3", max_pool(3, None, stride=2)),
                     ("Conv2d_2b_1x1", conv(64, 1, None, stddev=0.1)),
                     ("Conv2d_2c_3x3", conv(192, 3, None)),
                     ("MaxPool_3a_3x3", max_pool(3, None, stride=2))]


def _block(b0, b1a, b1b, b2a, b2b, b3, pool=avg_pool):
    pool_name = "AvgPool_0a_3x3" if pool is avg_pool else "MaxPool_0a_3x3"
    return [[conv(b0, 1, "Conv2d_0a_1x1")],
            [conv(b1a, 1, "Conv2d_0a_1x1", stddev=0.09), conv(b1b, 3, "Conv2d_0b_3x3")],
            [conv(b2a, 1, "Conv2d_0a_1x1", stddev=0.09), conv(b2b, 3, "Conv2d_0b_3x3"),
             conv(b2b, 3, "Conv2d_0c_3x3")],
            [pool(3, pool_name), conv(b3, 1, "Conv2d_0b_1x1", stddev=0.1)]]


def _reduction(b0a, b0b, b1a, b1b):
    return [[conv(b0a, 1, "Conv2d_0a_1x1", stddev=0.09),
             conv(b0b, 3, "Conv2d_1a_3x3", stride=2)],
            [conv(b1a, 1, "Conv2d_0a_1x1", stddev=0.09), conv(b1b, 3, "Conv2d_0b_3x3"),
             conv(b1b, 3, "Conv2d_1a_3x3", stride=2)],
            [max_pool(3, "MaxPool_1a_3x3", stride=2)]]


_MIXED = [("Mixed_3b", _block(64, 64, 64, 64, 96, 32)),
          ("Mixed_3c", _block(64, 64, 96, 64, 96, 64)),
          ("Mixed_4a", _reduction(128, 160, 64, 96)),
          ("Mixed_4b", _block(224, 64, 96, 96, 128, 128)),
          ("Mixed_4c", _block(192, 96, 128, 96, 128, 128)),
          ("Mixed_4d", _block(160, 128, 160, 128, 160, 96)),
          ("Mixed_4e", _block(96, 128, 192, 160, 192, 96)),
          ("Mixed_5a", _reduction(128, 192, 192, 256)),
          ("Mixed_5b", _block(352, 192, 320, 160, 224, 128)),
          ("Mixed_5c", _block(352, 192, 320, 192, 224, 128, pool=max_pool))]


def inception_v2_base(inputs, final_endpoint='Mixed_5c', min_depth=16, depth_multiplier=1.0,
                      use_separable_conv=True, data_format='NHWC', include_root_block=True,
                      scope=None):
    """The Inception v2 trunk up to ``final_endpoint``.

    Args:
      inputs: ``[batch, height, width, channels]`` (any size from 32x32).
      final_endpoint: one of 'Conv2d_1a_7x7', 'MaxPool_2a_3x3', 'Conv2d_2b_1x1',
        'Conv2d_2c_3x3', 'MaxPool_3a_3x3' (only with ``include_root_block``), 'Mixed_3b',
        'Mixed_3c', 'Mixed_4a' .. 'Mixed_4e', 'Mixed_5a', 'Mixed_5b', 'Mixed_5c'.
      min_depth: smallest depth after ``depth_multiplier``.
      depth_multiplier: multiplier of every convolution's depth (> 0).
      use_separable_conv: the first 7x7 convolution is separable (as in the checkpoint).
      data_format: 'NHWC' or 'NCHW' (NCHW needs ``use_separable_conv=False``).
      include_root_block: build the layers before Mixed_3b.
      scope: variable scope (default 'InceptionV2').

    Returns:
      ``(net, end_points)``.

    Raises:
      ValueError: unknown ``final_endpoint``, ``depth_multiplier`` <= 0, a bad
        ``data_format`` or NCHW with a separable first convolution.
    """
    if depth_multiplier <= 0:
        raise ValueError('depth_multiplier is not greater than zero.')
    if data_format not in ('NHWC', 'NCHW'):
        raise ValueError('data_format must be either NHWC or NCHW.')
    if data_format == 'NCHW' and use_separable_conv:
        raise ValueError('separable convolution only supports NHWC layout. NCHW data format '
                         'can only be used when use_separable_conv is False.')

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    steps = list(_MIXED)
    if include_root_block:
        steps = [("Conv2d_1a_7x7", _FirstConv(depth, use_separable_conv))] + (
            _ROOT_AFTER_CONV1 + steps)
    return _inception_base.build(
        inputs, steps, final_endpoint, scope, 'InceptionV2', depth=depth,
        concat_axis=3 if data_format == 'NHWC' else 1,
        arg_scopes=[([slim.conv2d, slim.max_pool2d, slim.avg_pool2d],
                     {"stride": 1, "padding": "SAME", "data_format": data_format})])


class _FirstConv:
    """Conv2d_1a_7x7: separable (its depthwise multiplier capped at 8) or a plain 7x7."""

    def __init__(self, depth, separable):
        self.depth, self.separable = depth, separable

    def __call__(self, net, name):
        if self.separable:
            # in_channels * depthwise multiplier must not exceed the output depth.
            multiplier = min(int(self.depth(64) / 3), 8)
            return slim.separable_conv2d(net, self.depth(64), [7, 7],
                                         depth_multiplier=multiplier, stride=2,
                                         padding='SAME', weights_initializer=trunc_normal(1.0),
                                         scope=name)
        return slim.conv2d(net, self.depth(64), [7, 7], stride=2,
                           weights_initializer=trunc_normal(1.0), scope=name)


def inception_v2(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.8,
                 min_depth=16, depth_multiplier=1.0, prediction_fn=slim.softmax,
                 spatial_squeeze=True, reuse=None, scope='InceptionV2', global_pool=False):
    """Inception v2 classifier.

    Args:
      inputs: ``[batch, height, width, channels]``, 224x224 by default.
      num_classes: number of classes; 0 or None returns the pooled features before dropout
        (``AvgPool_1a``, ``[batch, 1, 1, 1024]`` at 224x224).
      is_training: batch norm and dropout in training mode.
      dropout_keep_prob: keep probability before the classifier.
      min_depth: smallest depth after ``depth_multiplier``.
      depth_multiplier: multiplier of every convolution's depth (> 0).
      prediction_fn: turns the logits into ``end_points['Predictions']``.
      spatial_squeeze: logits ``[batch, classes]`` rather than ``[batch, 1, 1, classes]``.
      reuse: reuse the variables of ``scope``.
      scope: variable scope.
      global_pool: average the whole last map instead of a (at most) 7x7 window.

    Returns:
      ``(logits or features, end_points)``.

    Raises:
      ValueError: ``depth_multiplier`` <= 0.
    """
    if depth_multiplier <= 0:
        raise ValueError('depth_multiplier is not greater than zero.')
    with tf.variable_scope(scope, 'InceptionV2', [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v2_base(inputs, scope=scope, min_depth=min_depth,
                                                depth_multiplier=depth_multiplier)
            with tf.variable_scope('Logits'):
                net = pooled_logits(net, end_points, num_classes, dropout_keep_prob,
                                    spatial_squeeze, global_pool, [7, 7])
                if not num_classes:
                    return net, end_points
            logits = net
            end_points['Logits'] = logits
            end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points


inception_v2.default_image_size = 224

inception_v2_arg_scope = inception_utils.inception_arg_scope
