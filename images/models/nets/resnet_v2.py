"""ResNet v2 (He et al. 2016, "Identity Mappings in Deep Residual Networks"), TF-slim's
``nets.resnet_v2``: full pre-activation bottleneck units (batch norm before every convolution),
a ``postnorm`` after the last block.

Typical use, as with slim::

    with slim.arg_scope(resnet_v2.resnet_arg_scope()):
        net, end_points = resnet_v2.resnet_v2_101(inputs, 1000, is_training=False)

The unit is tf-slim's own ``bottleneck``; beyond tf-slim 1.1.0 the builders have
``spatial_squeeze`` and the ``global_pool`` / ``spatial_squeeze`` end points.
"""
from tf_slim.nets.resnet_v2 import bottleneck  # noqa: F401  (slim's, unchanged)

from images.models.nets import _resnet, resnet_utils

resnet_arg_scope = resnet_utils.resnet_arg_scope


def resnet_v2(inputs, blocks, num_classes=None, is_training=True, global_pool=True,
              output_stride=None, include_root_block=True, spatial_squeeze=True, reuse=None,
              scope=None):
    """Generic ResNet v2 from a list of :class:`resnet_utils.Block`.

    Args:
      inputs: ``[batch, height, width, channels]``.
      blocks: the blocks (see :func:`resnet_v2_block`).
      num_classes: number of classes; 0 or None returns the features before the logits
        (``pool5``, ``[batch, 1, 1, depth]`` with ``global_pool``).
      is_training: batch norm in training mode.
      global_pool: average the last map (classification); False for dense prediction.
      output_stride: ratio of input to output resolution (a multiple of 4); atrous beyond.
      include_root_block: build the 7x7 convolution (no batch norm or activation) and max
        pooling first; without it ``inputs`` should come from an activation-less convolution.
      spatial_squeeze: logits ``[batch, classes]`` rather than ``[batch, 1, 1, classes]``.
      reuse: reuse the variables of ``scope``.
      scope: variable scope (default 'resnet_v2').

    Returns:
      ``(net, end_points)``; end points include every unit and block, ``global_pool``,
      ``<scope>/logits``, ``<scope>/spatial_squeeze`` and ``predictions``.

    Raises:
      ValueError: an ``output_stride`` that cannot be reached.
    """
    return _resnet.build(inputs, blocks, bottleneck, 'resnet_v2', num_classes, is_training,
                         global_pool, output_stride, include_root_block, spatial_squeeze,
                         False, reuse, scope, preactivation=True)


resnet_v2.default_image_size = 224


def resnet_v2_block(scope, base_depth, num_units, stride):
    """A block of ``num_units`` v2 bottlenecks of inner depth ``base_depth``, the last strided."""
    return _resnet.block(scope, bottleneck, base_depth, num_units, stride)


def _resnet_v2_depth(depth, inputs, num_classes, is_training, global_pool, output_stride,
                     spatial_squeeze, reuse, scope):
    blocks = [resnet_v2_block('block%d' % (i + 1), base_depth=base, num_units=units,
                              stride=2 if i < 3 else 1)
              for i, (base, units) in enumerate(zip((64, 128, 256, 512), _resnet.UNITS[depth]))]
    return resnet_v2(inputs, blocks, num_classes, is_training=is_training,
                     global_pool=global_pool, output_stride=output_stride,
                     include_root_block=True, spatial_squeeze=spatial_squeeze, reuse=reuse,
                     scope=scope)


def resnet_v2_50(inputs, num_classes=None, is_training=True, global_pool=True,
                 output_stride=None, spatial_squeeze=True, reuse=None, scope='resnet_v2_50'):
    """ResNet-50 v2; arguments as :func:`resnet_v2`."""
    return _resnet_v2_depth(50, inputs, num_classes, is_training, global_pool, output_stride,
                            spatial_squeeze, reuse, scope)


def resnet_v2_101(inputs, num_classes=None, is_training=True, global_pool=True,
                  output_stride=None, spatial_squeeze=True, reuse=None, scope='resnet_v2_101'):
    """ResNet-101 v2; arguments as :func:`resnet_v2`."""
    return _resnet_v2_depth(101, inputs, num_classes, is_training, global_pool, output_stride,
                            spatial_squeeze, reuse, scope)


def resnet_v2_152(inputs, num_classes=None, is_training=True, global_pool=True,
                  output_stride=None, spatial_squeeze=True, reuse=None, scope='resnet_v2_152'):
    """ResNet-152 v2; arguments as :func:`resnet_v2`."""
    return _resnet_v2_depth(152, inputs, num_classes, is_training, global_pool, output_stride,
                            spatial_squeeze, reuse, scope)


def resnet_v2_200(inputs, num_classes=None, is_training=True, global_pool=True,
                  output_stride=None, spatial_squeeze=True, reuse=None, scope='resnet_v2_200'):
    """ResNet-200 v2; arguments as :func:`resnet_v2`."""
    return _resnet_v2_depth(200, inputs, num_classes, is_training, global_pool, output_stride,
                            spatial_squeeze, reuse, scope)


for _fn in (resnet_v2_50, resnet_v2_101, resnet_v2_152, resnet_v2_200):
    _fn.default_image_size = resnet_v2.default_image_size
