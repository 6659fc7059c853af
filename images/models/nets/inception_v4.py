"""Inception-v4 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning"), TF-slim's ``nets.inception_v4``.

Stem (Conv2d_1a..2b, Mixed_3a..5a), 4 Inception-A (Mixed_5b..5e), Reduction-A (Mixed_6a), 7
Inception-B (Mixed_6b..6h), Reduction-B (Mixed_7a), 3 Inception-C (Mixed_7b..7d); the auxiliary
classifier on Mixed_6h.  35x35x384 -> 17x17x1024 -> 8x8x1536 at 299x299.  The blocks are tables
(the published checkpoint's scope names) built by :mod:`images.models.nets._blocks`.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets import _blocks, _inception_base, inception_utils
from images.models.nets._blocks import avg_pool, conv, fork, max_pool

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


_SAME = ([slim.conv2d, slim.avg_pool2d, slim.max_pool2d], {"stride": 1, "padding": "SAME"})


def _block(branches, default_name):
    def block(inputs, scope=None, reuse=None):
        with slim.arg_scope(_SAME[0], **_SAME[1]), \
                tf.variable_scope(scope, default_name, [inputs], reuse=reuse):
            return _blocks.branches(inputs, branches)
    return block


block_inception_a = _block(_INCEPTION_A, 'BlockInceptionA')
block_reduction_a = _block(_REDUCTION_A, 'BlockReductionA')
block_inception_b = _block(_INCEPTION_B, 'BlockInceptionB')
block_reduction_b = _block(_REDUCTION_B, 'BlockReductionB')
block_inception_c = _block(_INCEPTION_C, 'BlockInceptionC')
for _fn, _what in ((block_inception_a, "Inception-A"), (block_reduction_a, "Reduction-A"),
                   (block_inception_b, "Inception-B"), (block_reduction_b, "Reduction-B"),
                   (block_inception_c, "Inception-C")):
    _fn.__doc__ = "Builds the %s block of Inception v4 (``scope``, ``reuse`` as slim)." % _what
    _fn.__name__ = "block_" + _what.lower().replace("-", "_")


def _step(block):
    return lambda net, name: block(net, name)


_STEPS = ([(layer.name, layer._replace(name=None)) for layer in _STEM]
          + [("Mixed_3a", _MIXED_3A), ("Mixed_4a", _MIXED_4A), ("Mixed_5a", _MIXED_5A)]
          + [("Mixed_5" + c, _step(block_inception_a)) for c in "bcde"]
          + [("Mixed_6a", _step(block_reduction_a))]
          + [("Mixed_6" + c, _step(block_inception_b)) for c in "bcdefgh"]
          + [("Mixed_7a", _step(block_reduction_b))]
          + [("Mixed_7" + c, _step(block_inception_c)) for c in "bcd"])


def inception_v4_base(inputs, final_endpoint='Mixed_7d', scope=None):
    """The Inception v4 trunk up to ``final_endpoint``.

    Args:
      inputs: ``[batch, height, width, 3]``.
      final_endpoint: one of 'Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'Mixed_3a',
        'Mixed_4a', 'Mixed_5a' .. 'Mixed_5e', 'Mixed_6a' .. 'Mixed_6h', 'Mixed_7a' ..
        'Mixed_7d'.
      scope: variable scope (default 'InceptionV4').

    Returns:
      ``(net, end_points)``.

    Raises:
      ValueError: unknown ``final_endpoint``.
    """
    return _inception_base.build(inputs, _STEPS, final_endpoint, scope, 'InceptionV4',
                                 arg_scopes=[_SAME])


def inception_v4(inputs, num_classes=1001, is_training=True, dropout_keep_prob=0.8,
                 reuse=None, scope='InceptionV4', create_aux_logits=True):
    """Inception v4 classifier.

    Args:
      inputs: ``[batch, height, width, 3]``, 299x299 by default (at least 107x107 with the
        auxiliary head, whose 5x5 pooling needs a 5x5 Mixed_6h).
      num_classes: number of classes; 0 or None returns the pooled features before dropout
        (``global_pool``, ``[batch, 1, 1, 1536]``) and builds no auxiliary head.
      is_training: batch norm and dropout in training mode.
      dropout_keep_prob: keep probability before the classifier.
      reuse: reuse the variables of ``scope``.
      scope: variable scope.
      create_aux_logits: build ``AuxLogits``.

    Returns:
      ``(logits or features, end_points)``.
    """
    with tf.variable_scope(scope, 'InceptionV4', [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v4_base(inputs, scope=scope)
            with slim.arg_scope(_SAME[0], **_SAME[1]):
                if create_aux_logits and num_classes:
                    with tf.variable_scope('AuxLogits'):
                        aux = slim.avg_pool2d(end_points['Mixed_6h'], [5, 5], stride=3,
                                              padding='VALID', scope='AvgPool_1a_5x5')
                        aux = slim.conv2d(aux, 128, [1, 1], scope='Conv2d_1b_1x1')
                        aux = slim.conv2d(aux, 768, aux.get_shape()[1:3], padding='VALID',
                                          scope='Conv2d_2a')
                        aux = slim.flatten(aux)
                        end_points['AuxLogits'] = slim.fully_connected(
                            aux, num_classes, activation_fn=None, scope='Aux_logits')
                with tf.variable_scope('Logits'):
                    kernel = net.get_shape()[1:3]
                    if kernel.is_fully_defined():
                        net = slim.avg_pool2d(net, kernel, padding='VALID', scope='AvgPool_1a')
                    else:
                        net = tf.reduce_mean(net, [1, 2], keepdims=True, name='global_pool')
                    end_points['global_pool'] = net
                    if not num_classes:
                        return net, end_points
                    net = slim.dropout(net, dropout_keep_prob, scope='Dropout_1b')
                    net = slim.flatten(net, scope='PreLogitsFlatten')
                    end_points['PreLogitsFlatten'] = net
                    logits = slim.fully_connected(net, num_classes, activation_fn=None,
                                                  scope='Logits')
                    end_points['Logits'] = logits
                    end_points['Predictions'] = tf.nn.softmax(logits, name='Predictions')
    return logits, end_points


inception_v4.default_image_size = 299

inception_v4_arg_scope = inception_utils.inception_arg_scope
