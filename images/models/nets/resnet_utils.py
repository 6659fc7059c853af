"""Building blocks of the residual networks, TF-slim's ``nets.resnet_utils``.

``Block``, ``subsample`` and ``conv2d_same`` are tf-slim's own; ``stack_blocks_dense`` and
``resnet_arg_scope`` are written here with the arguments tf-slim 1.1.0 lacks
(``store_non_strided_activations``; ``activation_fn``, ``use_batch_norm``,
``batch_norm_updates_collections``).  As in slim, each block subsamples in its last unit rather
than its first.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim
from tf_slim.nets.resnet_utils import Block, conv2d_same, subsample  # noqa: F401  (slim's)


@slim.add_arg_scope
def stack_blocks_dense(net, blocks, output_stride=None, store_non_strided_activations=False,
                       outputs_collections=None):
    """Stacks ResNet ``Block``s (scopes ``<block>/unit_<i>``) at a chosen output density.

    Args:
      net: ``[batch, height, width, channels]``.
      blocks: the :class:`Block` list.
      output_stride: ratio of input to output resolution (None: the blocks' nominal stride);
        once reached, later strides become atrous rates.
      store_non_strided_activations: run each block's last unit at stride 1 and subsample after
        collecting its output, so the collected activations are at full resolution (4x the
        cost of those units).
      outputs_collections: collection that receives every block's output.

    Returns:
      The output at ``output_stride``.

    Raises:
      ValueError: ``output_stride`` cannot be reached with the blocks' strides.
    """
    current_stride = 1
    rate = 1
    for block in blocks:
        with tf.variable_scope(block.scope, 'block', [net]) as sc:
            block_stride = 1
            for i, unit in enumerate(block.args):
                if store_non_strided_activations and i == len(block.args) - 1:
                    block_stride = unit.get('stride', 1)
                    unit = dict(unit, stride=1)
                with tf.variable_scope('unit_%d' % (i + 1), values=[net]):
                    if output_stride is not None and current_stride == output_stride:
                        net = block.unit_fn(net, rate=rate, **dict(unit, stride=1))
                        rate *= unit.get('stride', 1)
                    else:
                        net = block.unit_fn(net, rate=1, **unit)
                        current_stride *= unit.get('stride', 1)
                        if output_stride is not None and current_stride > output_stride:
                            raise ValueError('The target output_stride cannot be reached.')
            net = slim.utils.collect_named_outputs(outputs_collections, sc.name, net)
            if output_stride is not None and current_stride == output_stride:
                rate *= block_stride
            else:
                net = subsample(net, block_stride)
                current_stride *= block_stride
                if output_stride is not None and current_stride > output_stride:
                    raise ValueError('The target output_stride cannot be reached.')
    if output_stride is not None and current_stride != output_stride:
        raise ValueError('The target output_stride cannot be reached.')
    return net


def resnet_arg_scope(weight_decay=0.0001, batch_norm_decay=0.997, batch_norm_epsilon=1e-5,
                     batch_norm_scale=True, activation_fn=tf.nn.relu, use_batch_norm=True,
                     batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS):
    """slim's ResNet hyper-parameters.

    Args:
      weight_decay: L2 coefficient of the convolution weights.
      batch_norm_decay: decay of the moving averages.
      batch_norm_epsilon: added to the variance.
      batch_norm_scale: learn a ``gamma`` in every batch norm.
      activation_fn: activation of the convolutions.
      use_batch_norm: batch norm after every convolution.
      batch_norm_updates_collections: collection of the moving-average updates.

    Returns:
      An ``arg_scope`` (max pooling with SAME padding, as slim's checkpoints were trained).
    """
    batch_norm_params = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                         "scale": batch_norm_scale,
                         "updates_collections": batch_norm_updates_collections,
                         "fused": None}
    with slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay),
                        weights_initializer=slim.variance_scaling_initializer(),
                        activation_fn=activation_fn,
                        normalizer_fn=slim.batch_norm if use_batch_norm else None,
                        normalizer_params=batch_norm_params):
        with slim.arg_scope([slim.batch_norm], **batch_norm_params):
            with slim.arg_scope([slim.max_pool2d], padding='SAME') as arg_sc:
                return arg_sc
