"""Convolution blocks of the MobileNet conv-def library, TF-slim's
``nets.mobilenet.conv_blocks``: the inverted residual (``expanded_conv``), split convolutions,
MobileNet v1's separable convolution and squeeze-and-excite.
"""
import contextlib
import functools

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets._blocks import fixed_padding

_fixed_padding = fixed_padding


def _make_divisible(v, divisor, min_value=None):
    """``v`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``), never
    more than 10% below ``v``."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _split_divisible(num, num_ways, divisible_by=8):
    """Splits ``num`` into ``num_ways`` near-equal parts, each a multiple of ``divisible_by``."""
    assert num % divisible_by == 0
    assert num / num_ways >= divisible_by
    base = num // num_ways // divisible_by * divisible_by
    result, accumulated = [], 0
    for i in range(num_ways):
        r = base
        while accumulated + r < num * (i + 1) / num_ways:
            r += divisible_by
        result.append(r)
        accumulated += r
    assert accumulated == num
    return result


@contextlib.contextmanager
def _v1_compatible_scope_naming(scope):
    if scope is None:  # unique 'separable' scopes
        with tf.variable_scope(None, default_name='separable') as s, \
                tf.name_scope(s.original_name_scope):
            yield ''
    else:
        # <scope>_depthwise / <scope>_pointwise, the names of MobileNet v1's checkpoints.
        yield scope + '_'


@slim.add_arg_scope
def split_separable_conv2d(input_tensor, num_outputs, scope=None, normalizer_fn=None,
                           stride=1, rate=1, endpoints=None, use_explicit_padding=False):
    """MobileNet v1's separable convolution: 3x3 depthwise (normalised, activated), then 1x1.

    Args:
      input_tensor: input.
      num_outputs: depth of the pointwise convolution.
      scope: with a scope, the layers are ``<scope>_depthwise`` and ``<scope>_pointwise``.
      normalizer_fn: normaliser of both layers.
      stride: depthwise stride.
      rate: depthwise atrous rate.
      endpoints: optional dict that receives both layers' outputs.
      use_explicit_padding: VALID depthwise convolution on an input padded as SAME would.

    Returns:
      The output tensor.
    """
    with _v1_compatible_scope_naming(scope) as scope:
        dw_scope = scope + 'depthwise'
        endpoints = endpoints if endpoints is not None else {}
        kernel_size = [3, 3]
        padding = 'SAME'
        if use_explicit_padding:
            padding = 'VALID'
            input_tensor = fixed_padding(input_tensor, kernel_size, rate)
        net = slim.separable_conv2d(input_tensor, None, kernel_size, depth_multiplier=1,
                                    stride=stride, rate=rate, normalizer_fn=normalizer_fn,
                                    padding=padding, scope=dw_scope)
        endpoints[dw_scope] = net
        pw_scope = scope + 'pointwise'
        net = slim.conv2d(net, num_outputs, [1, 1], stride=1, normalizer_fn=normalizer_fn,
                          scope=pw_scope)
        endpoints[pw_scope] = net
    return net


def expand_input_by_factor(n, divisible_by=8):
    """An ``expansion_size`` callable: the input depth times ``n``, made divisible."""
    return lambda num_inputs, **_: _make_divisible(num_inputs * n, divisible_by)


def split_conv(input_tensor, num_outputs, num_ways, scope, divisible_by=8, **kwargs):
    """A 1x1 convolution split into ``num_ways`` groups (input i feeds output i only).

    Falls back to one convolution when a group would have fewer than ``divisible_by``
    channels.  ``kwargs`` go to ``slim.conv2d``.
    """
    b = input_tensor.get_shape().as_list()[3]
    if num_ways == 1 or min(b // num_ways, num_outputs // num_ways) < divisible_by:
        return slim.conv2d(input_tensor, num_outputs, [1, 1], scope=scope, **kwargs)
    outs = []
    input_splits = _split_divisible(b, num_ways, divisible_by=divisible_by)
    output_splits = _split_divisible(num_outputs, num_ways, divisible_by=divisible_by)
    inputs = tf.split(input_tensor, input_splits, axis=3, name='split_' + scope)
    base = scope
    for i, (part, out_size) in enumerate(zip(inputs, output_splits)):
        scope = base + '_part_%d' % (i,)
        n = slim.conv2d(part, out_size, [1, 1], scope=scope, **kwargs)
        outs.append(tf.identity(n, scope + '_output'))
    return tf.concat(outs, 3, name=scope + '_concat')


@slim.add_arg_scope
def expanded_conv(input_tensor, num_outputs, expansion_size=expand_input_by_factor(6), stride=1,
                  rate=1, kernel_size=(3, 3), residual=True, normalizer_fn=None,
                  split_projection=1, split_expansion=1, split_divisible_by=8,
                  expansion_transform=None, depthwise_location='expansion',
                  depthwise_channel_multiplier=1, endpoints=None, use_explicit_padding=False,
                  padding='SAME', inner_activation_fn=None, depthwise_activation_fn=None,
                  project_activation_fn=tf.identity, depthwise_fn=slim.separable_conv2d,
                  expansion_fn=split_conv, projection_fn=split_conv, scope=None):
    """The inverted residual: 1x1 expansion, depthwise ``kernel_size``, linear 1x1 projection.

    Args:
      input_tensor: input.
      num_outputs: depth of the projection.
      expansion_size: inner depth, or a callable of ``num_inputs`` (default: 6x the input).
      stride: depthwise stride.
      rate: depthwise atrous rate.
      kernel_size: depthwise kernel.
      residual: add the input when the shapes allow (or a callable
        ``residual(input_tensor=, output_tensor=)``).
      normalizer_fn: normaliser of the convolutions.
      split_projection, split_expansion: groups of the projection / expansion.
      split_divisible_by: every group a multiple of this.
      expansion_transform: ``f(expansion_tensor=, input_tensor=)`` applied after the depthwise.
      depthwise_location: 'input', 'output', 'expansion' or None.
      depthwise_channel_multiplier: depthwise outputs per input channel.
      endpoints: optional dict receiving 'expansion_output', 'depthwise_output',
        'projection_output'.
      use_explicit_padding: VALID convolutions on inputs padded as SAME would.
      padding: padding without ``use_explicit_padding``.
      inner_activation_fn: activation of the inner convolutions (None: the arg_scope's).
      depthwise_activation_fn: activation of the depthwise only.
      project_activation_fn: activation of the projection (linear by default).
      depthwise_fn, expansion_fn, projection_fn: the three convolutions.
      scope: variable scope (default 'expanded_conv').

    Returns:
      Tensor of depth ``num_outputs`` (named ``<scope>/output``).

    Raises:
      TypeError: unknown ``depthwise_location`` or explicit padding with ``padding`` not SAME.
    """
    conv_defaults, dw_defaults = {}, {}
    if inner_activation_fn is not None:
        conv_defaults['activation_fn'] = inner_activation_fn
        dw_defaults['activation_fn'] = inner_activation_fn
    if depthwise_activation_fn is not None:
        dw_defaults['activation_fn'] = depthwise_activation_fn
    with tf.variable_scope(scope, default_name='expanded_conv') as s, \
            tf.name_scope(s.original_name_scope), \
            slim.arg_scope((slim.conv2d,), **conv_defaults), \
            slim.arg_scope((slim.separable_conv2d,), **dw_defaults):
        prev_depth = input_tensor.get_shape().as_list()[3]
        if depthwise_location not in [None, 'input', 'output', 'expansion']:
            raise TypeError('%r is unknown value for depthwise_location' % depthwise_location)
        if use_explicit_padding:
            if padding != 'SAME':
                raise TypeError('`use_explicit_padding` should only be used with "SAME" '
                                'padding.')
            padding = 'VALID'
        depthwise_func = functools.partial(
            depthwise_fn, num_outputs=None, kernel_size=kernel_size,
            depth_multiplier=depthwise_channel_multiplier, stride=stride, rate=rate,
            normalizer_fn=normalizer_fn, padding=padding, scope='depthwise')
        input_tensor = tf.identity(input_tensor, 'input')
        net = input_tensor

        def depthwise(net, **kwargs):
            if use_explicit_padding:
                net = fixed_padding(net, kernel_size, rate)
            net = tf.identity(depthwise_func(net, **kwargs), name='depthwise_output')
            if endpoints is not None:
                endpoints['depthwise_output'] = net
            return net

        if depthwise_location == 'input':
            net = depthwise(net, activation_fn=None)
        inner_size = (expansion_size(num_inputs=prev_depth) if callable(expansion_size)
                      else expansion_size)
        if inner_size > net.shape[3]:
            expand = expansion_fn
            if expansion_fn == split_conv:
                expand = functools.partial(expansion_fn, num_ways=split_expansion,
                                           divisible_by=split_divisible_by, stride=1)
            net = tf.identity(expand(net, inner_size, scope='expand',
                                     normalizer_fn=normalizer_fn), 'expansion_output')
            if endpoints is not None:
                endpoints['expansion_output'] = net
        if depthwise_location == 'expansion':
            net = depthwise(net)
        if expansion_transform:
            net = expansion_transform(expansion_tensor=net, input_tensor=input_tensor)
        project = projection_fn
        if projection_fn == split_conv:
            project = functools.partial(projection_fn, num_ways=split_projection,
                                        divisible_by=split_divisible_by, stride=1)
        net = project(net, num_outputs, scope='project', normalizer_fn=normalizer_fn,
                      activation_fn=project_activation_fn)
        if endpoints is not None:
            endpoints['projection_output'] = net
        if depthwise_location == 'output':
            net = depthwise(net, activation_fn=None)
        if callable(residual):
            net = residual(input_tensor=input_tensor, output_tensor=net)
        elif (residual and stride == 1 and
              net.get_shape().as_list()[3] == input_tensor.get_shape().as_list()[3]):
            net += input_tensor
        return tf.identity(net, name='output')


@slim.add_arg_scope
def squeeze_excite(input_tensor, divisible_by=8, squeeze_factor=3,
                   inner_activation_fn=tf.nn.relu, gating_fn=tf.sigmoid,
                   squeeze_input_tensor=None, pool=None):
    """Squeeze-and-excite gating: ``input_tensor * gate(pool(squeeze_input_tensor))``.

    Args:
      input_tensor: tensor to gate.
      divisible_by: inner depth made divisible by this.
      squeeze_factor: inner depth is the input depth divided by this.
      inner_activation_fn: activation of the inner 1x1.
      gating_fn: activation of the gate.
      squeeze_input_tensor: tensor the gate is computed from (default ``input_tensor``).
      pool: average-pool with this kernel (then upsample) instead of a global mean.

    Returns:
      The gated tensor.
    """
    with tf.variable_scope('squeeze_excite'):
        if squeeze_input_tensor is None:
            squeeze_input_tensor = input_tensor
        input_size = input_tensor.shape.as_list()[1:3]
        pool_height, pool_width = squeeze_input_tensor.shape.as_list()[1:3]
        stride = 1
        if pool is not None and pool_height >= pool:
            pool_height, pool_width, stride = pool, pool, pool
        input_channels = squeeze_input_tensor.shape.as_list()[3]
        output_channels = input_tensor.shape.as_list()[3]
        squeeze_channels = _make_divisible(input_channels / squeeze_factor,
                                           divisor=divisible_by)
        if pool is None:
            pooled = tf.reduce_mean(squeeze_input_tensor, axis=[1, 2], keepdims=True)
        else:
            pooled = tf.nn.avg_pool(squeeze_input_tensor, (1, pool_height, pool_width, 1),
                                    strides=(1, stride, stride, 1), padding='VALID')
        squeeze = slim.conv2d(pooled, kernel_size=(1, 1), num_outputs=squeeze_channels,
                              normalizer_fn=None, activation_fn=inner_activation_fn)
        excite = slim.conv2d(squeeze, num_outputs=output_channels, kernel_size=[1, 1],
                             normalizer_fn=None, activation_fn=gating_fn)
        if pool is not None:
            excite = tf.image.resize_images(excite, input_size, align_corners=True)
        return input_tensor * excite
