"""NASNet-A networks (Zoph et al. 2018, "Learning Transferable Architectures for Scalable Image
Recognition"): CIFAR, Mobile (4 @ 1056) and Large (6 @ 4032), with TF-slim's checkpoint names.

The networks have no top-level scope: variables are ``conv0``, ``cell_stem_<i>``, ``cell_<n>``,
``reduction_cell_<i>``, ``aux_<n>`` and ``final_layer/FC``, as in the published checkpoints.
"""
import dataclasses

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.common import add_classifier_end_points
from images.models.nasnet import cells


@dataclasses.dataclass(frozen=True)
class NasConfig:
    """Hyper-parameters that shape a NASNet/PNASNet (those of the published models)."""
    num_cells: int
    num_conv_filters: int
    stem_multiplier: float
    dense_dropout_keep_prob: float
    drop_path_keep_prob: float
    skip_reduction_layer_input: bool
    filter_scaling_rate: float = 2.0
    num_reduction_layers: int = 2
    use_aux_head: bool = True
    total_training_steps: int = 250000


NASNET_CIFAR = NasConfig(num_cells=18, num_conv_filters=32, stem_multiplier=3.0,
                         dense_dropout_keep_prob=1.0, drop_path_keep_prob=0.6,
                         skip_reduction_layer_input=False, total_training_steps=937500)
NASNET_MOBILE = NasConfig(num_cells=12, num_conv_filters=44, stem_multiplier=1.0,
                          dense_dropout_keep_prob=0.5, drop_path_keep_prob=1.0,
                          skip_reduction_layer_input=False)
NASNET_LARGE = NasConfig(num_cells=18, num_conv_filters=168, stem_multiplier=3.0,
                         dense_dropout_keep_prob=0.5, drop_path_keep_prob=0.7,
                         skip_reduction_layer_input=True)


def nasnet_arg_scope(weight_decay, batch_norm_decay=0.9997, batch_norm_epsilon=1e-3):
    """Convolutions without bias or activation (each cell applies ReLU and batch norm itself)."""
    regularizer = slim.l2_regularizer(weight_decay)
    with slim.arg_scope([slim.fully_connected, slim.conv2d, slim.separable_conv2d],
                        weights_regularizer=regularizer,
                        weights_initializer=slim.variance_scaling_initializer(mode="FAN_OUT")):
        with slim.arg_scope([slim.fully_connected], activation_fn=None):
            with slim.arg_scope([slim.conv2d, slim.separable_conv2d], activation_fn=None,
                                biases_initializer=None):
                with slim.arg_scope([slim.batch_norm], decay=batch_norm_decay,
                                    epsilon=batch_norm_epsilon, scale=True, fused=True,
                                    updates_collections=tf.GraphKeys.UPDATE_OPS) as sc:
                    return sc


def nasnet_cifar_arg_scope(weight_decay=5e-4):
    return nasnet_arg_scope(weight_decay, batch_norm_decay=0.9, batch_norm_epsilon=1e-5)


def nasnet_mobile_arg_scope(weight_decay=4e-5):
    return nasnet_arg_scope(weight_decay)


def nasnet_large_arg_scope(weight_decay=5e-5):
    return nasnet_arg_scope(weight_decay)


def imagenet_stem(images, config, stem_cell, current_step=None):
    """A strided 3x3 convolution and two strided stem cells (1/4 and 1/2 of the filters)."""
    net = slim.conv2d(images, int(32 * config.stem_multiplier), [3, 3], stride=2,
                      padding="VALID", scope="conv0")
    net = slim.batch_norm(net, scope="conv0_bn")
    outputs = [None, net]
    scaling = 1.0 / config.filter_scaling_rate ** 2
    for i in range(2):
        net = stem_cell(net, "cell_stem_%d" % i, scaling, 2, outputs[-2], i, current_step)
        outputs.append(net)
        scaling *= config.filter_scaling_rate
    return net, outputs


def cifar_stem(images, config):
    """One 3x3 convolution at full resolution."""
    net = slim.conv2d(images, int(config.num_conv_filters * config.stem_multiplier), 3,
                      scope="l1_stem_3x3")
    net = slim.batch_norm(net, scope="l1_stem_bn")
    return net, [None, net]


def aux_head(net, num_classes, scope):
    """Auxiliary classifier: 5x5/3 average pool, 1x1 to 128, full-map conv to 768, FC."""
    with tf.variable_scope(scope):
        with tf.variable_scope("aux_logits"):
            aux = slim.avg_pool2d(net, [5, 5], stride=3, padding="VALID")
            aux = slim.conv2d(aux, 128, [1, 1], scope="proj")
            aux = tf.nn.relu(slim.batch_norm(aux, scope="aux_bn0"))
            aux = slim.conv2d(aux, 768, aux.shape[1:3].as_list(), padding="VALID", scope="Conv")
            aux = tf.nn.relu(slim.batch_norm(aux, scope="aux_bn1"))
            aux = slim.flatten(aux)
            return slim.fully_connected(aux, num_classes, scope="FC")


