"""MobileNet v2 (Sandler et al. 2018, inverted residuals and linear bottlenecks), TF-slim's
``nets.mobilenet.mobilenet_v2``: the ``V2_DEF`` conv def on the conv-def library.

Inference mode by default; for training, as with slim::

    with slim.arg_scope(mobilenet_v2.training_scope()):
        logits, endpoints = mobilenet_v2.mobilenet(input_tensor)
"""
import copy
import functools

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets.mobilenet import conv_blocks as ops
from images.models.nets.mobilenet import mobilenet as lib

op = lib.op
expand_input = ops.expand_input_by_factor

# (stride, depth) of the 17 inverted residuals; the first expands by 1, the others by 6.
_BOTTLENECKS = ((2, 24), (1, 24), (2, 32), (1, 32), (1, 32), (2, 64), (1, 64), (1, 64),
                (1, 64), (1, 96), (1, 96), (1, 96), (2, 160), (1, 160), (1, 160), (1, 320))

V2_DEF = dict(
    defaults={
        # Batch norm's center/scale shape the checkpoint, so they belong to the conv def.
        (slim.batch_norm,): {'center': True, 'scale': True},
        (slim.conv2d, slim.fully_connected, slim.separable_conv2d): {
            'normalizer_fn': slim.batch_norm, 'activation_fn': tf.nn.relu6},
        (ops.expanded_conv,): {'expansion_size': expand_input(6), 'split_expansion': 1,
                               'normalizer_fn': slim.batch_norm, 'residual': True},
        (slim.conv2d, slim.separable_conv2d): {'padding': 'SAME'},
    },
    spec=([op(slim.conv2d, stride=2, num_outputs=32, kernel_size=[3, 3]),
           op(ops.expanded_conv, expansion_size=expand_input(1, divisible_by=1),
              num_outputs=16)]
          + [op(ops.expanded_conv, stride=s, num_outputs=d) for s, d in _BOTTLENECKS]
          + [op(slim.conv2d, stride=1, kernel_size=[1, 1], num_outputs=1280)]),
)

# V2_DEF with group normalisation instead of batch norm.
V2_DEF_GROUP_NORM = copy.deepcopy(V2_DEF)
V2_DEF_GROUP_NORM['defaults'] = {
    (slim.conv2d, slim.fully_connected, slim.separable_conv2d): {
        'normalizer_fn': slim.group_norm, 'activation_fn': tf.nn.relu6},
    (ops.expanded_conv,): {'expansion_size': ops.expand_input_by_factor(6),
                           'split_expansion': 1, 'normalizer_fn': slim.group_norm,
                           'residual': True},
    (slim.conv2d, slim.separable_conv2d): {'padding': 'SAME'},
}


@slim.add_arg_scope
def mobilenet(input_tensor, num_classes=1001, depth_multiplier=1.0, scope='MobilenetV2',
              conv_defs=None, finegrain_classification_mode=False, min_depth=None,
              divisible_by=None, activation_fn=None, **kwargs):
    """MobileNet v2 (inference mode unless a training scope or ``is_training=True`` says else).

    Args:
      input_tensor: ``[batch, height, width, channels]``.
      num_classes: number of classes (0/None: the pooled features).
      depth_multiplier: multiplier of every layer's depth.
      scope: variable scope.
      conv_defs: the conv def (default ``V2_DEF``).
      finegrain_classification_mode: keep the last layer at 1280 for multipliers below 1.
      min_depth: smallest depth of every layer.
      divisible_by: every depth a multiple of this.
      activation_fn: activation of the convolutions (default relu6).
      **kwargs: passed to :func:`mobilenet.mobilenet` (``prediction_fn``, ``reuse``,
        ``is_training``, ``base_only``, ``final_endpoint``, ``output_stride``, ...).

    Returns:
      ``(logits, end_points)``.

    Raises:
      ValueError: a generic ``multiplier`` argument (use ``depth_multiplier``).
    """
    if conv_defs is None:
        conv_defs = V2_DEF
    if 'multiplier' in kwargs:
        raise ValueError('mobilenetv2 doesn\'t support generic '
                         'multiplier parameter use "depth_multiplier" instead.')
    if finegrain_classification_mode:
        conv_defs = copy.deepcopy(conv_defs)
        if depth_multiplier < 1:
            conv_defs['spec'][-1].params['num_outputs'] /= depth_multiplier
    if activation_fn:
        conv_defs = copy.deepcopy(conv_defs)
        defaults = conv_defs['defaults']
        defaults[(slim.conv2d, slim.fully_connected, slim.separable_conv2d)][
            'activation_fn'] = activation_fn
    # Only given values: an outer arg scope may set the others.
    depth_args = {}
    if min_depth is not None:
        depth_args['min_depth'] = min_depth
    if divisible_by is not None:
        depth_args['divisible_by'] = divisible_by
    with slim.arg_scope((lib.depth_multiplier,), **depth_args):
        return lib.mobilenet(input_tensor, num_classes=num_classes, conv_defs=conv_defs,
                             scope=scope, multiplier=depth_multiplier, **kwargs)


mobilenet.default_image_size = 224


def wrapped_partial(func, *args, **kwargs):
    """``functools.partial`` that keeps ``func``'s name, docstring and attributes."""
    partial_func = functools.partial(func, *args, **kwargs)
    functools.update_wrapper(partial_func, func)
    return partial_func


# The published width variants; below 1.0 the last layer stays at 1280 (finegrain mode).
mobilenet_v2_140 = wrapped_partial(mobilenet, depth_multiplier=1.4)
mobilenet_v2_050 = wrapped_partial(mobilenet, depth_multiplier=0.50,
                                   finegrain_classification_mode=True)
mobilenet_v2_035 = wrapped_partial(mobilenet, depth_multiplier=0.35,
                                   finegrain_classification_mode=True)


@slim.add_arg_scope
def mobilenet_base(input_tensor, depth_multiplier=1.0, **kwargs):
    """The layers of MobileNet v2 only (no pooling, no logits)."""
    return mobilenet(input_tensor, depth_multiplier=depth_multiplier, base_only=True, **kwargs)


@slim.add_arg_scope
def mobilenet_base_group_norm(input_tensor, depth_multiplier=1.0, **kwargs):
    """The layers of MobileNet v2 with group normalisation (``groups``, default 8)."""
    kwargs['conv_defs'] = V2_DEF_GROUP_NORM
    kwargs['conv_defs']['defaults'].update({(slim.group_norm,): {
        'groups': kwargs.pop('groups', 8)}})
    return mobilenet(input_tensor, depth_multiplier=depth_multiplier, base_only=True, **kwargs)


def training_scope(**kwargs):
    """MobileNet v2's training arg scope; ``kwargs`` go to :func:`mobilenet.training_scope`
    (``is_training``, ``weight_decay``, ``stddev``, ``dropout_keep_prob``, ``bn_decay``)."""
    return lib.training_scope(**kwargs)


__all__ = ['training_scope', 'mobilenet_base', 'mobilenet', 'V2_DEF']
