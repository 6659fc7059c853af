"""OverFeat (Sermanet et al. 2014, the "fast" model), TF-slim's ``nets.overfeat``.

Usage, as with slim::

    with slim.arg_scope(overfeat.overfeat_arg_scope()):
        outputs, end_points = overfeat.overfeat(inputs)

The arg scope is tf-slim's own; the builder adds what tf-slim 1.1.0 lacks (``global_pool``,
``num_classes`` 0/None returning the ``fc7`` features).
"""
from tf_slim.nets.overfeat import overfeat_arg_scope  # noqa: F401  (slim's, unchanged)

from images.models.nets import _convnet
from images.models.nets._blocks import trunc_normal  # noqa: F401  (slim's module attribute)

_TRUNK = [("conv", 64, [11, 11], 4, "VALID", "conv1", 0),
          ("max_pool", None, [2, 2], None, None, "pool1", 0),
          ("conv", 256, [5, 5], None, "VALID", "conv2", 0),
          ("max_pool", None, [2, 2], None, None, "pool2", 0),
          ("conv", 512, [3, 3], None, None, "conv3", 0),
          ("conv", 1024, [3, 3], None, None, "conv4", 0),
          ("conv", 1024, [3, 3], None, None, "conv5", 0),
          ("max_pool", None, [2, 2], None, None, "pool5", 0)]


def overfeat(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
             spatial_squeeze=True, scope='overfeat', global_pool=False):
    """OverFeat (all fully connected layers as convolutions).

    Args:
      inputs: ``[batch, height, width, channels]``; 231x231 for classification (the smallest
        input ``fc6``'s VALID 6x6 convolution accepts).
      num_classes: number of classes; 0 or None omits ``fc8`` and returns the ``fc7`` output
        (before its dropout), ``[batch, 1, 1, 4096]`` at 231x231.
      is_training: dropout in training mode.
      dropout_keep_prob: keep probability of the dropouts after ``fc6`` and ``fc7``.
      spatial_squeeze: logits ``[batch, classes]`` rather than ``[batch, 1, 1, classes]``.
      scope: variable scope.
      global_pool: average ``fc7`` over its whole map before ``fc8``.

    Returns:
      ``(net, end_points)``: the logits (or ``fc7``) and every layer's output by name.
    """
    return _convnet.build(inputs, _TRUNK, (3072, [6, 6]), num_classes, is_training,
                          dropout_keep_prob, spatial_squeeze, scope, "overfeat", global_pool,
                          fc_initializers=True)


overfeat.default_image_size = 231
