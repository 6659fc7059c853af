"""MobileNet v1 (Howard et al. 2017), TF-slim's ``nets.mobilenet_v1``.

A full 3x3 convolution, then 13 depthwise-separable layers (3x3 depthwise + 1x1 pointwise, each
with batch norm and ReLU6).  ``conv_defs`` describes the body (``MOBILENETV1_CONV_DEFS`` by
default); ``depth_multiplier`` scales every depth (at least ``min_depth``).  The variable names
are the published checkpoints' (``MobilenetV1/Conv2d_<i>_depthwise/depthwise_weights``, ...).
"""
import collections
import functools

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets._blocks import fixed_padding, reduced_kernel_size_for_small_input

_fixed_padding = fixed_padding
_reduced_kernel_size_for_small_input = reduced_kernel_size_for_small_input

# Conv: a full convolution; DepthSepConv: depthwise then 1x1 pointwise.
Conv = collections.namedtuple('Conv', ['kernel', 'stride', 'depth'])
DepthSepConv = collections.namedtuple('DepthSepConv', ['kernel', 'stride', 'depth'])

MOBILENETV1_CONV_DEFS = (
    [Conv(kernel=[3, 3], stride=2, depth=32)]
    + [DepthSepConv(kernel=[3, 3], stride=s, depth=d) for s, d in (
        (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512),
        (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))])


def mobilenet_v1_base(inputs, final_endpoint='Conv2d_13_pointwise', min_depth=8,
                      depth_multiplier=1.0, conv_defs=None, output_stride=None,
                      use_explicit_padding=False, scope=None):
    """The MobileNet v1 body up to ``final_endpoint``.

    Args:
      inputs: ``[batch, height, width, channels]``.
      final_endpoint: 'Conv2d_0', or 'Conv2d_<i>_depthwise' / 'Conv2d_<i>_pointwise' for the
        separable layers (i = 1..13 with the default ``conv_defs``).
      min_depth: smallest depth after ``depth_multiplier``.
      depth_multiplier: multiplier of every depth (> 0).
      conv_defs: list of :class:`Conv` / :class:`DepthSepConv` (default
        ``MOBILENETV1_CONV_DEFS``).
      output_stride: 8, 16 or 32: atrous convolutions keep the resolution beyond it.
      use_explicit_padding: VALID convolutions on inputs padded as SAME would.
      scope: variable scope (default 'MobilenetV1').

    Returns:
      ``(net, end_points)``.

    Raises:
      ValueError: unknown ``final_endpoint``, ``depth_multiplier`` <= 0, or an output stride
        other than 8, 16, 32.
    """
    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    end_points = {}
    if depth_multiplier <= 0:
        raise ValueError('depth_multiplier is not greater than zero.')
    if conv_defs is None:
        conv_defs = MOBILENETV1_CONV_DEFS
    if output_stride is not None and output_stride not in [8, 16, 32]:
        raise ValueError('Only allowed output_stride values are 8, 16, 32.')
    padding = 'VALID' if use_explicit_padding else 'SAME'
    with tf.variable_scope(scope, 'MobilenetV1', [inputs]):
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding=padding):
            current_stride = 1
            rate = 1
            net = inputs
            for i, conv_def in enumerate(conv_defs):
                end_point_base = 'Conv2d_%d' % i
                if output_stride is not None and current_stride == output_stride:
                    layer_stride, layer_rate = 1, rate
                    rate *= conv_def.stride
                else:
                    layer_stride, layer_rate = conv_def.stride, 1
                    current_stride *= conv_def.stride
                if isinstance(conv_def, Conv):
                    end_point = end_point_base
                    if use_explicit_padding:
                        net = fixed_padding(net, conv_def.kernel)
                    # slim strides the full convolution by its definition, atrous or not.
                    net = slim.conv2d(net, depth(conv_def.depth), conv_def.kernel,
                                      stride=conv_def.stride, scope=end_point)
                    end_points[end_point] = net
                    if end_point == final_endpoint:
                        return net, end_points
                elif isinstance(conv_def, DepthSepConv):
                    end_point = end_point_base + '_depthwise'
                    if use_explicit_padding:
                        net = fixed_padding(net, conv_def.kernel, layer_rate)
                    net = slim.separable_conv2d(net, None, conv_def.kernel, depth_multiplier=1,
                                                stride=layer_stride, rate=layer_rate,
                                                scope=end_point)
                    end_points[end_point] = net
                    if end_point == final_endpoint:
                        return net, end_points
                    end_point = end_point_base + '_pointwise'
                    net = slim.conv2d(net, depth(conv_def.depth), [1, 1], stride=1,
                                      scope=end_point)
                    end_points[end_point] = net
                    if end_point == final_endpoint:
                        return net, end_points
                else:
                    raise ValueError('Unknown convolution type %s for layer %d'
                                     % (type(conv_def).__name__, i))
    raise ValueError('Unknown final endpoint %s' % final_endpoint)


