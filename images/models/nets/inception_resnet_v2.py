"""Inception-ResNet-v2 (Szegedy et al. 2016), TF-slim's ``nets.inception_resnet_v2``.

Stem to 35x35x320 (Mixed_5b), 10 x block35 (``Repeat/block35_<i>``, scale 0.17), Reduction-A
(Mixed_6a, 17x17x1088), 20 x block17 (``Repeat_1``, scale 0.10) ending at ``PreAuxLogits``,
Reduction-B (Mixed_7a, 8x8x2080), 9 x block8 (``Repeat_2``, scale 0.20), a last block8 without
activation (``Block8``) and a 1x1 convolution to 1536 (``Conv2d_7b_1x1``).  The blocks are
tables built by :mod:`images.models.nets._blocks`; the scope names are the published
checkpoint's.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets import _blocks
from images.models.nets._blocks import avg_pool, conv, max_pool

_BLOCK35 = [
    [conv(32, 1, "Conv2d_1x1")],
    [conv(32, 1, "Conv2d_0a_1x1"), conv(32, 3, "Conv2d_0b_3x3")],
    [conv(32, 1, "Conv2d_0a_1x1"), conv(48, 3, "Conv2d_0b_3x3"), conv(64, 3, "Conv2d_0c_3x3")],
]
_BLOCK17 = [
    [conv(192, 1, "Conv2d_1x1")],
    [conv(128, 1, "Conv2d_0a_1x1"), conv(160, (1, 7), "Conv2d_0b_1x7"),
     conv(192, (7, 1), "Conv2d_0c_7x1")],
]
_BLOCK8 = [
    [conv(192, 1, "Conv2d_1x1")],
    [conv(192, 1, "Conv2d_0a_1x1"), conv(224, (1, 3), "Conv2d_0b_1x3"),
     conv(256, (3, 1), "Conv2d_0c_3x1")],
]


def _residual(net, branches, scale, activation_fn, scope, reuse, default_name):
    """``act(net + scale * Conv2d_1x1(concat(branches)))``; relu6 clips the scaled residual."""
    with tf.variable_scope(scope, default_name, [net], reuse=reuse):
        mixed = _blocks.branches(net, branches)
        up = slim.conv2d(mixed, net.get_shape()[3], 1, normalizer_fn=None, activation_fn=None,
                         scope='Conv2d_1x1')
        scaled_up = up * scale
        if activation_fn == tf.nn.relu6:
            # A bounded activation expects bounded inputs (quantised inference).
            scaled_up = tf.clip_by_value(scaled_up, -6.0, 6.0)
        net += scaled_up
        if activation_fn:
            net = activation_fn(net)
    return net


def block35(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None):
    """Builds the 35x35 residual block."""
    return _residual(net, _BLOCK35, scale, activation_fn, scope, reuse, 'Block35')


def block17(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None):
    """Builds the 17x17 residual block."""
    return _residual(net, _BLOCK17, scale, activation_fn, scope, reuse, 'Block17')


def block8(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None):
    """Builds the 8x8 residual block."""
    return _residual(net, _BLOCK8, scale, activation_fn, scope, reuse, 'Block8')


def _stem(padding):
    return [("Conv2d_1a_3x3", conv(32, 3, None, stride=2, padding=padding)),
            ("Conv2d_2a_3x3", conv(32, 3, None, padding=padding)),
            ("Conv2d_2b_3x3", conv(64, 3, None)),
            ("MaxPool_3a_3x3", max_pool(3, None, stride=2, padding=padding)),
            ("Conv2d_3b_1x1", conv(80, 1, None, padding=padding)),
            ("Conv2d_4a_3x3", conv(192, 3, None, padding=padding)),
            ("MaxPool_5a_3x3", max_pool(3, None, stride=2, padding=padding))]


_MIXED_5B = [
    [conv(96, 1, "Conv2d_1x1")],
    [conv(48, 1, "Conv2d_0a_1x1"), conv(64, 5, "Conv2d_0b_5x5")],
    [conv(64, 1, "Conv2d_0a_1x1"), conv(96, 3, "Conv2d_0b_3x3"), conv(96, 3, "Conv2d_0c_3x3")],
    [avg_pool(3, "AvgPool_0a_3x3", stride=1, padding="SAME"), conv(64, 1, "Conv2d_0b_1x1")],
]


def _mixed_6a(padding, stride):
    return [[conv(384, 3, "Conv2d_1a_3x3", stride=stride, padding=padding)],
            [conv(256, 1, "Conv2d_0a_1x1"), conv(256, 3, "Conv2d_0b_3x3"),
             conv(384, 3, "Conv2d_1a_3x3", stride=stride, padding=padding)],
            [max_pool(3, "MaxPool_1a_3x3", stride=stride, padding=padding)]]


def _mixed_7a(padding):
    return [[conv(256, 1, "Conv2d_0a_1x1"),
             conv(384, 3, "Conv2d_1a_3x3", stride=2, padding=padding)],
            [conv(256, 1, "Conv2d_0a_1x1"),
             conv(288, 3, "Conv2d_1a_3x3", stride=2, padding=padding)],
            [conv(256, 1, "Conv2d_0a_1x1"), conv(288, 3, "Conv2d_0b_3x3"),
             conv(320, 3, "Conv2d_1a_3x3", stride=2, padding=padding)],
            [max_pool(3, "MaxPool_1a_3x3", stride=2, padding=padding)]]


_END_POINTS = ['Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'MaxPool_3a_3x3',
               'Conv2d_3b_1x1', 'Conv2d_4a_3x3', 'MaxPool_5a_3x3', 'Mixed_5b', 'Mixed_6a',
               'PreAuxLogits', 'Mixed_7a', 'Conv2d_7b_1x1']


def inception_resnet_v2_base(inputs, final_endpoint='Conv2d_7b_1x1', output_stride=16,
                             align_feature_maps=False, scope=None, activation_fn=tf.nn.relu):
    """The Inception-ResNet-v2 trunk up to ``final_endpoint``.

    Args:
      inputs: ``[batch, height, width, channels]``.
      final_endpoint: one of 'Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3',
        'MaxPool_3a_3x3', 'Conv2d_3b_1x1', 'Conv2d_4a_3x3', 'MaxPool_5a_3x3', 'Mixed_5b',
        'Mixed_6a', 'PreAuxLogits', 'Mixed_7a', 'Conv2d_7b_1x1'.
      output_stride: 16, or 8 (atrous from Mixed_6a on; only up to 'PreAuxLogits').
      align_feature_maps: SAME instead of VALID paddings, so maps align with the input.
      scope: variable scope (default 'InceptionResnetV2').
      activation_fn: activation of the residual blocks.

    Returns:
      ``(net, end_points)``.

    Raises:
      ValueError: unknown ``final_endpoint``, ``output_stride`` not 8 or 16, or 8 with an end
        point after 'PreAuxLogits'.
    """
    if output_stride not in (8, 16):
        raise ValueError('output_stride must be 8 or 16.')
    _blocks.check_final_endpoint(final_endpoint, _END_POINTS)
    padding = 'SAME' if align_feature_maps else 'VALID'
    use_atrous = output_stride == 8
    end_points = {}
    with tf.variable_scope(scope, 'InceptionResnetV2', [inputs]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1,
                            padding='SAME'):
            net = inputs
            for name, layer in _stem(padding):
                net = end_points[name] = _blocks.apply_layers(net, [layer._replace(name=name)])
                if name == final_endpoint:
                    return net, end_points
            net = end_points['Mixed_5b'] = _blocks.mixed(net, _MIXED_5B, 'Mixed_5b')
            if final_endpoint == 'Mixed_5b':
                return net, end_points
            net = slim.repeat(net, 10, block35, scale=0.17, activation_fn=activation_fn)
            net = end_points['Mixed_6a'] = _blocks.mixed(
                net, _mixed_6a(padding, 1 if use_atrous else 2), 'Mixed_6a')
            if final_endpoint == 'Mixed_6a':
                return net, end_points
            with slim.arg_scope([slim.conv2d], rate=2 if use_atrous else 1):
                net = slim.repeat(net, 20, block17, scale=0.10, activation_fn=activation_fn)
            end_points['PreAuxLogits'] = net
            if final_endpoint == 'PreAuxLogits':
                return net, end_points
            if output_stride == 8:
                raise ValueError('output_stride==8 is only supported up to the PreAuxlogits '
                                 'end_point for now.')
            net = end_points['Mixed_7a'] = _blocks.mixed(net, _mixed_7a(padding), 'Mixed_7a')
            if final_endpoint == 'Mixed_7a':
                return net, end_points
            net = slim.repeat(net, 9, block8, scale=0.20, activation_fn=activation_fn)
            net = block8(net, activation_fn=None)
            net = end_points['Conv2d_7b_1x1'] = slim.conv2d(net, 1536, 1, scope='Conv2d_7b_1x1')
            return net, end_points


def inception_resnet_v2(inputs, num_classes=1001, is_training=True, dropout_keep_prob=0.8,
                        reuse=None, scope='InceptionResnetV2', create_aux_logits=True,
                        activation_fn=tf.nn.relu):
    """Inception-ResNet-v2 classifier.

    Args:
      inputs: ``[batch, height, width, 3]``, 299x299 by default (at least 107x107 with the
        auxiliary head).
      num_classes: number of classes; 0 or None returns the pooled features before dropout
        (``global_pool``, ``[batch, 1, 1, 1536]``) and builds no auxiliary head.
      is_training: batch norm and dropout in training mode.
      dropout_keep_prob: keep probability before the classifier.
      reuse: reuse the variables of ``scope``.
      scope: variable scope.
      create_aux_logits: build ``AuxLogits`` on ``PreAuxLogits``.
      activation_fn: activation of the residual blocks.

    Returns:
      ``(logits or features, end_points)``.
    """
    with tf.variable_scope(scope, 'InceptionResnetV2', [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_resnet_v2_base(inputs, scope=scope,
                                                       activation_fn=activation_fn)
            if create_aux_logits and num_classes:
                with tf.variable_scope('AuxLogits'):
                    aux = slim.avg_pool2d(end_points['PreAuxLogits'], 5, stride=3,
                                          padding='VALID', scope='Conv2d_1a_3x3')
                    aux = slim.conv2d(aux, 128, 1, scope='Conv2d_1b_1x1')
                    aux = slim.conv2d(aux, 768, aux.get_shape()[1:3], padding='VALID',
                                      scope='Conv2d_2a_5x5')
                    aux = slim.flatten(aux)
                    end_points['AuxLogits'] = slim.fully_connected(
                        aux, num_classes, activation_fn=None, scope='Logits')
            with tf.variable_scope('Logits'):
                kernel = net.get_shape()[1:3]
                if kernel.is_fully_defined():
                    net = slim.avg_pool2d(net, kernel, padding='VALID', scope='AvgPool_1a_8x8')
                else:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name='global_pool')
                end_points['global_pool'] = net
                if not num_classes:
                    return net, end_points
                net = slim.flatten(net)
                net = slim.dropout(net, dropout_keep_prob, is_training=is_training,
                                   scope='Dropout')
                end_points['PreLogitsFlatten'] = net
                logits = slim.fully_connected(net, num_classes, activation_fn=None,
                                              scope='Logits')
                end_points['Logits'] = logits
                end_points['Predictions'] = tf.nn.softmax(logits, name='Predictions')
    return logits, end_points


inception_resnet_v2.default_image_size = 299


def inception_resnet_v2_arg_scope(weight_decay=0.00004, batch_norm_decay=0.9997,
                                  batch_norm_epsilon=0.001, activation_fn=tf.nn.relu,
                                  batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                                  batch_norm_scale=False):
    """slim's Inception-ResNet-v2 hyper-parameters: L2 on the weights and biases of convolutions
    and FC layers, batch norm and ``activation_fn`` after every convolution.

    Args:
      weight_decay: L2 coefficient.
      batch_norm_decay: decay of the moving averages.
      batch_norm_epsilon: added to the variance.
      activation_fn: activation of the convolutions.
      batch_norm_updates_collections: collection of the moving-average updates.
      batch_norm_scale: learn a ``gamma`` in every batch norm.

    Returns:
      An ``arg_scope``.
    """
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        biases_regularizer=slim.l2_regularizer(weight_decay)):
        batch_norm_params = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                             "updates_collections": batch_norm_updates_collections,
                             "fused": None, "scale": batch_norm_scale}
        with slim.arg_scope([slim.conv2d], activation_fn=activation_fn,
                            normalizer_fn=slim.batch_norm,
                            normalizer_params=batch_norm_params) as scope:
            return scope
