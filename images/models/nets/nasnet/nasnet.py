"""NASNet-A (Zoph et al. 2018, "Learning Transferable Architectures for Scalable Image
Recognition"), TF-slim's ``nets.nasnet.nasnet``: the CIFAR, Mobile (4 @ 1056) and Large
(6 @ 4032) models, their configurations and arg scopes.

The networks have no top-level scope: variables are ``conv0``, ``cell_stem_<i>``, ``cell_<n>``,
``reduction_cell_<i>``, ``aux_<n>`` and ``final_layer/FC``, as in the published checkpoints.
"""
import copy

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets.nasnet import nasnet_utils
from images.models.nets.nasnet.hparams import HParams

arg_scope = slim.arg_scope


def _config(**values):
    base = dict(filter_scaling_rate=2.0, num_reduction_layers=2, data_format='NHWC',
                use_aux_head=1, use_bounded_activation=False)
    base.update(values)
    return HParams(**base)


def cifar_config():
    """NASNet-A CIFAR: 18 normal cells of 32 filters (batch 32, 600 epochs in training)."""
    return _config(stem_multiplier=3.0, drop_path_keep_prob=0.6, num_cells=18,
                   num_conv_filters=32, dense_dropout_keep_prob=1.0,
                   skip_reduction_layer_input=0, total_training_steps=937500)


def large_imagenet_config():
    """NASNet-A Large: 18 normal cells of 168 filters."""
    return _config(stem_multiplier=3.0, dense_dropout_keep_prob=0.5, num_cells=18,
                   num_conv_filters=168, drop_path_keep_prob=0.7,
                   skip_reduction_layer_input=1, total_training_steps=250000)


def mobile_imagenet_config():
    """NASNet-A Mobile: 12 normal cells of 44 filters, no drop-path."""
    return _config(stem_multiplier=1.0, dense_dropout_keep_prob=0.5, num_cells=12,
                   drop_path_keep_prob=1.0, num_conv_filters=44,
                   skip_reduction_layer_input=0, total_training_steps=250000)


def _update_hparams(hparams, is_training):
    """Drop-path only acts in training."""
    if not is_training:
        hparams.set_hparam('drop_path_keep_prob', 1.0)


def _nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon):
    batch_norm_params = {'decay': batch_norm_decay, 'epsilon': batch_norm_epsilon,
                         'scale': True, 'fused': True}
    with arg_scope([slim.fully_connected, slim.conv2d, slim.separable_conv2d],
                   weights_regularizer=slim.l2_regularizer(weight_decay),
                   weights_initializer=slim.variance_scaling_initializer(mode='FAN_OUT')):
        with arg_scope([slim.fully_connected], activation_fn=None, scope='FC'):
            # Each cell applies its own activations and batch norms.
            with arg_scope([slim.conv2d, slim.separable_conv2d], activation_fn=None,
                           biases_initializer=None):
                with arg_scope([slim.batch_norm], **batch_norm_params) as sc:
                    return sc


def nasnet_cifar_arg_scope(weight_decay=5e-4, batch_norm_decay=0.9, batch_norm_epsilon=1e-5):
    """The arg scope of NASNet-A CIFAR (L2 ``weight_decay``, batch-norm decay and epsilon)."""
    return _nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def nasnet_mobile_arg_scope(weight_decay=4e-5, batch_norm_decay=0.9997,
                            batch_norm_epsilon=1e-3):
    """The arg scope of NASNet-A Mobile (L2 ``weight_decay``, batch-norm decay and epsilon)."""
    return _nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def nasnet_large_arg_scope(weight_decay=5e-5, batch_norm_decay=0.9997,
                           batch_norm_epsilon=1e-3):
    """The arg scope of NASNet-A Large (L2 ``weight_decay``, batch-norm decay and epsilon)."""
    return _nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def _build_aux_head(net, end_points, num_classes, hparams, scope):
    """The auxiliary classifier: 5x5/3 average pool, 1x1 to 128, full-map conv to 768, FC."""
    activation_fn = tf.nn.relu6 if hparams.use_bounded_activation else tf.nn.relu
    with tf.variable_scope(scope):
        aux_logits = tf.identity(net)
        with tf.variable_scope('aux_logits'):
            aux_logits = slim.avg_pool2d(aux_logits, [5, 5], stride=3, padding='VALID')
            aux_logits = slim.conv2d(aux_logits, 128, [1, 1], scope='proj')
            aux_logits = activation_fn(slim.batch_norm(aux_logits, scope='aux_bn0'))
            shape = aux_logits.shape
            shape = shape[1:3] if hparams.data_format == 'NHWC' else shape[2:4]
            aux_logits = slim.conv2d(aux_logits, 768, shape, padding='VALID')
            aux_logits = activation_fn(slim.batch_norm(aux_logits, scope='aux_bn1'))
            aux_logits = slim.flatten(aux_logits)
            end_points['AuxLogits'] = slim.fully_connected(aux_logits, num_classes)


