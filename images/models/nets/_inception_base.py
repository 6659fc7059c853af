"""Builds an Inception trunk from a table of steps, stopping at ``final_endpoint`` as slim does."""
import contextlib

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images.models.nets import _blocks


def build(inputs, steps, final_endpoint, scope, default_scope, depth=int, concat_axis=3,
          arg_scopes=()):
    """Runs ``steps`` (``(end point, block or layer)``) on ``inputs``.

    Args:
      inputs: the input batch.
      steps: ``[(name, spec)]``: a :class:`~images.models.nets._blocks.Layer` (built under its
        own name), a callable ``spec(net, name)`` or a list of branches (a mixed block built
        under ``name``).
      final_endpoint: the last step to build.
      scope, default_scope: the variable scope (``scope`` None: ``default_scope``).
      depth: maps table depths to built depths (Inception v2/v3's ``depth_multiplier``).
      concat_axis: the channel axis.
      arg_scopes: ``[(ops, kwargs)]`` entered as ``slim.arg_scope`` inside the variable scope
        (strides, paddings, initialisers).

    Returns:
      ``(net, end_points)`` up to ``final_endpoint``.

    Raises:
      ValueError: ``final_endpoint`` is not one of the steps.
    """
    _blocks.check_final_endpoint(final_endpoint, [name for name, _ in steps])
    end_points = {}
    with tf.variable_scope(scope, default_scope, [inputs]), contextlib.ExitStack() as stack:
        for ops, kwargs in arg_scopes:
            stack.enter_context(slim.arg_scope(ops, **kwargs))
        net = inputs
        for name, spec in steps:
            if isinstance(spec, _blocks.Layer):
                net = _blocks.apply_layers(net, [spec._replace(name=name)], depth, concat_axis)
            elif callable(spec):
                net = spec(net, name)
            else:
                net = _blocks.mixed(net, spec, name, depth, concat_axis)
            end_points[name] = net
            if name == final_endpoint:
                return net, end_points
    raise AssertionError("unreachable: %s was checked" % final_endpoint)
