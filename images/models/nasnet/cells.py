"""Searched convolutional cells of NASNet-A (Zoph et al. 2018) and PNASNet-5 (Liu et al. 2018).

A cell takes the previous two cell outputs.  It first brings both to ``filters`` channels at the
current resolution (hidden states 0 and 1), then runs five combinations: each applies one
operation to a "left" and one to a "right" hidden state and adds the results, giving hidden
states 2..6.  The output concatenates every hidden state no combination consumed.  In a reduction
cell (``stride`` 2) the operations on states 0 and 1 are strided.

Variable scopes follow TF-slim's NASNet checkpoints: ``cell_<n>/1x1``, ``beginning_bn``,
``prev_1x1``/``prev_bn`` or ``path1_conv``/``path2_conv``/``final_path_bn``, and
``comb_iter_<i>/{left,right}/separable_<k>x<k>_<j>``, ``bn_sep_<k>x<k>_<j>``, ``1x1``, ``bn_1``.
"""
import collections

import tensorflow.compat.v1 as tf
import tf_slim as slim

# operations: ten (left, right, left, right, ...) op names; inputs: the hidden state each op
# reads; used: for hidden states 0..6, whether some combination reads it (unused ones form the
# output).
CellSpec = collections.namedtuple("CellSpec", ["operations", "inputs", "used"])

NASNET_A_NORMAL = CellSpec(
    operations=("separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2",
                "avg_pool_3x3", "none", "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2",
                "none"),
    inputs=(0, 1, 1, 1, 0, 1, 1, 1, 0, 0),
    used=(1, 0, 0, 0, 0, 0, 0))

NASNET_A_REDUCTION = CellSpec(
    operations=("separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2",
                "avg_pool_3x3", "separable_5x5_2", "none", "avg_pool_3x3", "separable_3x3_2",
                "max_pool_3x3"),
    inputs=(0, 1, 0, 1, 0, 1, 3, 2, 2, 0),
    used=(1, 1, 1, 0, 0, 0, 0))

PNASNET_5 = CellSpec(
    operations=("separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
                "separable_5x5_2", "separable_3x3_2", "separable_3x3_2", "max_pool_3x3",
                "separable_3x3_2", "none"),
    inputs=(1, 1, 0, 0, 0, 0, 4, 0, 1, 0),
    used=(1, 1, 0, 0, 0, 0, 0))


def _width(net):
    return int(net.shape[2])


def _depth(net):
    return int(net.shape[3])