def _imagenet_stem(inputs, hparams, stem_cell, current_step=None):
    """A strided 3x3 convolution, then two strided stem cells."""
    num_stem_cells = 2
    net = slim.conv2d(inputs, int(32 * hparams.stem_multiplier), [3, 3], stride=2,
                      scope='conv0', padding='VALID')
    net = slim.batch_norm(net, scope='conv0_bn')
    cell_outputs = [None, net]
    filter_scaling = 1.0 / (hparams.filter_scaling_rate ** num_stem_cells)
    for cell_num in range(num_stem_cells):
        net = stem_cell(net, scope='cell_stem_{}'.format(cell_num),
                        filter_scaling=filter_scaling, stride=2, prev_layer=cell_outputs[-2],
                        cell_num=cell_num, current_step=current_step)
        cell_outputs.append(net)
        filter_scaling *= hparams.filter_scaling_rate
    return net, cell_outputs


def _cifar_stem(inputs, hparams):
    """One 3x3 convolution at full resolution."""
    net = slim.conv2d(inputs, int(hparams.num_conv_filters * hparams.stem_multiplier), 3,
                      scope='l1_stem_3x3')
    net = slim.batch_norm(net, scope='l1_stem_bn')
    return net, [None, net]


def _data_format_scopes(hparams, is_training):
    """The two arg scopes every builder enters: training mode and the data format."""
    return (arg_scope([slim.dropout, nasnet_utils.drop_path, slim.batch_norm],
                      is_training=is_training),
            arg_scope([slim.avg_pool2d, slim.max_pool2d, slim.conv2d, slim.batch_norm,
                       slim.separable_conv2d, nasnet_utils.factorized_reduction,
                       nasnet_utils.global_avg_pool, nasnet_utils.get_channel_index,
                       nasnet_utils.get_channel_dim], data_format=hparams.data_format))


def _prepare(config, default_config, is_training, images):
    hparams = default_config() if config is None else copy.deepcopy(config)
    _update_hparams(hparams, is_training)
    if hparams.data_format == 'NCHW':
        images = tf.transpose(images, [0, 3, 1, 2])
    return hparams, images


def _build(images, num_classes, is_training, final_endpoint, config, current_step,
           default_config, stem_type):
    hparams, images = _prepare(config, default_config, is_training, images)
    # The reduction cells count too; an ImageNet stem adds two more.
    total_num_cells = hparams.num_cells + 2 + (2 if stem_type == 'imagenet' else 0)
    cell_args = (hparams.num_conv_filters, hparams.drop_path_keep_prob, total_num_cells,
                 hparams.total_training_steps, hparams.use_bounded_activation)
    normal_cell = nasnet_utils.NasNetANormalCell(*cell_args)
    reduction_cell = nasnet_utils.NasNetAReductionCell(*cell_args)
    training_scope, format_scope = _data_format_scopes(hparams, is_training)
    with training_scope, format_scope:
        return _build_nasnet_base(images, normal_cell=normal_cell,
                                  reduction_cell=reduction_cell, num_classes=num_classes,
                                  hparams=hparams, is_training=is_training,
                                  stem_type=stem_type, final_endpoint=final_endpoint,
                                  current_step=current_step)


def build_nasnet_cifar(images, num_classes, is_training=True, config=None, current_step=None):
    """NASNet-A for CIFAR (32x32 inputs).

    Args:
      images: ``[batch, 32, 32, 3]``.
      num_classes: number of classes; 0/None returns the pooled features ``[batch, depth]``.
      is_training: batch norm, dropout and drop-path in training mode (and the auxiliary head).
      config: an :class:`HParams` like :func:`cifar_config`'s (copied, not changed).
      current_step: the step drop-path follows (default: the global step).

    Returns:
      ``(logits, end_points)``.
    """
    return _build(images, num_classes, is_training, None, config, current_step, cifar_config,
                  'cifar')


build_nasnet_cifar.default_image_size = 32


