"""Inception v1 (GoogLeNet; Szegedy et al. 2014, "Going deeper with convolutions"), TF-slim's
``nets.inception_v1``.

The trunk is a table (``_ROOT`` and ``_MIXED``) built by one small engine; the classifier
follows slim's (``Logits/AvgPool_0a_7x7``, ``Logits/Conv2d_0c_1x1``, ``Logits/Predictions``).
Beyond tf-slim 1.1.0 it has ``global_pool``, ``include_root_block`` and feature mode
(``num_classes`` 0/None).
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets import _inception_base, inception_utils
from images.models.nets._blocks import conv, max_pool, trunc_normal

_ROOT = [("Conv2d_1a_7x7", conv(64, 7, None, stride=2)),
         ("MaxPool_2a_3x3", max_pool(3, None, stride=2)),
         ("Conv2d_2b_1x1", conv(64, 1, None)),
         ("Conv2d_2c_3x3", conv(192, 3, None)),
         ("MaxPool_3a_3x3", max_pool(3, None, stride=2))]


def _block(b0, b1a, b1b, b2a, b2b, b3, b2b_name="Conv2d_0b_3x3"):
    return [[conv(b0, 1, "Conv2d_0a_1x1")],
            [conv(b1a, 1, "Conv2d_0a_1x1"), conv(b1b, 3, "Conv2d_0b_3x3")],
            [conv(b2a, 1, "Conv2d_0a_1x1"), conv(b2b, 3, b2b_name)],
            [max_pool(3, "MaxPool_0a_3x3"), conv(b3, 1, "Conv2d_0b_1x1")]]


# Mixed_5b's second 3x3 is named Conv2d_0a_3x3 in slim's checkpoints.
_MIXED = [("Mixed_3b", _block(64, 96, 128, 16, 32, 32)),
          ("Mixed_3c", _block(128, 128, 192, 32, 96, 64)),
          ("MaxPool_4a_3x3", max_pool(3, None, stride=2)),
          ("Mixed_4b", _block(192, 96, 208, 16, 48, 64)),
          ("Mixed_4c", _block(160, 112, 224, 24, 64, 64)),
          ("Mixed_4d", _block(128, 128, 256, 24, 64, 64)),
          ("Mixed_4e", _block(112, 144, 288, 32, 64, 64)),
          ("Mixed_4f", _block(256, 160, 320, 32, 128, 128)),
          ("MaxPool_5a_2x2", max_pool(2, None, stride=2)),
          ("Mixed_5b", _block(256, 160, 320, 32, 128, 128, b2b_name="Conv2d_0a_3x3")),
          ("Mixed_5c", _block(384, 192, 384, 48, 128, 128))]


def inception_v1_base(inputs, final_endpoint='Mixed_5c', include_root_block=True,
                      scope='InceptionV1'):
    """The Inception v1 trunk up to ``final_endpoint``.

    Args:
      inputs: ``[batch, height, width, channels]``.
      final_endpoint: one of 'Conv2d_1a_7x7', 'MaxPool_2a_3x3', 'Conv2d_2b_1x1',
        'Conv2d_2c_3x3', 'MaxPool_3a_3x3' (only with ``include_root_block``), 'Mixed_3b',
        'Mixed_3c', 'MaxPool_4a_3x3', 'Mixed_4b' .. 'Mixed_4f', 'MaxPool_5a_2x2', 'Mixed_5b',
        'Mixed_5c'.
      include_root_block: build the convolutions and poolings before Mixed_3b.
      scope: variable scope.

    Returns:
      ``(net, end_points)``.

    Raises:
      ValueError: unknown ``final_endpoint``.
    """
    steps = (_ROOT if include_root_block else []) + _MIXED
    arg_scopes = [([slim.conv2d, slim.fully_connected], {"weights_initializer": trunc_normal(0.01)}),
                  ([slim.conv2d, slim.max_pool2d], {"stride": 1, "padding": "SAME"})]
    return _inception_base.build(inputs, steps, final_endpoint, scope, 'InceptionV1',
                                 arg_scopes=arg_scopes)


def inception_v1(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.8,
                 prediction_fn=slim.softmax, spatial_squeeze=True, reuse=None,
                 scope='InceptionV1', global_pool=False):
    """Inception v1 classifier.

    Args:
      inputs: ``[batch, height, width, channels]``, 224x224 by default.
      num_classes: number of classes; 0 or None returns the pooled features before dropout
        (``Logits/AvgPool_0a_7x7``, ``[batch, 1, 1, 1024]`` at 224x224).
      is_training: batch norm and dropout in training mode.
      dropout_keep_prob: keep probability before the classifier.
      prediction_fn: turns the logits into ``end_points['Predictions']``.
      spatial_squeeze: logits ``[batch, classes]`` rather than ``[batch, 1, 1, classes]``.
      reuse: reuse the variables of ``scope``.
      scope: variable scope.
      global_pool: average the whole last map (any input size) instead of a 7x7 window.

    Returns:
      ``(logits or features, end_points)``.
    """
    with tf.variable_scope(scope, 'InceptionV1', [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v1_base(inputs, scope=scope)
            with tf.variable_scope('Logits'):
                if global_pool:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name='global_pool')
                    end_points['global_pool'] = net
                else:
                    net = slim.avg_pool2d(net, [7, 7], stride=1, scope='AvgPool_0a_7x7')
                    end_points['AvgPool_0a_7x7'] = net
                if not num_classes:
                    return net, end_points
                net = slim.dropout(net, dropout_keep_prob, scope='Dropout_0b')
                logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                     normalizer_fn=None, scope='Conv2d_0c_1x1')
                if spatial_squeeze:
                    logits = tf.squeeze(logits, [1, 2], name='SpatialSqueeze')
                end_points['Logits'] = logits
                end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points


inception_v1.default_image_size = 224

inception_v1_arg_scope = inception_utils.inception_arg_scope

