"""LeNet, TF-slim's ``nets.lenet``: two 5x5 convolutions, two FC layers.

Variable scopes, end points and defaults follow slim's ``LeNet`` (``is_training=False`` by
default, ``Predictions`` outside the network's scope, as slim builds them).
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim


def lenet(images, num_classes=10, is_training=False, dropout_keep_prob=0.5,
          prediction_fn=slim.softmax, scope="LeNet"):
    """LeNet on ``images`` ``[batch, 28, 28, C]``.

    Args:
      images: float input batch.
      num_classes: classifier width; 0 or None returns the 1024-wide ``fc3`` output.
      is_training: enables dropout.
      dropout_keep_prob: keep probability of the dropout before the classifier.
      prediction_fn: turns logits into ``end_points['Predictions']``.
      scope: variable scope.

    Returns:
      ``(logits or features, end_points)``.
    """
    end_points = {}
    with tf.variable_scope(scope, "LeNet", [images]):
        net = end_points["conv1"] = slim.conv2d(images, 32, [5, 5], scope="conv1")
        net = end_points["pool1"] = slim.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = end_points["conv2"] = slim.conv2d(net, 64, [5, 5], scope="conv2")
        net = end_points["pool2"] = slim.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = end_points["Flatten"] = slim.flatten(net)
        net = end_points["fc3"] = slim.fully_connected(net, 1024, scope="fc3")
        if not num_classes:
            return net, end_points
        net = end_points["dropout3"] = slim.dropout(
            net, dropout_keep_prob, is_training=is_training, scope="dropout3")
        logits = end_points["Logits"] = slim.fully_connected(
            net, num_classes, activation_fn=None, scope="fc4")
    end_points["Predictions"] = prediction_fn(logits, scope="Predictions")
    return logits, end_points


lenet.default_image_size = 28


def lenet_arg_scope(weight_decay=0.0):
    """ReLU, truncated-normal initialisation and L2 ``weight_decay`` on conv and FC weights."""
    with slim.arg_scope(
            [slim.conv2d, slim.fully_connected],
            weights_regularizer=slim.l2_regularizer(weight_decay),
            weights_initializer=tf.truncated_normal_initializer(stddev=0.1),
            activation_fn=tf.nn.relu) as sc:
        return sc
