"""PNASNet-5 (Liu et al. 2018, "Progressive Neural Architecture Search"), TF-slim's
``nets.nasnet.pnasnet``: the Large and Mobile models, their configurations and arg scopes.

One cell type serves as stem, normal and (with stride 2) reduction cell; cells are named
``cell_<n>`` after the two stems.
"""
import copy

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets.nasnet import nasnet, nasnet_utils
from images.models.nets.nasnet.hparams import HParams

arg_scope = slim.arg_scope


def _config(**values):
    base = dict(dense_dropout_keep_prob=0.5, filter_scaling_rate=2.0, use_aux_head=1,
                num_reduction_layers=2, data_format='NHWC', skip_reduction_layer_input=1,
                total_training_steps=250000, use_bounded_activation=False)
    base.update(values)
    return HParams(**base)


def large_imagenet_config():
    """PNASNet-5 Large: 12 cells of 216 filters."""
    return _config(stem_multiplier=3.0, num_cells=12, num_conv_filters=216,
                   drop_path_keep_prob=0.6)


def mobile_imagenet_config():
    """PNASNet-5 Mobile: 9 cells of 54 filters, no drop-path."""
    return _config(stem_multiplier=1.0, num_cells=9, num_conv_filters=54,
                   drop_path_keep_prob=1.0)


def pnasnet_large_arg_scope(weight_decay=4e-5, batch_norm_decay=0.9997,
                            batch_norm_epsilon=0.001):
    """The arg scope of PNASNet-5 Large (NASNet's, with these coefficients)."""
    return nasnet.nasnet_large_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def pnasnet_mobile_arg_scope(weight_decay=4e-5, batch_norm_decay=0.9997,
                             batch_norm_epsilon=0.001):
    """The arg scope of PNASNet-5 Mobile (NASNet's, with these coefficients)."""
    return nasnet.nasnet_mobile_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def _build_pnasnet_base(images, normal_cell, num_classes, hparams, is_training,
                        final_endpoint=None):
    """Stem, cells (stride 2 at the reduction indices, the auxiliary head after the cell before
    the second one) and the final layer."""
    end_points = {}

    def add_and_check_endpoint(endpoint_name, net):
        end_points[endpoint_name] = net
        return final_endpoint and (endpoint_name == final_endpoint)

    reduction_indices = nasnet_utils.calc_reduction_layers(hparams.num_cells,
                                                           hparams.num_reduction_layers)
    net, cell_outputs = nasnet._imagenet_stem(images, hparams, normal_cell)  # pylint: disable=protected-access
    if add_and_check_endpoint('Stem', net):
        return net, end_points
    aux_head_cell_idxes = [reduction_indices[1] - 1] if len(reduction_indices) >= 2 else []
    filter_scaling = 1.0
    true_cell_num = 2
    activation_fn = tf.nn.relu6 if hparams.use_bounded_activation else tf.nn.relu
    prev_layer = None
    for cell_num in range(hparams.num_cells):
        is_reduction = cell_num in reduction_indices
        stride = 2 if is_reduction else 1
        if is_reduction:
            filter_scaling *= hparams.filter_scaling_rate
        if hparams.skip_reduction_layer_input or not is_reduction:
            prev_layer = cell_outputs[-2]
        net = normal_cell(net, scope='cell_{}'.format(cell_num), filter_scaling=filter_scaling,
                          stride=stride, prev_layer=prev_layer, cell_num=true_cell_num)
        if add_and_check_endpoint('Cell_{}'.format(cell_num), net):
            return net, end_points
        true_cell_num += 1
        cell_outputs.append(net)
        if (hparams.use_aux_head and cell_num in aux_head_cell_idxes and num_classes
                and is_training):
            nasnet._build_aux_head(activation_fn(net), end_points, num_classes, hparams,  # pylint: disable=protected-access
                                   scope='aux_{}'.format(cell_num))
    return nasnet._final_layer(net, end_points, num_classes, hparams, activation_fn,  # pylint: disable=protected-access
                               add_and_check_endpoint)


def _build(images, num_classes, is_training, final_endpoint, config, default_config):
    hparams = copy.deepcopy(config) if config else default_config()
    nasnet._update_hparams(hparams, is_training)  # pylint: disable=protected-access
    if hparams.data_format == 'NCHW':
        images = tf.transpose(images, [0, 3, 1, 2])
    # No reduction cells in PNASNet: the normal cells and the two stem cells.
    total_num_cells = hparams.num_cells + 2
    normal_cell = PNasNetNormalCell(hparams.num_conv_filters, hparams.drop_path_keep_prob,
                                    total_num_cells, hparams.total_training_steps,
                                    hparams.use_bounded_activation)
    training_scope, format_scope = nasnet._data_format_scopes(hparams, is_training)  # pylint: disable=protected-access
    with training_scope, format_scope:
        return _build_pnasnet_base(images, normal_cell=normal_cell, num_classes=num_classes,
                                   hparams=hparams, is_training=is_training,
                                   final_endpoint=final_endpoint)


def build_pnasnet_large(images, num_classes, is_training=True, final_endpoint=None,
                        config=None):
    """PNASNet-5 Large (331x331 inputs).

    Args:
      images: ``[batch, height, width, 3]``.
      num_classes: number of classes; 0/None returns the pooled features ``[batch, 4320]``.
      is_training: batch norm, dropout and drop-path in training mode (and the auxiliary head).
      final_endpoint: stop at 'Stem', 'Cell_<i>', 'global_pool', 'Logits' or 'Predictions'.
      config: an :class:`HParams` like :func:`large_imagenet_config`'s (copied).

    Returns:
      ``(logits, end_points)``.
    """
    return _build(images, num_classes, is_training, final_endpoint, config,
                  large_imagenet_config)


build_pnasnet_large.default_image_size = 331


def build_pnasnet_mobile(images, num_classes, is_training=True, final_endpoint=None,
                         config=None):
    """PNASNet-5 Mobile (224x224 inputs); arguments as :func:`build_pnasnet_large` (features
    ``[batch, 1080]``, config like :func:`mobile_imagenet_config`'s)."""
    return _build(images, num_classes, is_training, final_endpoint, config,
                  mobile_imagenet_config)


build_pnasnet_mobile.default_image_size = 224


class PNasNetNormalCell(nasnet_utils.NasNetABaseCell):
    """The PNASNet-5 cell."""

    def __init__(self, num_conv_filters, drop_path_keep_prob, total_num_cells,
                 total_training_steps, use_bounded_activation=False):
        operations = ['separable_5x5_2', 'max_pool_3x3', 'separable_7x7_2', 'max_pool_3x3',
                      'separable_5x5_2', 'separable_3x3_2', 'separable_3x3_2', 'max_pool_3x3',
                      'separable_3x3_2', 'none']
        super(PNasNetNormalCell, self).__init__(
            num_conv_filters, operations, [1, 1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 4, 0, 1, 0], drop_path_keep_prob, total_num_cells,
            total_training_steps, use_bounded_activation)
