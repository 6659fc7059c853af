"""The classification loss of the trainer (FastNN's ``loss_fn``, with what it left out)."""
import tensorflow.compat.v1 as tf

AUX_LOGITS_WEIGHT = 0.4


def classification_loss(logits, labels, num_classes, label_smoothing=0.0, aux_logits=None,
                        aux_weight=AUX_LOGITS_WEIGHT, add_regularization=True):
    """Softmax cross-entropy on float32 logits, aux-logits loss, label smoothing, L2 terms.

    Args:
      logits: ``[batch, num_classes]`` in any float dtype; cast to float32 first.
      labels: int ``[batch]``.
      num_classes: width of the one-hot targets when smoothing.
      label_smoothing: 0 for hard targets; else targets ``(1 - e) * onehot + e / num_classes``.
      aux_logits: the auxiliary head's logits (Inception) or None.
      aux_weight: weight of the auxiliary loss.
      add_regularization: add the graph's regularization losses (the arg_scopes' weight decay).

    Returns:
      ``(total_loss, cross_entropy)``: the scalar to minimise and the main data term alone.
    """
    def xent(lg, weight, scope):
        lg = tf.cast(lg, tf.float32)
        if label_smoothing > 0:
            onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
            return tf.losses.softmax_cross_entropy(
                onehot, lg, weights=weight, label_smoothing=label_smoothing, scope=scope)
        return tf.losses.sparse_softmax_cross_entropy(labels, lg, weights=weight, scope=scope)

    cross_entropy = xent(logits, 1.0, "cross_entropy")
    total = cross_entropy
    if aux_logits is not None:
        total = total + xent(aux_logits, aux_weight, "aux_cross_entropy")
    if add_regularization:
        reg = tf.losses.get_regularization_losses()
        if reg:
            total = total + tf.add_n([tf.cast(r, tf.float32) for r in reg],
                                     name="regularization_loss")
    return tf.identity(total, name="total_loss"), cross_entropy


def accuracy(logits, labels):
    """Fraction of rows whose arg-max equals the label (float32 scalar)."""
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int64)
    return tf.reduce_mean(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int64)), tf.float32),
                          name="accuracy")