def build_nasnet_mobile(images, num_classes, is_training=True, final_endpoint=None,
                        config=None, current_step=None):
    """NASNet-A Mobile (224x224 inputs).

    Args:
      images: ``[batch, height, width, 3]``.
      num_classes: number of classes; 0/None returns the pooled features ``[batch, 1056]``.
      is_training: batch norm, dropout and drop-path in training mode (and the auxiliary head).
      final_endpoint: stop at 'Stem', 'Cell_<i>', 'Reduction_Cell_<i>', 'global_pool',
        'Logits' or 'Predictions'.
      config: an :class:`HParams` like :func:`mobile_imagenet_config`'s.
      current_step: the step drop-path follows (default: the global step).

    Returns:
      ``(logits, end_points)``.
    """
    return _build(images, num_classes, is_training, final_endpoint, config, current_step,
                  mobile_imagenet_config, 'imagenet')


build_nasnet_mobile.default_image_size = 224


def build_nasnet_large(images, num_classes, is_training=True, final_endpoint=None,
                       config=None, current_step=None):
    """NASNet-A Large (331x331 inputs); arguments as :func:`build_nasnet_mobile` (features
    ``[batch, 4032]``, config like :func:`large_imagenet_config`'s)."""
    return _build(images, num_classes, is_training, final_endpoint, config, current_step,
                  large_imagenet_config, 'imagenet')


build_nasnet_large.default_image_size = 331


def _build_nasnet_base(images, normal_cell, reduction_cell, num_classes, hparams, is_training,
                       stem_type, final_endpoint=None, current_step=None):
    """Stem, cells (reductions before the normal cells at the reduction indices, the auxiliary
    head after the cell before the second reduction) and the final layer."""
    end_points = {}

    def add_and_check_endpoint(endpoint_name, net):
        end_points[endpoint_name] = net
        return final_endpoint and (endpoint_name == final_endpoint)

    reduction_indices = nasnet_utils.calc_reduction_layers(hparams.num_cells,
                                                           hparams.num_reduction_layers)
    if stem_type == 'imagenet':
        net, cell_outputs = _imagenet_stem(images, hparams, reduction_cell)
    elif stem_type == 'cifar':
        net, cell_outputs = _cifar_stem(images, hparams)
    else:
        raise ValueError('Unknown stem_type: ', stem_type)
    if add_and_check_endpoint('Stem', net):
        return net, end_points
    aux_head_cell_idxes = [reduction_indices[1] - 1] if len(reduction_indices) >= 2 else []
    filter_scaling = 1.0
    true_cell_num = 2 if stem_type == 'imagenet' else 0
    activation_fn = tf.nn.relu6 if hparams.use_bounded_activation else tf.nn.relu
    for cell_num in range(hparams.num_cells):
        if hparams.skip_reduction_layer_input:
            prev_layer = cell_outputs[-2]
        if cell_num in reduction_indices:
            filter_scaling *= hparams.filter_scaling_rate
            index = reduction_indices.index(cell_num)
            net = reduction_cell(net, scope='reduction_cell_{}'.format(index),
                                 filter_scaling=filter_scaling, stride=2,
                                 prev_layer=cell_outputs[-2], cell_num=true_cell_num,
                                 current_step=current_step)
            if add_and_check_endpoint('Reduction_Cell_{}'.format(index), net):
                return net, end_points
            true_cell_num += 1
            cell_outputs.append(net)
        if not hparams.skip_reduction_layer_input:
            prev_layer = cell_outputs[-2]
        net = normal_cell(net, scope='cell_{}'.format(cell_num), filter_scaling=filter_scaling,
                          stride=1, prev_layer=prev_layer, cell_num=true_cell_num,
                          current_step=current_step)
        if add_and_check_endpoint('Cell_{}'.format(cell_num), net):
            return net, end_points
        true_cell_num += 1
        if (hparams.use_aux_head and cell_num in aux_head_cell_idxes and num_classes
                and is_training):
            _build_aux_head(activation_fn(net), end_points, num_classes, hparams,
                            scope='aux_{}'.format(cell_num))
        cell_outputs.append(net)
    return _final_layer(net, end_points, num_classes, hparams, activation_fn,
                        add_and_check_endpoint)


def _final_layer(net, end_points, num_classes, hparams, activation_fn, add_and_check_endpoint):
    """``final_layer``: activation, global average, dropout, ``FC``, softmax ``predictions``."""
    with tf.variable_scope('final_layer'):
        net = nasnet_utils.global_avg_pool(activation_fn(net))
        if add_and_check_endpoint('global_pool', net) or not num_classes:
            return net, end_points
        net = slim.dropout(net, hparams.dense_dropout_keep_prob, scope='dropout')
        logits = slim.fully_connected(net, num_classes)
        if add_and_check_endpoint('Logits', logits):
            return net, end_points
        predictions = tf.nn.softmax(logits, name='predictions')
        if add_and_check_endpoint('Predictions', predictions):
            return net, end_points
    return logits, end_points
