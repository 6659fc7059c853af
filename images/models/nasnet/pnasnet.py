"""PNASNet-5 (Liu et al. 2018, "Progressive Neural Architecture Search"), Large and Mobile, with
TF-slim's checkpoint names.

One cell type serves as stem, normal and (with stride 2) reduction cell; all cells are named
``cell_<n>`` after the two stems, and every cell reads the output of the cell two back.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nasnet import cells
from images.models.nasnet.nasnet import (NasConfig, aux_head, drop_path_step, final_layer,
                                         imagenet_stem, nasnet_arg_scope, resolve_config)

PNASNET_LARGE = NasConfig(num_cells=12, num_conv_filters=216, stem_multiplier=3.0,
                          dense_dropout_keep_prob=0.5, drop_path_keep_prob=0.6,
                          skip_reduction_layer_input=True)
PNASNET_MOBILE = NasConfig(num_cells=9, num_conv_filters=54, stem_multiplier=1.0,
                           dense_dropout_keep_prob=0.5, drop_path_keep_prob=1.0,
                           skip_reduction_layer_input=True)


def pnasnet_arg_scope(weight_decay=4e-5):
    """The NASNet ImageNet hyper-parameters (batch-norm decay 0.9997, epsilon 1e-3)."""
    return nasnet_arg_scope(weight_decay)


def build_pnasnet(images, num_classes, config, is_training=False, dropout_keep_prob=None,
                  drop_path_keep_prob=None, current_step=None):
    """PNASNet-5 on ``images``; returns ``(logits or features, end_points)``."""
    config = resolve_config(config, is_training, dropout_keep_prob, drop_path_keep_prob)
    current_step = drop_path_step(config, current_step)
    cell = cells.Cell(cells.PNASNET_5, config.num_conv_filters, config.drop_path_keep_prob,
                      config.num_cells + 2, config.total_training_steps)
    end_points = {}
    with slim.arg_scope([slim.dropout, slim.batch_norm], is_training=is_training):
        net, outputs = imagenet_stem(images, config, cell, current_step)
        end_points["Stem"] = net
        reductions = cells.calc_reduction_layers(config.num_cells, config.num_reduction_layers)
        aux_cells = [reductions[1] - 1] if len(reductions) >= 2 else []
        scaling = 1.0
        prev = None
        for i in range(config.num_cells):
            reduce_here = i in reductions
            if reduce_here:
                scaling *= config.filter_scaling_rate
            if config.skip_reduction_layer_input or not reduce_here:
                prev = outputs[-2]
            net = end_points["Cell_%d" % i] = cell(
                net, "cell_%d" % i, scaling, 2 if reduce_here else 1, prev, i + 2, current_step)
            outputs.append(net)
            if config.use_aux_head and i in aux_cells and num_classes and is_training:
                end_points["AuxLogits"] = aux_head(tf.nn.relu(net), num_classes, "aux_%d" % i)
        return final_layer(net, num_classes, config.dense_dropout_keep_prob, end_points)


def pnasnet_large(images, num_classes=1001, is_training=False, dropout_keep_prob=None,
                  drop_path_keep_prob=None, current_step=None):
    """PNASNet-5 Large: 331x331 inputs, 12 cells of 216..864 filters."""
    return build_pnasnet(images, num_classes, PNASNET_LARGE, is_training, dropout_keep_prob,
                         drop_path_keep_prob, current_step)


def pnasnet_mobile(images, num_classes=1001, is_training=False, dropout_keep_prob=None,
                   drop_path_keep_prob=None, current_step=None):
    """PNASNet-5 Mobile: 224x224 inputs, 9 cells of 54..216 filters."""
    return build_pnasnet(images, num_classes, PNASNET_MOBILE, is_training, dropout_keep_prob,
                         drop_path_keep_prob, current_step)


pnasnet_large.default_image_size = 331
pnasnet_mobile.default_image_size = 224
