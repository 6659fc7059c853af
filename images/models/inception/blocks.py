"""Inception blocks written as data: branches of layers, concatenated along the depth.

A block is a list of branches; a branch is a list of layers built one after the other under
``Branch_<i>``.  Layer names are the TF-slim scope names, which are the variable names of the
published checkpoints (``Mixed_6a/Branch_1/Conv2d_0b_3x3/weights``).
"""
import collections

import tensorflow.compat.v1 as tf
import tf_slim as slim

Layer = collections.namedtuple("Layer", ["kind", "depth", "kernel", "stride", "padding", "name"])


def _pair(kernel):
    return (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)


def conv(depth, kernel, name, stride=1, padding="SAME"):
    """A convolution (with the arg_scope's batch norm and activation)."""
    return Layer("conv", depth, _pair(kernel), stride, padding, name)


def max_pool(kernel, name, stride=1, padding="SAME"):
    return Layer("max_pool", None, _pair(kernel), stride, padding, name)


def avg_pool(kernel, name, stride=1, padding="SAME"):
    return Layer("avg_pool", None, _pair(kernel), stride, padding, name)


def fork(*layers):
    """Layers applied side by side to the same input, their outputs concatenated."""
    return Layer("fork", layers, None, None, None, None)


def apply_layers(net, layers):
    """Builds ``layers`` in order on ``net``."""
    for layer in layers:
        if layer.kind == "conv":
            net = slim.conv2d(net, layer.depth, layer.kernel, stride=layer.stride,
                              padding=layer.padding, scope=layer.name)
        elif layer.kind == "max_pool":
            net = slim.max_pool2d(net, layer.kernel, stride=layer.stride, padding=layer.padding,
                                  scope=layer.name)
        elif layer.kind == "avg_pool":
            net = slim.avg_pool2d(net, layer.kernel, stride=layer.stride, padding=layer.padding,
                                  scope=layer.name)
        elif layer.kind == "fork":
            net = tf.concat([apply_layers(net, [part]) for part in layer.depth], axis=3)
        else:
            raise ValueError("unknown layer kind %r" % layer.kind)
    return net


def mixed(net, branches, scope):
    """A block: every branch on ``net`` under ``scope/Branch_<i>``, concatenated."""
    with tf.variable_scope(scope):
        return _branches(net, branches)


def _branches(net, branches):
    outputs = []
    for i, branch in enumerate(branches):
        with tf.variable_scope("Branch_%d" % i):
            outputs.append(apply_layers(net, branch))
    return tf.concat(outputs, axis=3)


def residual(net, branches, scale, activation_fn, scope):
    """An Inception-ResNet block: ``act(net + scale * Conv2d_1x1(concat(branches)))``.

    The 1x1 projection back to ``net``'s depth has a bias and neither batch norm nor activation.
    """
    with tf.variable_scope(scope):
        mixed_up = _branches(net, branches)
        up = slim.conv2d(mixed_up, int(net.shape[3]), [1, 1], normalizer_fn=None,
                         activation_fn=None, scope="Conv2d_1x1")
        net = net + scale * up
        if activation_fn is not None:
            net = activation_fn(net)
    return net


def global_average(net, scope):
    """Average over the whole map: a VALID pool when the size is static, else a mean."""
    kernel = net.shape[1:3]
    if kernel.is_fully_defined():
        return slim.avg_pool2d(net, kernel.as_list(), padding="VALID", scope=scope)
    return tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")


def inception_arg_scope(weight_decay=0.00004, batch_norm_decay=0.9997, batch_norm_epsilon=0.001,
                        activation_fn=tf.nn.relu, regularize_biases=False):
    """Convolutions with batch norm (no scale, as TF-slim's Inception) and L2 on the weights."""
    regularizer = slim.l2_regularizer(weight_decay)
    bias_regularizer = regularizer if regularize_biases else None
    batch_norm_params = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                         "scale": False, "updates_collections": tf.GraphKeys.UPDATE_OPS}
    with slim.arg_scope([slim.conv2d, slim.fully_connected], weights_regularizer=regularizer,
                        biases_regularizer=bias_regularizer):
        with slim.arg_scope([slim.conv2d], weights_initializer=slim.variance_scaling_initializer(),
                            activation_fn=activation_fn, normalizer_fn=slim.batch_norm,
                            normalizer_params=batch_norm_params) as sc:
            return sc
