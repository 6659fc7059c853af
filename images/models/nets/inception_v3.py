"""Inception v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture"), TF-slim's
``nets.inception_v3``.

The trunk is tf-slim's own ``inception_v3_base`` (it has slim's signature); the classifier and
auxiliary head are built here, with what tf-slim 1.1.0 lacks: ``global_pool`` and feature mode
(``num_classes`` 0/None).
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim
from tf_slim.nets.inception_v3 import inception_v3_base  # noqa: F401  (slim's, unchanged)

from images.models.nets import inception_utils
from images.models.nets._blocks import (pooled_logits, reduced_kernel_size_for_small_input,
                                        trunc_normal)

_reduced_kernel_size_for_small_input = reduced_kernel_size_for_small_input


def inception_v3(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.8,
                 min_depth=16, depth_multiplier=1.0, prediction_fn=slim.softmax,
                 spatial_squeeze=True, reuse=None, create_aux_logits=True, scope='InceptionV3',
                 global_pool=False):
    """Inception v3 classifier, with the auxiliary head on Mixed_6e.

    Args:
      inputs: ``[batch, height, width, channels]``, 299x299 by default (at least 107x107 with
        the auxiliary head, whose 5x5 pooling needs a 5x5 Mixed_6e).
      num_classes: number of classes; 0 or None returns the pooled features before dropout
        (``AvgPool_1a``, ``[batch, 1, 1, 2048]`` at 299x299) and builds no auxiliary head.
      is_training: batch norm and dropout in training mode.
      dropout_keep_prob: keep probability before the classifier.
      min_depth: smallest depth after ``depth_multiplier``.
      depth_multiplier: multiplier of every convolution's depth (> 0).
      prediction_fn: turns the logits into ``end_points['Predictions']``.
      spatial_squeeze: logits ``[batch, classes]`` rather than ``[batch, 1, 1, classes]``.
      reuse: reuse the variables of ``scope``.
      create_aux_logits: build ``AuxLogits``.
      scope: variable scope.
      global_pool: average the whole last map instead of a (at most) 8x8 window.

    Returns:
      ``(logits or features, end_points)``.

    Raises:
      ValueError: ``depth_multiplier`` <= 0.
    """
    if depth_multiplier <= 0:
        raise ValueError('depth_multiplier is not greater than zero.')

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    with tf.variable_scope(scope, 'InceptionV3', [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v3_base(inputs, scope=scope, min_depth=min_depth,
                                                depth_multiplier=depth_multiplier)
            if create_aux_logits and num_classes:
                with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d],
                                    stride=1, padding='SAME'), \
                        tf.variable_scope('AuxLogits'):
                    aux = slim.avg_pool2d(end_points['Mixed_6e'], [5, 5], stride=3,
                                          padding='VALID', scope='AvgPool_1a_5x5')
                    aux = slim.conv2d(aux, depth(128), [1, 1], scope='Conv2d_1b_1x1')
                    kernel = reduced_kernel_size_for_small_input(aux, [5, 5])
                    aux = slim.conv2d(aux, depth(768), kernel,
                                      weights_initializer=trunc_normal(0.01), padding='VALID',
                                      scope='Conv2d_2a_{}x{}'.format(*kernel))
                    aux = slim.conv2d(aux, num_classes, [1, 1], activation_fn=None,
                                      normalizer_fn=None, weights_initializer=trunc_normal(0.001),
                                      scope='Conv2d_2b_1x1')
                    if spatial_squeeze:
                        aux = tf.squeeze(aux, [1, 2], name='SpatialSqueeze')
                    end_points['AuxLogits'] = aux
            with tf.variable_scope('Logits'):
                net = pooled_logits(net, end_points, num_classes, dropout_keep_prob,
                                    spatial_squeeze, global_pool, [8, 8], 'GlobalPool')
                if not num_classes:
                    return net, end_points
            logits = net
            end_points['Logits'] = logits
            end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points


inception_v3.default_image_size = 299

inception_v3_arg_scope = inception_utils.inception_arg_scope
