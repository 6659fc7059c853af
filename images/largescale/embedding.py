"""The embedding network: a registry backbone in feature mode followed by a linear embedding layer.

The backbone comes from :func:`images.models.model_factory.get_network_fn` with
``num_classes=0`` (pooled features ``[batch, depth]``); the ``embedding`` layer maps them to
``emb_size``.  Backbones that make the embedding themselves (the IR-ResNets, PLSC model objects;
see :mod:`images.largescale.backbones`) are used as they are.  This is the model that verification, ``predict`` and serving use: it ends at the
embedding, not at a class.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.largescale import backbones
from images.utils import precision

EMBEDDING_SCOPE = "embedding"


def backbone_fn(backbone, weight_decay, is_training):
    """``fn(images) -> features [batch, depth]`` for a registry name or a callable.

    A callable is used as given: ``fn(images, is_training) -> features``.
    """
    if callable(backbone):
        return lambda images: backbone(images, is_training)
    from images.models import model_factory
    network_fn = model_factory.get_network_fn(backbone, num_classes=0, weight_decay=weight_decay,
                                              is_training=is_training)
    return lambda images: network_fn(images)[0]


def build_embedding(images, *, backbone, emb_size, is_training, weight_decay=0.0,
                    compute_dtype=tf.float32, reuse=None, labels=None):
    """Embeddings ``[batch, emb_size]`` (float32) of ``images``.

    Args:
      images: float ``[batch, H, W, C]`` normalised as the data readers do.
      backbone: registry name (e.g. ``resnet_v1_50``) or ``fn(images, is_training)``.
      emb_size: embedding width.
      is_training: training mode of the backbone (batch-norm statistics, dropout).
      weight_decay: L2 coefficient of the backbone and the embedding layer.
      compute_dtype: dtype the backbone runs in (float32 master weights).
      reuse: reuse the variables of an earlier call (evaluation tower).
      labels: the labels, for PLSC model objects whose ``build_network`` takes them.
    """
    with tf.variable_scope(tf.get_variable_scope(), reuse=reuse):
        with precision.compute_dtype_scope(compute_dtype):
            if backbones.makes_embedding(backbone):  # IR-ResNets, PLSC model objects
                return tf.cast(backbones.build(tf.cast(images, compute_dtype), backbone,
                                               emb_size, is_training, weight_decay, labels),
                               tf.float32)
            features = backbone_fn(backbone, weight_decay, is_training)(
                tf.cast(images, compute_dtype))
            if features.shape.ndims != 2:
                features = slim.flatten(features)
            emb = slim.fully_connected(
                features, emb_size, activation_fn=None,
                weights_initializer=tf.glorot_uniform_initializer(),
                weights_regularizer=slim.l2_regularizer(weight_decay) if weight_decay else None,
                scope=EMBEDDING_SCOPE)
    return tf.cast(emb, tf.float32)
