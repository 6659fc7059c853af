"""IR-ResNet: the face-recognition ResNets of insightface (LResNet*E-IR) and PLSC.

What differs from slim's ImageNet ResNets:

* a 3x3 stride-1 stem (64 channels, batch norm, PReLU) instead of 7x7/2 and max pooling, so a
  112x112 face keeps its resolution until the first unit;
* "improved residual" units: ``BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride) -> BN`` plus the
  shortcut (a strided 1x1 convolution with batch norm in the first unit of a stage), with no
  activation after the sum;
* four stages of 64, 128, 256, 512 channels, each halving the resolution in its first unit
  (112 -> 7);
* the embedding head ("E" output): ``BN -> Dropout(0.4) -> FC(embedding_size) -> BN`` on the
  flattened 7x7x512 map, the last batch norm without a trainable scale (insightface's
  ``fix_gamma``).

Units per stage: 50 -> (3, 4, 14, 3), 100 -> (3, 13, 30, 3), 101 -> (3, 4, 23, 3),
152 -> (3, 8, 36, 3), as PLSC's ``plsc/models/resnet.py`` and insightface define them.  The
PReLU has one slope per channel (insightface; PLSC shares one slope per layer).  Strided 3x3
convolutions pad one pixel on every side, as mxnet and Paddle do.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
DEPTHS = (64, 128, 256, 512)
DEFAULT_IMAGE_SIZE = 112
DEFAULT_EMBEDDING_SIZE = 512


def prelu(inputs, scope="prelu"):
    """PReLU with one learned slope per channel (initialised to 0.25)."""
    with tf.variable_scope(scope):
        alpha = tf.get_variable("alpha", [inputs.shape[-1]], dtype=inputs.dtype,
                                initializer=tf.constant_initializer(0.25))
        return tf.maximum(inputs, 0.0) + alpha * tf.minimum(inputs, 0.0)


def _conv(inputs, depth, kernel, stride, scope):
    if stride > 1 and kernel > 1:
        # Symmetric padding (mxnet/Paddle); TF's SAME would pad only bottom/right here.
        pad = kernel // 2
        inputs = tf.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return slim.conv2d(inputs, depth, kernel, stride=stride, padding="VALID", scope=scope)
    return slim.conv2d(inputs, depth, kernel, stride=stride, padding="SAME", scope=scope)


def ir_unit(inputs, depth, stride, is_training, scope):
    """One improved residual unit (see the module docstring)."""
    with tf.variable_scope(scope):
        with slim.arg_scope([slim.batch_norm], is_training=is_training):
            net = slim.batch_norm(inputs, scope="bn1")
            net = _conv(net, depth, 3, 1, "conv1")
            net = prelu(slim.batch_norm(net, scope="bn2"))
            net = _conv(net, depth, 3, stride, "conv2")
            net = slim.batch_norm(net, scope="bn3")
            if stride != 1 or inputs.shape[-1] != depth:
                shortcut = slim.conv2d(inputs, depth, 1, stride=stride, scope="shortcut/conv")
                shortcut = slim.batch_norm(shortcut, scope="shortcut/bn")
            else:
                shortcut = inputs
        return net + shortcut


def irresnet(images, num_classes=None, is_training=False, depth=50, embedding_size=512,
             dropout_keep_prob=0.6, prediction_fn=slim.softmax, reuse=None, scope=None):
    """IR-ResNet on ``images`` ``[batch, H, W, C]`` (112x112 faces, H and W multiples of 16).

    Args:
      images: float input batch, normalised as ``(x - 127.5) / 128``.
      num_classes: width of a softmax classifier on the embedding; 0 or None returns the
        embedding itself ``[batch, embedding_size]`` (what face recognition trains and serves).
      is_training: batch-norm statistics and dropout in training mode.
      depth: 50, 100, 101 or 152.
      embedding_size: width of the embedding (512 in insightface and PLSC).
      dropout_keep_prob: keep probability of the head's dropout (insightface and PLSC drop 0.4).
      prediction_fn: turns logits into ``end_points['Predictions']``.
      reuse: reuse the variables of an earlier call.
      scope: variable scope (``irresnet_<depth>``).

    Returns:
      ``(logits or embedding, end_points)``; ``end_points['embedding']`` always holds the
      embedding.
    """
    if depth not in UNITS:
        raise ValueError("IR-ResNet depth must be one of %s, got %r" % (sorted(UNITS), depth))
    height, width = images.shape[1], images.shape[2]
    if height is not None and width is not None and (height % 16 or width % 16):
        raise ValueError("IR-ResNet halves the input four times: height and width must be "
                         "multiples of 16 (112x112 faces), got %dx%d" % (height, width))
    end_points = {}
    with tf.variable_scope(scope, "irresnet_%d" % depth, [images], reuse=reuse):
        with slim.arg_scope([slim.batch_norm], is_training=is_training):
            net = _conv(images, DEPTHS[0], 3, 1, "conv0")
            net = prelu(slim.batch_norm(net, scope="bn0"), scope="prelu0")
            end_points["stem"] = net
            for stage, (units, depth_out) in enumerate(zip(UNITS[depth], DEPTHS), start=1):
                for unit in range(units):
                    name = "stage%d/unit%d" % (stage, unit + 1)
                    net = ir_unit(net, depth_out, 2 if unit == 0 else 1, is_training, name)
                end_points["stage%d" % stage] = net
            net = slim.batch_norm(net, scope="bn1")
            net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout")
            net = slim.flatten(net)
            net = slim.fully_connected(net, embedding_size, activation_fn=None, scope="fc1")
            # fused=False: tf-slim 1.1.0's fused path for 2-D inputs needs ops.Tensor, which
            # TensorFlow 2.15 no longer has; the layer path computes the same batch norm.
            embedding = slim.batch_norm(net, scale=False, fused=False, scope="fc1_bn")
        end_points["embedding"] = embedding
        if not num_classes:
            return embedding, end_points
        logits = slim.fully_connected(embedding, num_classes, activation_fn=None,
                                      scope="logits")
    end_points["Logits"] = logits
    end_points["Predictions"] = prediction_fn(logits, scope="Predictions")
    return logits, end_points


irresnet.default_image_size = DEFAULT_IMAGE_SIZE


def irresnet_arg_scope(weight_decay=5e-4, batch_norm_decay=0.9, batch_norm_epsilon=2e-5):
    """insightface's settings: L2 ``weight_decay`` on convolution and FC weights, MSRA
    (fan-out, normal) initialisation, batch norm with momentum 0.9 and epsilon 2e-5;
    convolutions without bias or activation (batch norm and PReLU follow them)."""
    with slim.arg_scope(
            [slim.conv2d, slim.fully_connected],
            weights_regularizer=slim.l2_regularizer(weight_decay) if weight_decay else None,
            weights_initializer=tf.variance_scaling_initializer(2.0, "fan_out",
                                                                "truncated_normal")):
        with slim.arg_scope([slim.conv2d], activation_fn=None, biases_initializer=None):
            with slim.arg_scope([slim.batch_norm], decay=batch_norm_decay,
                                epsilon=batch_norm_epsilon, scale=True) as sc:
                return sc


def make_network_fn(depth):
    """Returns the registry's ``fn(images, num_classes, is_training, ...)`` for one depth."""
    def network_fn(images, num_classes, is_training=False, dropout_keep_prob=0.6,
                   embedding_size=DEFAULT_EMBEDDING_SIZE):
        return irresnet(images, num_classes, is_training=is_training, depth=depth,
                        embedding_size=embedding_size, dropout_keep_prob=dropout_keep_prob,
                        scope="irresnet_%d" % depth)

    network_fn.__name__ = "irresnet_%d" % depth
    network_fn.default_image_size = DEFAULT_IMAGE_SIZE
    return network_fn
