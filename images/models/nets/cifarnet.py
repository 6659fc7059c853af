"""CifarNet, TF-slim's ``nets.cifarnet`` (after the cuda-convnet CIFAR-10 network).

Two 5x5 convolutions, each with 2x2 max-pooling and local response normalisation, then FC layers
of 384 and 192 units.  Variable scopes, shapes, end points and defaults follow slim's
``CifarNet`` (note slim's ``is_training=False`` default here).
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim


def trunc_normal(stddev):
    """slim's module attribute: a truncated-normal initialiser of ``stddev``."""
    return tf.truncated_normal_initializer(stddev=stddev)


def cifarnet(images, num_classes=10, is_training=False, dropout_keep_prob=0.5,
             prediction_fn=slim.softmax, scope="CifarNet"):
    """CifarNet on ``images`` ``[batch, 32, 32, 3]``.

    Args:
      images: float input batch.
      num_classes: classifier width; 0 or None returns the 192-wide ``fc4`` output.
      is_training: enables dropout.
      dropout_keep_prob: keep probability of the dropout after ``fc3``.
      prediction_fn: turns logits into ``end_points['Predictions']``.
      scope: variable scope.

    Returns:
      ``(logits or features, end_points)``.
    """
    end_points = {}
    with tf.variable_scope(scope, "CifarNet", [images]):
        net = end_points["conv1"] = slim.conv2d(images, 64, [5, 5], scope="conv1")
        net = end_points["pool1"] = slim.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = tf.nn.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, name="norm1")
        net = end_points["conv2"] = slim.conv2d(net, 64, [5, 5], scope="conv2")
        net = tf.nn.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, name="norm2")
        net = end_points["pool2"] = slim.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = end_points["Flatten"] = slim.flatten(net)
        net = end_points["fc3"] = slim.fully_connected(net, 384, scope="fc3")
        net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout3")
        net = end_points["fc4"] = slim.fully_connected(net, 192, scope="fc4")
        if not num_classes:
            return net, end_points
        logits = end_points["Logits"] = slim.fully_connected(
            net, num_classes, biases_initializer=tf.zeros_initializer(),
            weights_initializer=trunc_normal(1 / 192.0), weights_regularizer=None,
            activation_fn=None, scope="logits")
        end_points["Predictions"] = prediction_fn(logits, scope="Predictions")
    return logits, end_points


cifarnet.default_image_size = 32


def cifarnet_arg_scope(weight_decay=0.004):
    """Hyper-parameters of CifarNet: truncated-normal init, ReLU, L2 on the FC weights."""
    with slim.arg_scope(
            [slim.conv2d],
            weights_initializer=tf.truncated_normal_initializer(stddev=5e-2),
            activation_fn=tf.nn.relu):
        with slim.arg_scope(
                [slim.fully_connected],
                biases_initializer=tf.constant_initializer(0.1),
                weights_initializer=trunc_normal(0.04),
                weights_regularizer=slim.l2_regularizer(weight_decay),
                activation_fn=tf.nn.relu) as sc:
            return sc
