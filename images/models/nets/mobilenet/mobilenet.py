"""The MobileNet conv-def library, TF-slim's ``nets.mobilenet.mobilenet``.

A network is a ``conv_defs`` dict: ``spec`` (a list of :func:`op` layers), ``defaults`` and
``overrides`` (``{(functions,): {argument: value}}`` entered as arg scopes).
:func:`mobilenet_base` builds the layers (end points ``layer_<i>`` and every
``layer_<i>/<...>output`` tensor inside them), :func:`mobilenet` adds the global pool and the
1x1 classifier, :func:`training_scope` holds the training hyper-parameters.
"""
import collections
import contextlib
import copy
import os

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets._blocks import NoOpScope, fixed_padding

_fixed_padding = fixed_padding


@slim.add_arg_scope
def apply_activation(x, name=None, activation_fn=None):
    """``activation_fn(x)`` (``x`` itself when None); an arg-scope-able layer for conv defs."""
    return activation_fn(x, name=name) if activation_fn else x


def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # rounding down must not lose more than 10%
        new_v += divisor
    return int(new_v)


@contextlib.contextmanager
def _set_arg_scope_defaults(defaults):
    """Enters ``slim.arg_scope(funcs, **args)`` for every ``(funcs, args)`` of ``defaults``."""
    items = list(defaults.items()) if hasattr(defaults, 'items') else list(defaults)
    with contextlib.ExitStack() as stack:
        for func, default_arg in items:
            stack.enter_context(slim.arg_scope(func, **default_arg))
        yield


@slim.add_arg_scope
def depth_multiplier(output_params, multiplier, divisible_by=8, min_depth=8, **unused_kwargs):
    """Scales ``output_params['num_outputs']`` by ``multiplier`` (made divisible, at least
    ``min_depth``); the default ``multiplier_func`` of :func:`op`."""
    if 'num_outputs' not in output_params:
        return
    d = output_params['num_outputs']
    output_params['num_outputs'] = _make_divisible(d * multiplier, divisible_by, min_depth)


_Op = collections.namedtuple('Op', ['op', 'params', 'multiplier_func'])


def op(opfunc, multiplier_func=depth_multiplier, **params):
    """A layer of a conv def: ``opfunc(net, **params)`` with depths scaled by
    ``multiplier_func`` (``multiplier_transform=`` in ``params`` overrides it)."""
    multiplier = params.pop('multiplier_transform', multiplier_func)
    return _Op(opfunc, params=params, multiplier_func=multiplier)


def safe_arg_scope(funcs, **kwargs):
    """``slim.arg_scope(funcs, **kwargs)`` without the None arguments (a no-op if none left):
    None means "do not override"."""
    filtered_args = {name: value for name, value in kwargs.items() if value is not None}
    if filtered_args:
        return slim.arg_scope(funcs, **filtered_args)
    return NoOpScope()


@contextlib.contextmanager
def _scope_all(scope, default_scope=None):
    with tf.variable_scope(scope, default_name=default_scope) as s, \
            tf.name_scope(s.original_name_scope):
        yield s


@slim.add_arg_scope
def mobilenet_base(inputs, conv_defs, multiplier=1.0, final_endpoint=None, output_stride=None,
                   use_explicit_padding=False, scope=None, is_training=False):
    """Builds the layers of ``conv_defs`` (inference mode unless a training scope says else).

    Args:
      inputs: ``[batch, height, width, channels]``.
      conv_defs: the conv-def dict (``spec``, ``defaults``, ``overrides``).
      multiplier: depth multiplier (> 0).
      final_endpoint: 'layer_<i>' to stop at (None: all layers).
      output_stride: None, 1 or an even number: atrous convolutions beyond it.
      use_explicit_padding: VALID convolutions on inputs padded as SAME would.
      scope: variable scope (default 'Mobilenet').
      is_training: batch norm's mode (None: leave it to the arg scope).

    Returns:
      ``(net, end_points)``: ``layer_<i>`` for every layer and ``layer_<i>/<name>`` for every
      op named ``...output`` inside it (e.g. ``layer_18/output``,
      ``layer_5/expansion_output``).

    Raises:
      ValueError: ``multiplier`` <= 0 or an odd ``output_stride`` above 1.
    """
    if multiplier <= 0:
        raise ValueError('multiplier is not greater than zero.')
    conv_defs_defaults = conv_defs.get('defaults', {})
    conv_defs_overrides = conv_defs.get('overrides', {})
    if use_explicit_padding:
        conv_defs_overrides = copy.deepcopy(conv_defs_overrides)
        conv_defs_overrides[(slim.conv2d, slim.separable_conv2d)] = {'padding': 'VALID'}
    if output_stride is not None:
        if output_stride == 0 or (output_stride > 1 and output_stride % 2):
            raise ValueError('Output stride must be None, 1 or a multiple of 2.')
    with _scope_all(scope, default_scope='Mobilenet'), \
            safe_arg_scope([slim.batch_norm], is_training=is_training), \
            _set_arg_scope_defaults(conv_defs_defaults), \
            _set_arg_scope_defaults(conv_defs_overrides):
        current_stride = 1
        rate = 1
        net = inputs
        end_points = {}
        scopes = {}
        for i, opdef in enumerate(conv_defs['spec']):
            params = dict(opdef.params)
            opdef.multiplier_func(params, multiplier)
            stride = params.get('stride', 1)
            if output_stride is not None and current_stride == output_stride:
                layer_stride, layer_rate = 1, rate
                rate *= stride
            else:
                layer_stride, layer_rate = stride, 1
                current_stride *= stride
            params['stride'] = layer_stride
            # No rate on 1x1 convolutions (kernel_size absent means the default 3x3).
            if layer_rate > 1 and tuple(params.get('kernel_size', [])) != (1, 1):
                params['rate'] = layer_rate
            if use_explicit_padding:
                if 'kernel_size' in params:
                    net = fixed_padding(net, params['kernel_size'], layer_rate)
                else:
                    params['use_explicit_padding'] = True
            end_point = 'layer_%d' % (i + 1)
            try:
                net = opdef.op(net, **params)
            except Exception:
                tf.logging.error('Failed to create op %i: %r params: %r', i, opdef, params)
                raise
            end_points[end_point] = net
            scopes[os.path.dirname(net.name)] = end_point
            if final_endpoint is not None and end_point == final_endpoint:
                break
        # Every op named '...output' inside a layer's scope is an end point too.
        for t in net.graph.get_operations():
            scope_name = os.path.dirname(t.name)
            if scope_name in scopes and t.name.endswith('output'):
                end_points[scopes[scope_name] + '/' + os.path.basename(t.name)] = t.outputs[0]
        return net, end_points


