"""AlexNet v2 (Krizhevsky 2014, "One weird trick for parallelizing convolutional neural
networks"), TF-slim's ``nets.alexnet``.

Usage, as with slim::

    with slim.arg_scope(alexnet.alexnet_v2_arg_scope()):
        outputs, end_points = alexnet.alexnet_v2(inputs)

The arg scope is tf-slim's own; the builder adds what tf-slim 1.1.0 lacks (``global_pool``,
``num_classes`` 0/None returning the ``fc7`` features).
"""
from tf_slim.nets.alexnet import alexnet_v2_arg_scope  # noqa: F401  (slim's, unchanged)

from images.models.nets import _convnet
from images.models.nets._blocks import trunc_normal  # noqa: F401  (slim's module attribute)

_TRUNK = [("conv", 64, [11, 11], 4, "VALID", "conv1", 0),
          ("max_pool", None, [3, 3], 2, None, "pool1", 0),
          ("conv", 192, [5, 5], None, None, "conv2", 0),
          ("max_pool", None, [3, 3], 2, None, "pool2", 0),
          ("conv", 384, [3, 3], None, None, "conv3", 0),
          ("conv", 384, [3, 3], None, None, "conv4", 0),
          ("conv", 256, [3, 3], None, None, "conv5", 0),
          ("max_pool", None, [3, 3], 2, None, "pool5", 0)]


def alexnet_v2(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
               spatial_squeeze=True, scope='alexnet_v2', global_pool=False):
    """AlexNet version 2 (all fully connected layers as convolutions).

    Args:
      inputs: ``[batch, height, width, channels]``; 224x224 for classification, or any size
        with ``global_pool`` (at least 195x195: ``fc6`` is a VALID 5x5 convolution).
      num_classes: number of classes; 0 or None omits ``fc8`` and returns the ``fc7`` output
        (before its dropout), ``[batch, 1, 1, 4096]`` at 224x224.
      is_training: dropout in training mode.
      dropout_keep_prob: keep probability of the dropouts after ``fc6`` and ``fc7``.
      spatial_squeeze: logits ``[batch, classes]`` rather than ``[batch, 1, 1, classes]``.
      scope: variable scope.
      global_pool: average ``fc7`` over its whole map (any input size) before ``fc8``.

    Returns:
      ``(net, end_points)``: the logits (or ``fc7``) and every layer's output by name.
    """
    return _convnet.build(inputs, _TRUNK, (4096, [5, 5]), num_classes, is_training,
                          dropout_keep_prob, spatial_squeeze, scope, "alexnet_v2", global_pool,
                          fc_initializers=True)


alexnet_v2.default_image_size = 224