def mobilenet_v1(inputs, num_classes=1000, dropout_keep_prob=0.999, is_training=True,
                 min_depth=8, depth_multiplier=1.0, conv_defs=None, prediction_fn=slim.softmax,
                 spatial_squeeze=True, reuse=None, scope='MobilenetV1', global_pool=False):
    """MobileNet v1 classifier.

    Args:
      inputs: ``[batch, height, width, channels]``, 224x224 by default.
      num_classes: number of classes; 0 or None returns the pooled features before dropout
        (``AvgPool_1a``, ``[batch, 1, 1, 1024 * depth_multiplier]``).
      dropout_keep_prob: keep probability before the classifier.
      is_training: batch norm and dropout in training mode.
      min_depth: smallest depth after ``depth_multiplier``.
      depth_multiplier: multiplier of every depth (1.0, 0.75, 0.5, 0.25 published).
      conv_defs: the body (default ``MOBILENETV1_CONV_DEFS``).
      prediction_fn: turns the logits into ``end_points['Predictions']`` (None: none).
      spatial_squeeze: logits ``[batch, classes]`` rather than ``[batch, 1, 1, classes]``.
      reuse: reuse the variables of ``scope``.
      scope: variable scope.
      global_pool: average the whole last map instead of a (at most) 7x7 window.

    Returns:
      ``(logits or features, end_points)``.

    Raises:
      ValueError: ``inputs`` is not of rank 4.
    """
    input_shape = inputs.get_shape().as_list()
    if len(input_shape) != 4:
        raise ValueError('Invalid input tensor rank, expected 4, was: %d' % len(input_shape))
    with tf.variable_scope(scope, 'MobilenetV1', [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = mobilenet_v1_base(inputs, scope=scope, min_depth=min_depth,
                                                depth_multiplier=depth_multiplier,
                                                conv_defs=conv_defs)
            with tf.variable_scope('Logits'):
                if global_pool:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name='global_pool')
                    end_points['global_pool'] = net
                else:
                    kernel = reduced_kernel_size_for_small_input(net, [7, 7])
                    net = slim.avg_pool2d(net, kernel, padding='VALID', scope='AvgPool_1a')
                    end_points['AvgPool_1a'] = net
                if not num_classes:
                    return net, end_points
                net = slim.dropout(net, keep_prob=dropout_keep_prob, scope='Dropout_1b')
                logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                     normalizer_fn=None, scope='Conv2d_1c_1x1')
                if spatial_squeeze:
                    logits = tf.squeeze(logits, [1, 2], name='SpatialSqueeze')
            end_points['Logits'] = logits
            if prediction_fn:
                end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points


mobilenet_v1.default_image_size = 224


def wrapped_partial(func, *args, **kwargs):
    """``functools.partial`` that keeps ``func``'s name, docstring and attributes."""
    partial_func = functools.partial(func, *args, **kwargs)
    functools.update_wrapper(partial_func, func)
    return partial_func


mobilenet_v1_075 = wrapped_partial(mobilenet_v1, depth_multiplier=0.75)
mobilenet_v1_050 = wrapped_partial(mobilenet_v1, depth_multiplier=0.50)
mobilenet_v1_025 = wrapped_partial(mobilenet_v1, depth_multiplier=0.25)


def mobilenet_v1_arg_scope(is_training=True, weight_decay=0.00004, stddev=0.09,
                           regularize_depthwise=False, batch_norm_decay=0.9997,
                           batch_norm_epsilon=0.001,
                           batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                           normalizer_fn=slim.batch_norm):
    """slim's MobileNet v1 hyper-parameters.

    Args:
      is_training: batch norm's training mode in the scope (None: not set here).
      weight_decay: L2 coefficient of the full convolutions.
      stddev: of the truncated-normal weight initialiser.
      regularize_depthwise: also L2 on the depthwise filters.
      batch_norm_decay: decay of the moving averages.
      batch_norm_epsilon: added to the variance.
      batch_norm_updates_collections: collection of the moving-average updates.
      normalizer_fn: normaliser after every convolution.

    Returns:
      An ``arg_scope``.
    """
    batch_norm_params = {'center': True, 'scale': True, 'decay': batch_norm_decay,
                         'epsilon': batch_norm_epsilon,
                         'updates_collections': batch_norm_updates_collections}
    if is_training is not None:
        batch_norm_params['is_training'] = is_training
    regularizer = slim.l2_regularizer(weight_decay)
    depthwise_regularizer = regularizer if regularize_depthwise else None
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                        weights_initializer=tf.truncated_normal_initializer(stddev=stddev),
                        activation_fn=tf.nn.relu6, normalizer_fn=normalizer_fn):
        with slim.arg_scope([slim.batch_norm], **batch_norm_params):
            with slim.arg_scope([slim.conv2d], weights_regularizer=regularizer):
                with slim.arg_scope([slim.separable_conv2d],
                                    weights_regularizer=depthwise_regularizer) as sc:
                    return sc