@slim.add_arg_scope
def mobilenet(inputs, num_classes=1001, prediction_fn=slim.softmax, reuse=None,
              scope='Mobilenet', base_only=False, use_reduce_mean_for_pooling=False,
              **mobilenet_args):
    """A MobileNet classifier from a conv def (inference mode unless a training scope is on).

    Args:
      inputs: ``[batch, height, width, channels]``.
      num_classes: number of classes; 0 or None returns the pooled features before dropout
        (``global_pool``, ``[batch, 1, 1, depth]``).
      prediction_fn: turns the logits into ``end_points['Predictions']`` (None: none).
      reuse: reuse the variables of ``scope``.
      scope: variable scope.
      base_only: stop after the layers (no pooling, no logits).
      use_reduce_mean_for_pooling: pool with ``reduce_mean`` instead of an average pool.
      **mobilenet_args: passed to :func:`mobilenet_base` (``conv_defs``, ``multiplier``,
        ``output_stride``, ``is_training``, ...).

    Returns:
      ``(logits, end_points)``.

    Raises:
      ValueError: ``inputs`` is not of rank 4.
    """
    is_training = mobilenet_args.get('is_training', False)
    input_shape = inputs.get_shape().as_list()
    if len(input_shape) != 4:
        raise ValueError('Expected rank 4 input, was: %d' % len(input_shape))
    with tf.variable_scope(scope, 'Mobilenet', reuse=reuse) as scope:
        inputs = tf.identity(inputs, 'input')
        net, end_points = mobilenet_base(inputs, scope=scope, **mobilenet_args)
        if base_only:
            return net, end_points
        net = tf.identity(net, name='embedding')
        with tf.variable_scope('Logits'):
            net = global_pool(net, use_reduce_mean_for_pooling)
            end_points['global_pool'] = net
            if not num_classes:
                return net, end_points
            net = slim.dropout(net, scope='Dropout', is_training=is_training)
            # 'Conv2d_1c_1x1': the checkpoints' (legacy) name.
            logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                 normalizer_fn=None, biases_initializer=tf.zeros_initializer(),
                                 scope='Conv2d_1c_1x1')
            logits = tf.squeeze(logits, [1, 2])
            logits = tf.identity(logits, name='output')
        end_points['Logits'] = logits
        if prediction_fn:
            end_points['Predictions'] = prediction_fn(logits, 'Predictions')
    return logits, end_points


def global_pool(input_tensor, use_reduce_mean_for_pooling=False, pool_op=tf.nn.avg_pool2d):
    """``[batch, 1, 1, depth]``: an average pool over the whole map (any static or dynamic
    size), or ``reduce_mean``."""
    if use_reduce_mean_for_pooling:
        return tf.reduce_mean(input_tensor, [1, 2], keepdims=True, name='ReduceMean')
    shape = input_tensor.get_shape().as_list()
    if shape[1] is None or shape[2] is None:
        kernel_size = tf.convert_to_tensor(
            [1, tf.shape(input_tensor)[1], tf.shape(input_tensor)[2], 1])
    else:
        kernel_size = [1, shape[1], shape[2], 1]
    output = pool_op(input_tensor, ksize=kernel_size, strides=[1, 1, 1, 1], padding='VALID')
    output.set_shape([None, 1, 1, None])
    return output


def training_scope(is_training=True, weight_decay=0.00004, stddev=0.09, dropout_keep_prob=0.8,
                   bn_decay=0.997):
    """MobileNet's training hyper-parameters as an arg scope.

    Args:
      is_training: batch norm and dropout mode (None: not set here).
      weight_decay: L2 coefficient of the convolutions (none on depthwise filters).
      stddev: truncated-normal initialiser; negative gives Xavier.
      dropout_keep_prob: keep probability of the dropout (None: not set).
      bn_decay: decay of the batch-norm moving averages (None: not set).

    Returns:
      An ``arg_scope``.
    """
    batch_norm_params = {'decay': bn_decay, 'is_training': is_training}
    if stddev < 0:
        weight_initializer = slim.initializers.xavier_initializer()
    else:
        weight_initializer = tf.truncated_normal_initializer(stddev=stddev)
    with slim.arg_scope([slim.conv2d, slim.fully_connected, slim.separable_conv2d],
                        weights_initializer=weight_initializer,
                        normalizer_fn=slim.batch_norm), \
            slim.arg_scope([mobilenet_base, mobilenet], is_training=is_training), \
            safe_arg_scope([slim.batch_norm], **batch_norm_params), \
            safe_arg_scope([slim.dropout], is_training=is_training,
                           keep_prob=dropout_keep_prob), \
            slim.arg_scope([slim.conv2d],
                           weights_regularizer=slim.l2_regularizer(weight_decay)), \
            slim.arg_scope([slim.separable_conv2d], weights_regularizer=None) as s:
        return s
