"""The plain convolutional networks of TF-slim (AlexNet v2, OverFeat, VGG) as layer tables.

Their classifier is a stack of convolutions standing in for fully connected layers (``fc6``,
``fc7``, ``fc8``); end points are the outputs of every convolution and max pooling, collected
under the network's scope as slim collects them, plus ``global_pool`` and ``<scope>/fc8``.
"""
import contextlib

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets._blocks import trunc_normal


def build(inputs, trunk, fc6, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
          scope, default_scope, global_pool, fc_initializers=False, fc6_padding="VALID"):
    """Builds one of the networks.

    Args:
      inputs: ``[batch, height, width, channels]``.
      trunk: ``[(kind, depth, kernel, stride, padding, name, repeat)]``: ``conv`` (with
        ``repeat`` > 0, a ``slim.repeat`` of that many convolutions) or ``max_pool``.
      fc6: ``(depth, kernel)`` of the first classifier convolution.
      num_classes, is_training, dropout_keep_prob, spatial_squeeze, scope, global_pool: as the
        public builders.
      default_scope: the scope name when ``scope`` is None.
      fc_initializers: AlexNet and OverFeat build ``fc6``..``fc8`` with a truncated-normal
        (stddev 0.005) initialiser and biases of 0.1 (``fc8``'s are zero).
      fc6_padding: padding of ``fc6`` (VGG's ``fc_conv_padding``).

    Returns:
      ``(net, end_points)`` as slim's builders return them.
    """
    with tf.variable_scope(scope, default_scope, [inputs]) as sc:
        collection = sc.original_name_scope + "_end_points"
        with slim.arg_scope([slim.conv2d, slim.fully_connected, slim.max_pool2d],
                            outputs_collections=[collection]):
            net = inputs
            for kind, depth, kernel, stride, padding, name, repeat in trunk:
                options = {} if padding is None else {"padding": padding}
                if stride is not None:
                    options["stride"] = stride
                if kind == "max_pool":
                    net = slim.max_pool2d(net, kernel, scope=name, **options)
                elif repeat:
                    net = slim.repeat(net, repeat, slim.conv2d, depth, kernel, scope=name,
                                      **options)
                else:
                    net = slim.conv2d(net, depth, kernel, scope=name, **options)
            fc_scope = (slim.arg_scope([slim.conv2d], weights_initializer=trunc_normal(0.005),
                                       biases_initializer=tf.constant_initializer(0.1))
                        if fc_initializers else contextlib.nullcontext())
            with fc_scope:
                net = slim.conv2d(net, fc6[0], fc6[1], padding=fc6_padding, scope="fc6")
                net = slim.dropout(net, dropout_keep_prob, is_training=is_training,
                                   scope="dropout6")
                net = slim.conv2d(net, 4096, [1, 1], scope="fc7")
                end_points = slim.utils.convert_collection_to_dict(collection)
                if global_pool:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
                    end_points["global_pool"] = net
                if num_classes:
                    net = slim.dropout(net, dropout_keep_prob, is_training=is_training,
                                       scope="dropout7")
                    fc8 = {"biases_initializer": tf.zeros_initializer()} if fc_initializers else {}
                    net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                      normalizer_fn=None, scope="fc8", **fc8)
                    if spatial_squeeze:
                        net = tf.squeeze(net, [1, 2], name="fc8/squeezed")
                    end_points[sc.name + "/fc8"] = net
        return net, end_points

