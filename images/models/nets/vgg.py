"""VGG A (11 layers), 16 (D) and 19 (E) of Simonyan and Zisserman 2014, TF-slim's ``nets.vgg``.

Usage, as with slim::

    with slim.arg_scope(vgg.vgg_arg_scope()):
        outputs, end_points = vgg.vgg_16(inputs)

The arg scope is tf-slim's own; the builders add what tf-slim 1.1.0 lacks (``fc_conv_padding``,
``global_pool``, ``num_classes`` 0/None returning the ``fc7`` features).
"""
from tf_slim.nets.vgg import vgg_arg_scope  # noqa: F401  (slim's, unchanged)

from images.models.nets import _convnet

# Convolutions per stage (64, 128, 256, 512, 512 filters, 3x3, each stage ending in a 2x2 pool).
_STAGES = {"vgg_a": (1, 1, 2, 2, 2), "vgg_16": (2, 2, 3, 3, 3), "vgg_19": (2, 2, 4, 4, 4)}


def _trunk(name):
    layers = []
    for i, (count, depth) in enumerate(zip(_STAGES[name], (64, 128, 256, 512, 512))):
        layers.append(("conv", depth, [3, 3], None, None, "conv%d" % (i + 1), count))
        layers.append(("max_pool", None, [2, 2], None, None, "pool%d" % (i + 1), 0))
    return layers


def _vgg(name, inputs, num_classes, is_training, dropout_keep_prob, spatial_squeeze, scope,
         fc_conv_padding, global_pool):
    return _convnet.build(inputs, _trunk(name), (4096, [7, 7]), num_classes, is_training,
                          dropout_keep_prob, spatial_squeeze, scope, name, global_pool,
                          fc6_padding=fc_conv_padding)


_ARGS_DOC = """
    Args:
      inputs: ``[batch, height, width, channels]``, 224x224 for classification; with
        ``fc_conv_padding='SAME'`` and ``global_pool`` any size from 32x32.
      num_classes: number of classes; 0 or None omits ``fc8`` and returns the ``fc7`` output
        (before its dropout), ``[batch, 1, 1, 4096]`` at 224x224.
      is_training: dropout in training mode.
      dropout_keep_prob: keep probability of the dropouts after ``fc6`` and ``fc7``.
      spatial_squeeze: logits ``[batch, classes]`` rather than ``[batch, 1, 1, classes]``.
      scope: variable scope.
      fc_conv_padding: padding of ``fc6`` (a 7x7 convolution): 'VALID' gives
        ``input / 32 - 6`` outputs per side, 'SAME' ``input / 32`` (fully convolutional use).
      global_pool: average ``fc7`` over its whole map (any input size) before ``fc8``.

    Returns:
      ``(net, end_points)``: the logits (or ``fc7``) and every layer's output by name.
    """


def vgg_a(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
          spatial_squeeze=True, scope='vgg_a', fc_conv_padding='VALID', global_pool=False):
    return _vgg("vgg_a", inputs, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
                scope, fc_conv_padding, global_pool)


def vgg_16(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
           spatial_squeeze=True, scope='vgg_16', fc_conv_padding='VALID', global_pool=False):
    return _vgg("vgg_16", inputs, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
                scope, fc_conv_padding, global_pool)


def vgg_19(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5,
           spatial_squeeze=True, scope='vgg_19', fc_conv_padding='VALID', global_pool=False):
    return _vgg("vgg_19", inputs, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
                scope, fc_conv_padding, global_pool)


vgg_a.__doc__ = "VGG 11-layer model (configuration A)." + _ARGS_DOC
vgg_16.__doc__ = "VGG 16-layer model (configuration D)." + _ARGS_DOC
vgg_19.__doc__ = "VGG 19-layer model (configuration E)." + _ARGS_DOC
vgg_a.default_image_size = 224
vgg_16.default_image_size = 224
vgg_19.default_image_size = 224

# slim's aliases.
vgg_d = vgg_16
vgg_e = vgg_19
