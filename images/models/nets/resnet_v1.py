"""ResNet v1 (He et al. 2015, "Deep Residual Learning for Image Recognition"), TF-slim's
``nets.resnet_v1``: bottleneck units with batch norm after every convolution, the stride in the
last unit of each block.

Typical use, as with slim::

    with slim.arg_scope(resnet_v1.resnet_arg_scope()):
        net, end_points = resnet_v1.resnet_v1_101(inputs, 1000, is_training=False)

Beyond tf-slim 1.1.0: ``spatial_squeeze``, ``store_non_strided_activations``,
``min_base_depth``/``depth_multiplier``, ``use_bounded_activations`` and ``global_pool`` /
``spatial_squeeze`` end points.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets import _resnet, resnet_utils

resnet_arg_scope = resnet_utils.resnet_arg_scope
NoOpScope = _resnet.NoOpScope


@slim.add_arg_scope
def bottleneck(inputs, depth, depth_bottleneck, stride, rate=1, outputs_collections=None,
               scope=None, use_bounded_activations=False):
    """Bottleneck unit: 1x1, 3x3 (strided), 1x1, each with batch norm; projection shortcut
    when the depth changes.

    Args:
      inputs: ``[batch, height, width, channels]``.
      depth: output depth.
      depth_bottleneck: depth of the inner convolutions.
      stride: the unit's stride.
      rate: atrous rate of the 3x3.
      outputs_collections: collection that receives the output.
      scope: variable scope (default 'bottleneck_v1').
      use_bounded_activations: relu6 and a clipped residual (quantised inference).

    Returns:
      The unit's output.
    """
    with tf.variable_scope(scope, 'bottleneck_v1', [inputs]) as sc:
        depth_in = slim.utils.last_dimension(inputs.get_shape(), min_rank=4)
        if depth == depth_in:
            shortcut = resnet_utils.subsample(inputs, stride, 'shortcut')
        else:
            shortcut = slim.conv2d(inputs, depth, [1, 1], stride=stride,
                                   activation_fn=tf.nn.relu6 if use_bounded_activations
                                   else None, scope='shortcut')
        residual = slim.conv2d(inputs, depth_bottleneck, [1, 1], stride=1, scope='conv1')
        residual = resnet_utils.conv2d_same(residual, depth_bottleneck, 3, stride, rate=rate,
                                            scope='conv2')
        residual = slim.conv2d(residual, depth, [1, 1], stride=1, activation_fn=None,
                               scope='conv3')
        if use_bounded_activations:
            residual = tf.clip_by_value(residual, -6.0, 6.0)
            output = tf.nn.relu6(shortcut + residual)
        else:
            output = tf.nn.relu(shortcut + residual)
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, output)


def resnet_v1(inputs, blocks, num_classes=None, is_training=True, global_pool=True,
              output_stride=None, include_root_block=True, spatial_squeeze=True,
              store_non_strided_activations=False, reuse=None, scope=None):
    """Generic ResNet v1 from a list of :class:`resnet_utils.Block`.

    Args:
      inputs: ``[batch, height, width, channels]``.
      blocks: the blocks (see :func:`resnet_v1_block`).
      num_classes: number of classes; 0 or None returns the features before the logits
        (``pool5``, ``[batch, 1, 1, depth]`` with ``global_pool``).
      is_training: batch norm in training mode; None leaves it to an outer arg_scope.
      global_pool: average the last block's map (classification); False for dense prediction.
      output_stride: ratio of input to output resolution (a multiple of 4); atrous beyond.
      include_root_block: build the 7x7 convolution and max pooling first.
      spatial_squeeze: logits ``[batch, classes]`` rather than ``[batch, 1, 1, classes]``.
      store_non_strided_activations: see :func:`resnet_utils.stack_blocks_dense`.
      reuse: reuse the variables of ``scope``.
      scope: variable scope (default 'resnet_v1').

    Returns:
      ``(net, end_points)``; end points include every unit and block, ``global_pool``,
      ``<scope>/logits``, ``<scope>/spatial_squeeze`` and ``predictions``.

    Raises:
      ValueError: an ``output_stride`` that cannot be reached.
    """
    return _resnet.build(inputs, blocks, bottleneck, 'resnet_v1', num_classes, is_training,
                         global_pool, output_stride, include_root_block, spatial_squeeze,
                         store_non_strided_activations, reuse, scope, preactivation=False)


resnet_v1.default_image_size = 224


def resnet_v1_block(scope, base_depth, num_units, stride):
    """A block of ``num_units`` v1 bottlenecks of inner depth ``base_depth``, the last strided."""
    return _resnet.block(scope, bottleneck, base_depth, num_units, stride)


def _resnet_v1_depth(depth, inputs, num_classes, is_training, global_pool, output_stride,
                     spatial_squeeze, store_non_strided_activations, min_base_depth,
                     depth_multiplier, reuse, scope):
    def depth_func(d):
        return max(int(d * depth_multiplier), min_base_depth)
    blocks = [resnet_v1_block('block%d' % (i + 1), base_depth=depth_func(base), num_units=units,
                              stride=2 if i < 3 else 1)
              for i, (base, units) in enumerate(zip((64, 128, 256, 512), _resnet.UNITS[depth]))]
    return resnet_v1(inputs, blocks, num_classes, is_training, global_pool=global_pool,
                     output_stride=output_stride, include_root_block=True,
                     spatial_squeeze=spatial_squeeze,
                     store_non_strided_activations=store_non_strided_activations,
                     reuse=reuse, scope=scope)


def resnet_v1_50(inputs, num_classes=None, is_training=True, global_pool=True,
                 output_stride=None, spatial_squeeze=True, store_non_strided_activations=False,
                 min_base_depth=8, depth_multiplier=1, reuse=None, scope='resnet_v1_50'):
    """ResNet-50 v1; arguments as :func:`resnet_v1` (``depth_multiplier`` scales every block's
    base depth, at least ``min_base_depth``)."""
    return _resnet_v1_depth(50, inputs, num_classes, is_training, global_pool, output_stride,
                            spatial_squeeze, store_non_strided_activations, min_base_depth,
                            depth_multiplier, reuse, scope)


def resnet_v1_101(inputs, num_classes=None, is_training=True, global_pool=True,
                  output_stride=None, spatial_squeeze=True, store_non_strided_activations=False,
                  min_base_depth=8, depth_multiplier=1, reuse=None, scope='resnet_v1_101'):
    """ResNet-101 v1; arguments as :func:`resnet_v1_50`."""
    return _resnet_v1_depth(101, inputs, num_classes, is_training, global_pool, output_stride,
                            spatial_squeeze, store_non_strided_activations, min_base_depth,
                            depth_multiplier, reuse, scope)


# slim's 152 and 200 take store_non_strided_activations before spatial_squeeze.
def resnet_v1_152(inputs, num_classes=None, is_training=True, global_pool=True,
                  output_stride=None, store_non_strided_activations=False, spatial_squeeze=True,
                  min_base_depth=8, depth_multiplier=1, reuse=None, scope='resnet_v1_152'):
    """ResNet-152 v1; arguments as :func:`resnet_v1_50`."""
    return _resnet_v1_depth(152, inputs, num_classes, is_training, global_pool, output_stride,
                            spatial_squeeze, store_non_strided_activations, min_base_depth,
                            depth_multiplier, reuse, scope)


def resnet_v1_200(inputs, num_classes=None, is_training=True, global_pool=True,
                  output_stride=None, store_non_strided_activations=False, spatial_squeeze=True,
                  min_base_depth=8, depth_multiplier=1, reuse=None, scope='resnet_v1_200'):
    """ResNet-200 v1; arguments as :func:`resnet_v1_50`."""
    return _resnet_v1_depth(200, inputs, num_classes, is_training, global_pool, output_stride,
                            spatial_squeeze, store_non_strided_activations, min_base_depth,
                            depth_multiplier, reuse, scope)


for _fn in (resnet_v1_50, resnet_v1_101, resnet_v1_152, resnet_v1_200):
    _fn.default_image_size = resnet_v1.default_image_size