def factorized_reduction(net, filters, stride):
    """Brings ``net`` to ``filters`` channels; with stride 2 also halves it without losing pixels.

    Stride 2 averages two 1x1-strided samplings, the second shifted by one pixel, each projected
    to half the filters (the second gets the odd one) and concatenated.
    """
    if stride == 1:
        net = slim.conv2d(net, filters, 1, scope="path_conv")
        return slim.batch_norm(net, scope="path_bn")
    strides = [1, stride, stride, 1]
    path1 = tf.nn.avg_pool2d(net, [1, 1, 1, 1], strides, "VALID")
    path1 = slim.conv2d(path1, filters // 2, 1, scope="path1_conv")
    shifted = tf.pad(net, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
    path2 = tf.nn.avg_pool2d(shifted, [1, 1, 1, 1], strides, "VALID")
    path2 = slim.conv2d(path2, filters // 2 + filters % 2, 1, scope="path2_conv")
    return slim.batch_norm(tf.concat([path1, path2], axis=3), scope="final_path_bn")


def _parse_separable(operation):
    """'separable_5x5_2' -> (kernel 5, 2 stacked layers)."""
    _, shape, layers = operation.split("_")
    return int(shape.split("x")[0]), int(layers)


def _separable_stack(net, operation, filters, stride):
    kernel, layers = _parse_separable(operation)
    for j in range(1, layers + 1):
        net = tf.nn.relu(net)
        net = slim.separable_conv2d(net, filters, kernel, depth_multiplier=1, stride=stride,
                                    scope="separable_%dx%d_%d" % (kernel, kernel, j))
        net = slim.batch_norm(net, scope="bn_sep_%dx%d_%d" % (kernel, kernel, j))
        stride = 1  # only the first layer of the stack strides
    return net


class Cell:
    """One cell type; calling it builds a cell (see the module docstring).

    Args:
      spec: the cell's :class:`CellSpec`.
      num_conv_filters: filters at ``filter_scaling`` 1.
      drop_path_keep_prob: keep probability of drop-path for the last cell at the end of the
        schedule (1.0 disables it; it is 1.0 whenever the network is not training).
      total_num_cells: cells in the network, including stem and reduction cells (drop-path
        grows linearly with the cell index).
      total_training_steps: steps over which drop-path ramps up from nothing.
    """

    def __init__(self, spec, num_conv_filters, drop_path_keep_prob=1.0, total_num_cells=1,
                 total_training_steps=1):
        self.spec = spec
        self.num_conv_filters = num_conv_filters
        self.drop_path_keep_prob = drop_path_keep_prob
        self.total_num_cells = total_num_cells
        self.total_training_steps = total_training_steps

    def __call__(self, net, scope, filter_scaling, stride, prev_layer, cell_num,
                 current_step=None):
        """Builds the cell on ``net`` (and the cell before it, ``prev_layer``, or None)."""
        filters = int(self.num_conv_filters * filter_scaling)
        context = _CellContext(filters, cell_num, current_step)
        with tf.variable_scope(scope):
            states = self._base(net, prev_layer, filters)
            for i in range(len(self.spec.operations) // 2):
                with tf.variable_scope("comb_iter_%d" % i):
                    outputs = []
                    for side, k in (("left", 2 * i), ("right", 2 * i + 1)):
                        index = self.spec.inputs[k]
                        with tf.variable_scope(side):
                            outputs.append(self._operation(
                                states[index], self.spec.operations[k],
                                stride if index < 2 else 1, context))
                    with tf.variable_scope("combine"):
                        states.append(outputs[0] + outputs[1])
            with tf.variable_scope("cell_output"):
                return self._concat_unused(states)

    @staticmethod
    def _base(net, prev_layer, filters):
        """Hidden states 0 (``net`` through a 1x1) and 1 (``prev_layer`` matched to ``net``)."""
        if prev_layer is None:
            prev = net
        elif _width(prev_layer) != _width(net):
            prev = factorized_reduction(tf.nn.relu(prev_layer), filters, 2)
        elif _depth(prev_layer) != filters:
            prev = slim.conv2d(tf.nn.relu(prev_layer), filters, 1, scope="prev_1x1")
            prev = slim.batch_norm(prev, scope="prev_bn")
        else:
            prev = prev_layer
        net = slim.conv2d(tf.nn.relu(net), filters, 1, scope="1x1")
        net = slim.batch_norm(net, scope="beginning_bn")
        return [net, prev]

    def _operation(self, net, operation, stride, context):
        filters = context.filters
        if operation.startswith("separable"):
            net = _separable_stack(net, operation, filters, stride)
        elif operation == "none":
            if stride > 1 or _depth(net) != filters:
                net = slim.conv2d(tf.nn.relu(net), filters, 1, stride=stride, scope="1x1")
                net = slim.batch_norm(net, scope="bn_1")
            return net  # identity paths are never dropped
        elif operation in ("avg_pool_3x3", "max_pool_3x3"):
            pool = slim.avg_pool2d if operation.startswith("avg") else slim.max_pool2d
            in_depth = _depth(net)
            net = pool(net, 3, stride=stride, padding="SAME")
            if in_depth != filters:
                net = slim.conv2d(net, filters, 1, stride=1, scope="1x1")
                net = slim.batch_norm(net, scope="bn_1")
        else:
            raise ValueError("unknown cell operation %r" % operation)
        return self.drop_path(net, context.cell_num, context.current_step)

    def _concat_unused(self, states):
        final_width, final_depth = _width(states[-1]), _depth(states[-1])
        unused = []
        for index, used in enumerate(self.spec.used):
            if used:
                continue
            state = states[index]
            if _width(state) != final_width or _depth(state) != final_depth:
                with tf.variable_scope("reduction_%d" % index):
                    state = factorized_reduction(
                        state, final_depth, 2 if _width(state) != final_width else 1)
            unused.append(state)
        return tf.concat(unused, axis=3)

    def drop_path(self, net, cell_num, current_step=None):
        """Drops the whole path for random examples; keep probability falls with depth and time.

        The keep probability is ``1 - (cell_num + 1) / total_num_cells * (1 - keep) *
        min(1, step / total_training_steps)``; kept paths are scaled by its inverse.  ``step`` is
        ``current_step`` or the global step.
        """
        keep = self.drop_path_keep_prob
        if keep >= 1.0:
            return net
        layer_ratio = (cell_num + 1) / float(self.total_num_cells)
        keep = 1.0 - layer_ratio * (1.0 - keep)
        step = current_step
        if step is None:
            step = tf.train.get_global_step()
        if step is None:
            raise ValueError("drop-path needs a global step: create one before the network")
        progress = tf.minimum(1.0, tf.cast(step, tf.float32) / self.total_training_steps)
        keep = 1.0 - progress * (1.0 - keep)
        mask = tf.floor(keep + tf.random.uniform([tf.shape(net)[0], 1, 1, 1]))
        return net * tf.cast(mask / keep, net.dtype)


_CellContext = collections.namedtuple("_CellContext", ["filters", "cell_num", "current_step"])


def calc_reduction_layers(num_cells, num_reduction_layers):
    """Indices of the normal cells before which a reduction happens (evenly spaced)."""
    return [int(float(i) / (num_reduction_layers + 1) * num_cells)
            for i in range(1, num_reduction_layers + 1)]
