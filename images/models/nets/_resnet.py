"""The generic ResNet builder shared by :mod:`resnet_v1` and :mod:`resnet_v2` (slim's structure:
root block, stacked blocks, optional post-norm, global pool, 1x1 logits, squeeze, softmax)."""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets import resnet_utils
from images.models.nets._blocks import NoOpScope


def build(inputs, blocks, unit_fn, default_scope, num_classes, is_training, global_pool,
          output_stride, include_root_block, spatial_squeeze, store_non_strided_activations,
          reuse, scope, preactivation):
    """Builds a v1 (``preactivation`` False) or v2 ResNet; see ``resnet_v1.resnet_v1``."""
    with tf.variable_scope(scope, default_scope, [inputs], reuse=reuse) as sc:
        collection = sc.original_name_scope + '_end_points'
        with slim.arg_scope([slim.conv2d, unit_fn, resnet_utils.stack_blocks_dense],
                            outputs_collections=collection):
            with (slim.arg_scope([slim.batch_norm], is_training=is_training)
                  if is_training is not None else NoOpScope()):
                net = inputs
                if include_root_block:
                    if output_stride is not None:
                        if output_stride % 4 != 0:
                            raise ValueError('The output_stride needs to be a multiple of 4.')
                        output_stride /= 4
                    # v2's first unit normalises and activates, so its root conv does neither.
                    root = (slim.arg_scope([slim.conv2d], activation_fn=None, normalizer_fn=None)
                            if preactivation else NoOpScope())
                    with root:
                        net = resnet_utils.conv2d_same(net, 64, 7, stride=2, scope='conv1')
                    net = slim.max_pool2d(net, [3, 3], stride=2, scope='pool1')
                net = resnet_utils.stack_blocks_dense(net, blocks, output_stride,
                                                      store_non_strided_activations)
                if preactivation:
                    net = slim.batch_norm(net, activation_fn=tf.nn.relu, scope='postnorm')
                end_points = slim.utils.convert_collection_to_dict(collection)
                if global_pool:
                    net = tf.reduce_mean(net, [1, 2], name='pool5', keepdims=True)
                    end_points['global_pool'] = net
                if num_classes:
                    net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                      normalizer_fn=None, scope='logits')
                    end_points[sc.name + '/logits'] = net
                    if spatial_squeeze:
                        net = tf.squeeze(net, [1, 2], name='SpatialSqueeze')
                        end_points[sc.name + '/spatial_squeeze'] = net
                    end_points['predictions'] = slim.softmax(net, scope='predictions')
                return net, end_points


def block(scope, unit_fn, base_depth, num_units, stride):
    """A bottleneck :class:`~resnet_utils.Block`: ``num_units`` units, the last one strided."""
    unit = {'depth': base_depth * 4, 'depth_bottleneck': base_depth, 'stride': 1}
    return resnet_utils.Block(scope, unit_fn, [unit] * (num_units - 1) + [dict(unit,
                                                                             stride=stride)])


# Units per block of the published depths (each block: base depth 64, 128, 256, 512).
UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}