def final_layer(net, num_classes, dropout_keep_prob, end_points):
    """ReLU, global average, dropout and the ``final_layer/FC`` classifier."""
    with tf.variable_scope("final_layer"):
        net = tf.reduce_mean(tf.nn.relu(net), [1, 2])
        end_points["global_pool"] = net
        if not num_classes:
            return net, end_points
        net = slim.dropout(net, dropout_keep_prob, scope="dropout")
        logits = slim.fully_connected(net, num_classes, scope="FC")
        end_points["Predictions"] = tf.nn.softmax(logits, name="predictions")
    return add_classifier_end_points(logits, end_points)


def resolve_config(config, is_training, dropout_keep_prob, drop_path_keep_prob):
    """The config with the caller's overrides; drop-path only ever acts in training."""
    changes = {}
    if dropout_keep_prob is not None:
        changes["dense_dropout_keep_prob"] = dropout_keep_prob
    if drop_path_keep_prob is not None:
        changes["drop_path_keep_prob"] = drop_path_keep_prob
    if not is_training:
        changes["drop_path_keep_prob"] = 1.0
    return dataclasses.replace(config, **changes)


def drop_path_step(config, current_step):
    """The step drop-path follows: ``current_step``, else the global step (created if needed)."""
    if config.drop_path_keep_prob < 1.0 and current_step is None:
        return tf.train.get_or_create_global_step()
    return current_step


def build_nasnet(images, num_classes, config, stem, is_training=False, dropout_keep_prob=None,
                 drop_path_keep_prob=None, current_step=None):
    """NASNet-A on ``images`` with ``stem`` 'imagenet' or 'cifar'; returns ``(logits, end_points)``.

    Reduction cells come before the normal cells at the reduction indices; the auxiliary head
    sits on the normal cell just before the second reduction (training only).
    """
    config = resolve_config(config, is_training, dropout_keep_prob, drop_path_keep_prob)
    current_step = drop_path_step(config, current_step)
    total_cells = config.num_cells + 2 + (2 if stem == "imagenet" else 0)
    cell_args = (config.num_conv_filters, config.drop_path_keep_prob, total_cells,
                 config.total_training_steps)
    normal_cell = cells.Cell(cells.NASNET_A_NORMAL, *cell_args)
    reduction_cell = cells.Cell(cells.NASNET_A_REDUCTION, *cell_args)
    end_points = {}
    with slim.arg_scope([slim.dropout, slim.batch_norm], is_training=is_training):
        if stem == "imagenet":
            net, outputs = imagenet_stem(images, config, reduction_cell, current_step)
        else:
            net, outputs = cifar_stem(images, config)
        end_points["Stem"] = net
        reductions = cells.calc_reduction_layers(config.num_cells, config.num_reduction_layers)
        aux_cells = [reductions[1] - 1] if len(reductions) >= 2 else []
        scaling = 1.0
        cell_num = 2 if stem == "imagenet" else 0
        for i in range(config.num_cells):
            if config.skip_reduction_layer_input:
                prev = outputs[-2]
            if i in reductions:
                scaling *= config.filter_scaling_rate
                k = reductions.index(i)
                net = end_points["Reduction_Cell_%d" % k] = reduction_cell(
                    net, "reduction_cell_%d" % k, scaling, 2, outputs[-2], cell_num, current_step)
                cell_num += 1
                outputs.append(net)
            if not config.skip_reduction_layer_input:
                prev = outputs[-2]
            net = end_points["Cell_%d" % i] = normal_cell(
                net, "cell_%d" % i, scaling, 1, prev, cell_num, current_step)
            cell_num += 1
            if config.use_aux_head and i in aux_cells and num_classes and is_training:
                end_points["AuxLogits"] = aux_head(tf.nn.relu(net), num_classes, "aux_%d" % i)
            outputs.append(net)
        return final_layer(net, num_classes, config.dense_dropout_keep_prob, end_points)


def nasnet_cifar(images, num_classes=10, is_training=False, dropout_keep_prob=None,
                 drop_path_keep_prob=None, current_step=None):
    """NASNet-A CIFAR (6 @ 768): 32x32 inputs, 18 normal cells of 32..128 filters."""
    return build_nasnet(images, num_classes, NASNET_CIFAR, "cifar", is_training,
                        dropout_keep_prob, drop_path_keep_prob, current_step)


def nasnet_mobile(images, num_classes=1001, is_training=False, dropout_keep_prob=None,
                  drop_path_keep_prob=None, current_step=None):
    """NASNet-A Mobile (4 @ 1056): 224x224 inputs, 12 normal cells of 44..176 filters."""
    return build_nasnet(images, num_classes, NASNET_MOBILE, "imagenet", is_training,
                        dropout_keep_prob, drop_path_keep_prob, current_step)


def nasnet_large(images, num_classes=1001, is_training=False, dropout_keep_prob=None,
                 drop_path_keep_prob=None, current_step=None):
    """NASNet-A Large (6 @ 4032): 331x331 inputs, 18 normal cells of 168..672 filters."""
    return build_nasnet(images, num_classes, NASNET_LARGE, "imagenet", is_training,
                        dropout_keep_prob, drop_path_keep_prob, current_step)


nasnet_cifar.default_image_size = 32
nasnet_mobile.default_image_size = 224
nasnet_large.default_image_size = 331
