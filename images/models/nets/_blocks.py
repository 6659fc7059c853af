"""Network pieces written as data, shared by the Inception modules of :mod:`images.models.nets`.

A layer is a :class:`Layer`; a block is a list of branches, a branch a list of layers built one
after the other under ``Branch_<i>`` and the branches concatenated along the channels.  Layer
names are TF-slim's scope names, which are the variable names of the published checkpoints
(``Mixed_6a/Branch_1/Conv2d_0b_3x3/weights``), so the tables here are the architecture facts and
:func:`apply_layers` the only code that turns them into a graph.
"""
import collections

import tensorflow.compat.v1 as tf
import tf_slim as slim

Layer = collections.namedtuple(
    "Layer", ["kind", "depth", "kernel", "stride", "padding", "name", "stddev"])


def _pair(kernel):
    return (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)


def conv(depth, kernel, name, stride=1, padding=None, stddev=None):
    """A convolution (batch norm and activation come from the arg_scope).

    ``padding`` None keeps the arg_scope's; ``stddev`` sets a truncated-normal initialiser
    (None keeps the arg_scope's).
    """
    return Layer("conv", depth, _pair(kernel), stride, padding, name, stddev)


def max_pool(kernel, name, stride=1, padding=None):
    """A max pooling layer."""
    return Layer("max_pool", None, _pair(kernel), stride, padding, name, None)


def avg_pool(kernel, name, stride=1, padding=None):
    """An average pooling layer."""
    return Layer("avg_pool", None, _pair(kernel), stride, padding, name, None)


def fork(*layers):
    """Layers applied side by side to the same input, their outputs concatenated."""
    return Layer("fork", layers, None, None, None, None, None)


def trunc_normal(stddev):
    """TF-slim's ``trunc_normal``: a zero-mean truncated-normal initialiser."""
    return tf.truncated_normal_initializer(0.0, stddev)


def apply_layers(net, layers, depth=int, concat_axis=3):
    """Builds ``layers`` in order on ``net``; ``depth`` maps each table depth to the real one."""
    for layer in layers:
        kwargs = {"stride": layer.stride}
        if layer.padding is not None:
            kwargs["padding"] = layer.padding
        if layer.kind == "conv":
            if layer.stddev is not None:
                kwargs["weights_initializer"] = trunc_normal(layer.stddev)
            net = slim.conv2d(net, depth(layer.depth), layer.kernel, scope=layer.name, **kwargs)
        elif layer.kind == "max_pool":
            net = slim.max_pool2d(net, layer.kernel, scope=layer.name, **kwargs)
        elif layer.kind == "avg_pool":
            net = slim.avg_pool2d(net, layer.kernel, scope=layer.name, **kwargs)
        elif layer.kind == "fork":
            net = tf.concat(axis=concat_axis, values=[
                apply_layers(net, [part], depth, concat_axis) for part in layer.depth])
        else:
            raise ValueError("unknown layer kind %r" % layer.kind)
    return net


def mixed(net, branch_list, scope, depth=int, concat_axis=3):
    """A block: every branch on ``net`` under ``scope/Branch_<i>``, concatenated."""
    with tf.variable_scope(scope):
        return branches(net, branch_list, depth, concat_axis)


def branches(net, branch_list, depth=int, concat_axis=3):
    """Every branch on ``net`` under ``Branch_<i>`` of the current scope, concatenated."""
    outputs = []
    for i, branch in enumerate(branch_list):
        with tf.variable_scope("Branch_%d" % i):
            outputs.append(apply_layers(net, branch, depth, concat_axis))
    return tf.concat(axis=concat_axis, values=outputs)


def reduced_kernel_size_for_small_input(input_tensor, kernel_size):
    """``kernel_size`` shrunk to the map's height and width when they are known and smaller."""
    shape = input_tensor.get_shape().as_list()
    if shape[1] is None or shape[2] is None:
        return kernel_size
    return [min(shape[1], kernel_size[0]), min(shape[2], kernel_size[1])]


def check_final_endpoint(final_endpoint, valid):
    """Raises the ``ValueError`` slim raises for an end point the network does not have."""
    if final_endpoint not in valid:
        raise ValueError("Unknown final endpoint %s (valid: %s)" % (final_endpoint,
                                                                    ", ".join(valid)))


def fixed_padding(inputs, kernel_size, rate=1):
    """Pads ``inputs`` so that a VALID convolution gives the shape SAME would (any input size)."""
    effective = [kernel_size[0] + (kernel_size[0] - 1) * (rate - 1),
                 kernel_size[0] + (kernel_size[0] - 1) * (rate - 1)]
    total = [effective[0] - 1, effective[1] - 1]
    begin = [total[0] // 2, total[1] // 2]
    end = [total[0] - begin[0], total[1] - begin[1]]
    return tf.pad(inputs, [[0, 0], [begin[0], end[0]], [begin[1], end[1]], [0, 0]])


def pooled_logits(net, end_points, num_classes, dropout_keep_prob, spatial_squeeze, global_pool,
                  window, global_pool_name='global_pool'):
    """The classifier of Inception v2 and v3, under the current ``Logits`` scope.

    Global average (``global_pool``) or a VALID average over a ``window`` shrunk to small maps
    (``AvgPool_1a_<h>x<w>``), then, with classes, dropout (``PreLogits``) and a 1x1 convolution
    (``Conv2d_1c_1x1``), squeezed to ``[batch, classes]`` with ``spatial_squeeze``.

    Returns:
      The logits, or the pooled features (before dropout) when ``num_classes`` is 0 or None.
    """
    if global_pool:
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name=global_pool_name)
        end_points['global_pool'] = net
    else:
        kernel = reduced_kernel_size_for_small_input(net, window)
        net = slim.avg_pool2d(net, kernel, padding='VALID',
                              scope='AvgPool_1a_{}x{}'.format(*kernel))
        end_points['AvgPool_1a'] = net
    if not num_classes:
        return net
    net = slim.dropout(net, keep_prob=dropout_keep_prob, scope='Dropout_1b')
    end_points['PreLogits'] = net
    logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                         scope='Conv2d_1c_1x1')
    if spatial_squeeze:
        logits = tf.squeeze(logits, [1, 2], name='SpatialSqueeze')
    return logits


class NoOpScope(object):
    """No-op context manager (slim's ``NoOpScope`` of ``resnet_v1`` and ``mobilenet``)."""

    def __enter__(self):
        return None

    def __exit__(self, exc_type, exc_value, traceback):
        return False
