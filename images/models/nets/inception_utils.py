"""The arg scope shared by TF-slim's Inception networks (``nets.inception_utils``).

Usage, as with slim::

    with slim.arg_scope(inception_utils.inception_arg_scope()):
        logits, end_points = inception.inception_v3(images, num_classes, is_training=True)
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim


def inception_arg_scope(weight_decay=0.00004, use_batch_norm=True, batch_norm_decay=0.9997,
                        batch_norm_epsilon=0.001, activation_fn=tf.nn.relu,
                        batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                        batch_norm_scale=False):
    """Convolutions with batch norm, ``activation_fn`` and L2 on the conv and FC weights.

    Args:
      weight_decay: L2 coefficient of the convolution and fully connected weights.
      use_batch_norm: batch norm after every convolution.
      batch_norm_decay: decay of the moving averages.
      batch_norm_epsilon: added to the variance.
      activation_fn: activation of the convolutions.
      batch_norm_updates_collections: collection of the moving-average updates.
      batch_norm_scale: learn a ``gamma`` in every batch norm (the published checkpoints have
        none).

    Returns:
      An ``arg_scope``.
    """
    batch_norm_params = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                         "updates_collections": batch_norm_updates_collections,
                         "fused": None, "scale": batch_norm_scale}
    normalizer_fn = slim.batch_norm if use_batch_norm else None
    normalizer_params = batch_norm_params if use_batch_norm else {}
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay)):
        with slim.arg_scope([slim.conv2d], weights_initializer=slim.variance_scaling_initializer(),
                            activation_fn=activation_fn, normalizer_fn=normalizer_fn,
                            normalizer_params=normalizer_params) as sc:
            return sc
