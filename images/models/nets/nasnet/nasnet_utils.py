"""The cells of NASNet-A and their operations, TF-slim's ``nets.nasnet.nasnet_utils``.

A cell takes the previous two cell outputs, brings both to the cell's filter count at the
current resolution (hidden states 0 and 1), then runs five combinations: each applies one
operation to a "left" and one to a "right" hidden state and adds them (hidden states 2..6).  The
output concatenates the hidden states no combination used.  Operation names read as
``separable_<k>x<k>_<layers>``, ``<avg|max>_pool_<k>x<k>`` or ``none``.

Functions: calc_reduction_layers, get_channel_index, get_channel_dim, global_avg_pool,
factorized_reduction, drop_path.  Classes: NasNetABaseCell, NasNetANormalCell,
NasNetAReductionCell.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

arg_scope = slim.arg_scope
DATA_FORMAT_NCHW = 'NCHW'
DATA_FORMAT_NHWC = 'NHWC'
INVALID = 'null'
# Bound of the clipping with bounded activations: most activations lie in [-6, 6].
CLIP_BY_VALUE_CAP = 6


def calc_reduction_layers(num_cells, num_reduction_layers):
    """Indices of the cells before which a reduction cell goes (evenly spaced)."""
    return [int(float(pool_num) / (num_reduction_layers + 1) * num_cells)
            for pool_num in range(1, num_reduction_layers + 1)]


@slim.add_arg_scope
def get_channel_index(data_format=INVALID):
    """The channel axis of ``data_format`` (set by the builders' arg scope)."""
    assert data_format != INVALID
    return 3 if data_format == 'NHWC' else 1


@slim.add_arg_scope
def get_channel_dim(shape, data_format=INVALID):
    """The channel count of a rank-4 ``shape`` in ``data_format``."""
    assert data_format != INVALID
    assert len(shape) == 4
    if data_format == 'NHWC':
        return int(shape[3])
    if data_format == 'NCHW':
        return int(shape[1])
    raise ValueError('Not a valid data_format', data_format)


@slim.add_arg_scope
def global_avg_pool(x, data_format=INVALID):
    """The mean over the spatial axes: ``[batch, channels]``."""
    assert data_format != INVALID
    assert data_format in ['NHWC', 'NCHW']
    assert x.shape.ndims == 4
    return tf.reduce_mean(x, axis=[1, 2] if data_format == 'NHWC' else [2, 3])


@slim.add_arg_scope
def factorized_reduction(net, output_filters, stride, data_format=INVALID):
    """Brings ``net`` to ``output_filters``; with stride 2 also halves it without losing pixels.

    Stride 2 averages two 1x1-strided samplings, the second shifted by one pixel, projects each
    to half the filters (the second gets the odd one) and concatenates them.
    """
    assert data_format != INVALID
    if stride == 1:
        net = slim.conv2d(net, output_filters, 1, scope='path_conv')
        return slim.batch_norm(net, scope='path_bn')
    if data_format == 'NHWC':
        stride_spec = [1, stride, stride, 1]
    else:
        stride_spec = [1, 1, stride, stride]
    path1 = tf.nn.avg_pool2d(net, [1, 1, 1, 1], stride_spec, 'VALID', data_format=data_format)
    path1 = slim.conv2d(path1, int(output_filters / 2), 1, scope='path1_conv')
    # Pad right and bottom, then drop the first row and column: the grid shifted by one.
    if data_format == 'NHWC':
        path2 = tf.pad(net, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
        concat_axis = 3
    else:
        path2 = tf.pad(net, [[0, 0], [0, 0], [0, 1], [0, 1]])[:, :, 1:, 1:]
        concat_axis = 1
    path2 = tf.nn.avg_pool2d(path2, [1, 1, 1, 1], stride_spec, 'VALID', data_format=data_format)
    final_filter_size = int(output_filters / 2) + int(output_filters % 2)
    path2 = slim.conv2d(path2, final_filter_size, 1, scope='path2_conv')
    final_path = tf.concat(values=[path1, path2], axis=concat_axis)
    return slim.batch_norm(final_path, scope='final_path_bn')


@slim.add_arg_scope
def drop_path(net, keep_prob, is_training=True):
    """Drops whole examples of ``net`` with probability ``1 - keep_prob`` (kept ones scaled
    by ``1 / keep_prob``) in training."""
    if is_training:
        noise_shape = [tf.shape(net)[0], 1, 1, 1]
        random_tensor = keep_prob
        random_tensor += tf.random.uniform(noise_shape, dtype=tf.float32)
        binary_tensor = tf.cast(tf.floor(random_tensor), net.dtype)
        keep_prob_inv = tf.cast(1.0 / keep_prob, net.dtype)
        net = net * keep_prob_inv * binary_tensor
    return net


def _operation_to_filter_shape(operation):
    parts = operation.split('x')
    filter_shape = int(parts[0][-1])
    assert filter_shape == int(parts[1][0]), 'Rectangular filters not supported.'
    return filter_shape


def _operation_to_num_layers(operation):
    last = operation.split('_')[-1]
    return 1 if 'x' in last else int(last)


def _operation_to_info(operation):
    """'separable_3x3_4' -> (4 layers, 3x3 filters)."""
    return _operation_to_num_layers(operation), _operation_to_filter_shape(operation)


def _stacked_separable_conv(net, stride, operation, filter_size, use_bounded_activation):
    """``layers`` x (activation, separable convolution, batch norm); only the first strides."""
    num_layers, kernel_size = _operation_to_info(operation)
    activation_fn = tf.nn.relu6 if use_bounded_activation else tf.nn.relu
    for layer_num in range(1, num_layers + 1):
        net = activation_fn(net)
        net = slim.separable_conv2d(net, filter_size, kernel_size, depth_multiplier=1,
                                    scope='separable_{0}x{0}_{1}'.format(kernel_size, layer_num),
                                    stride=stride)
        net = slim.batch_norm(net, scope='bn_sep_{0}x{0}_{1}'.format(kernel_size, layer_num))
        stride = 1
    return net


def _operation_to_pooling_info(operation):
    """'avg_pool_3x3' -> ('avg', 3)."""
    parts = operation.split('_')
    shape = parts[-1]
    assert 'x' in shape
    height, width = shape.split('x')
    assert height == width
    return parts[0], int(height)


def _pooling(net, stride, operation, use_bounded_activation):
    pooling_type, pooling_shape = _operation_to_pooling_info(operation)
    if use_bounded_activation:
        net = tf.nn.relu6(net)
    if pooling_type == 'avg':
        return slim.avg_pool2d(net, pooling_shape, stride=stride, padding='SAME')
    if pooling_type == 'max':
        return slim.max_pool2d(net, pooling_shape, stride=stride, padding='SAME')
    raise NotImplementedError('Unimplemented pooling type: ', pooling_type)


class NasNetABaseCell(object):
    """A NASNet cell; calling it builds one (see the module docstring).

    Args:
      num_conv_filters: filters of every convolution at ``filter_scaling`` 1.
      operations: the ten operations, (left, right) per combination.
      used_hiddenstates: for hidden states 0..6, 1 if a combination reads it (the others form
        the output).
      hiddenstate_indices: the hidden state each operation reads.
      drop_path_keep_prob: keep probability of drop-path for the last cell at the end of the
        schedule (1.0: off).
      total_num_cells: cells in the network (drop-path grows with the cell index).
      total_training_steps: steps over which drop-path ramps up.
      use_bounded_activation: relu6 and clipping (quantised inference).
    """

    def __init__(self, num_conv_filters, operations, used_hiddenstates, hiddenstate_indices,
                 drop_path_keep_prob, total_num_cells, total_training_steps,
                 use_bounded_activation=False):
        self._num_conv_filters = num_conv_filters
        self._operations = operations
        self._used_hiddenstates = used_hiddenstates
        self._hiddenstate_indices = hiddenstate_indices
        self._drop_path_keep_prob = drop_path_keep_prob
        self._total_num_cells = total_num_cells
        self._total_training_steps = total_training_steps
        self._use_bounded_activation = use_bounded_activation

    def _activation(self, net):
        return tf.nn.relu6(net) if self._use_bounded_activation else tf.nn.relu(net)

    def _reduce_prev_layer(self, prev_layer, curr_layer):
        """``prev_layer`` matched to ``curr_layer``'s resolution and the cell's filters."""
        if prev_layer is None:
            return curr_layer
        curr_num_filters = self._filter_size
        prev_num_filters = get_channel_dim(prev_layer.shape)
        if int(curr_layer.shape[2]) != int(prev_layer.shape[2]):
            prev_layer = factorized_reduction(self._activation(prev_layer), curr_num_filters,
                                              stride=2)
        elif curr_num_filters != prev_num_filters:
            prev_layer = slim.conv2d(self._activation(prev_layer), curr_num_filters, 1,
                                     scope='prev_1x1')
            prev_layer = slim.batch_norm(prev_layer, scope='prev_bn')
        return prev_layer

    def _cell_base(self, net, prev_layer):
        """Hidden states 0 (``net`` through a 1x1) and 1 (``prev_layer`` matched to it)."""
        prev_layer = self._reduce_prev_layer(prev_layer, net)
        net = slim.conv2d(self._activation(net), self._filter_size, 1, scope='1x1')
        net = slim.batch_norm(net, scope='beginning_bn')
        return [net, prev_layer]

    def __call__(self, net, scope=None, filter_scaling=1, stride=1, prev_layer=None,
                 cell_num=-1, current_step=None):
        """Builds the cell on ``net`` (and ``prev_layer``, the output two cells back)."""
        self._cell_num = cell_num
        self._filter_scaling = filter_scaling
        self._filter_size = int(self._num_conv_filters * filter_scaling)
        with tf.variable_scope(scope):
            net = self._cell_base(net, prev_layer)
            for iteration in range(5):
                with tf.variable_scope('comb_iter_{}'.format(iteration)):
                    outputs = []
                    for side, i in (('left', 2 * iteration), ('right', 2 * iteration + 1)):
                        index = self._hiddenstate_indices[i]
                        with tf.variable_scope(side):
                            outputs.append(self._apply_conv_operation(
                                net[index], self._operations[i], stride, index < 2,
                                current_step))
                    with tf.variable_scope('combine'):
                        h = outputs[0] + outputs[1]
                        if self._use_bounded_activation:
                            h = tf.nn.relu6(h)
                    net.append(h)
            with tf.variable_scope('cell_output'):
                return self._combine_unused_states(net)

    def _apply_conv_operation(self, net, operation, stride, is_from_original_input,
                              current_step):
        """One operation; only the states the cell received (0 and 1) are strided."""
        if stride > 1 and not is_from_original_input:
            stride = 1
        input_filters = get_channel_dim(net.shape)
        filter_size = self._filter_size
        bounded = self._use_bounded_activation
        if 'separable' in operation:
            net = _stacked_separable_conv(net, stride, operation, filter_size, bounded)
            if bounded:
                net = tf.clip_by_value(net, -CLIP_BY_VALUE_CAP, CLIP_BY_VALUE_CAP)
        elif operation in ['none']:
            if bounded:
                net = tf.nn.relu6(net)
            if stride > 1 or (input_filters != filter_size):
                if not bounded:
                    net = tf.nn.relu(net)
                net = slim.conv2d(net, filter_size, 1, stride=stride, scope='1x1')
                net = slim.batch_norm(net, scope='bn_1')
                if bounded:
                    net = tf.clip_by_value(net, -CLIP_BY_VALUE_CAP, CLIP_BY_VALUE_CAP)
        elif 'pool' in operation:
            net = _pooling(net, stride, operation, bounded)
            if input_filters != filter_size:
                net = slim.conv2d(net, filter_size, 1, stride=1, scope='1x1')
                net = slim.batch_norm(net, scope='bn_1')
            if bounded:
                net = tf.clip_by_value(net, -CLIP_BY_VALUE_CAP, CLIP_BY_VALUE_CAP)
        else:
            raise ValueError('Unimplemented operation', operation)
        if operation != 'none':
            net = self._apply_drop_path(net, current_step=current_step)
        return net

    def _combine_unused_states(self, net):
        """Concatenates the unused hidden states, first reducing those of another size."""
        used_hiddenstates = self._used_hiddenstates
        final_height = int(net[-1].shape[2])
        final_num_filters = get_channel_dim(net[-1].shape)
        assert len(used_hiddenstates) == len(net)
        for idx, used_h in enumerate(used_hiddenstates):
            curr_height = int(net[idx].shape[2])
            curr_num_filters = get_channel_dim(net[idx].shape)
            should_reduce = final_num_filters != curr_num_filters
            should_reduce = (final_height != curr_height) or should_reduce
            should_reduce = should_reduce and not used_h
            if should_reduce:
                stride = 2 if final_height != curr_height else 1
                with tf.variable_scope('reduction_{}'.format(idx)):
                    net[idx] = factorized_reduction(net[idx], final_num_filters, stride)
        states_to_combine = [h for h, is_used in zip(net, used_hiddenstates) if not is_used]
        return tf.concat(values=states_to_combine, axis=get_channel_index())

    @slim.add_arg_scope  # no public API: the builders' arg scopes reach it
    def _apply_drop_path(self, net, current_step=None, use_summaries=False,
                         drop_connect_version='v3'):
        """Drop-path whose drop rate grows with the layer (v2), the step (v1) or both (v3).

        ``current_step`` defaults to the global step (created if needed); the rate reaches its
        full value after ``total_training_steps``.
        """
        drop_path_keep_prob = self._drop_path_keep_prob
        if drop_path_keep_prob < 1.0:
            assert drop_connect_version in ['v1', 'v2', 'v3']
            if drop_connect_version in ['v2', 'v3']:
                assert self._cell_num != -1
                layer_ratio = (self._cell_num + 1) / float(self._total_num_cells)
                if use_summaries:
                    with tf.device('/cpu:0'):
                        tf.summary.scalar('layer_ratio', layer_ratio)
                drop_path_keep_prob = 1 - layer_ratio * (1 - drop_path_keep_prob)
            if drop_connect_version in ['v1', 'v3']:
                if current_step is None:
                    current_step = tf.train.get_or_create_global_step()
                current_step = tf.cast(current_step, tf.float32)
                current_ratio = tf.minimum(1.0, current_step / self._total_training_steps)
                if use_summaries:
                    with tf.device('/cpu:0'):
                        tf.summary.scalar('current_ratio', current_ratio)
                drop_path_keep_prob = 1 - current_ratio * (1 - drop_path_keep_prob)
            if use_summaries:
                with tf.device('/cpu:0'):
                    tf.summary.scalar('drop_path_keep_prob', drop_path_keep_prob)
            net = drop_path(net, drop_path_keep_prob)
        return net


class NasNetANormalCell(NasNetABaseCell):
    """The NASNet-A normal cell."""

    def __init__(self, num_conv_filters, drop_path_keep_prob, total_num_cells,
                 total_training_steps, use_bounded_activation=False):
        operations = ['separable_5x5_2', 'separable_3x3_2', 'separable_5x5_2',
                      'separable_3x3_2', 'avg_pool_3x3', 'none', 'avg_pool_3x3',
                      'avg_pool_3x3', 'separable_3x3_2', 'none']
        super(NasNetANormalCell, self).__init__(
            num_conv_filters, operations, [1, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 0, 1, 1, 1, 0, 0], drop_path_keep_prob, total_num_cells,
            total_training_steps, use_bounded_activation)


class NasNetAReductionCell(NasNetABaseCell):
    """The NASNet-A reduction cell."""

    def __init__(self, num_conv_filters, drop_path_keep_prob, total_num_cells,
                 total_training_steps, use_bounded_activation=False):
        operations = ['separable_5x5_2', 'separable_7x7_2', 'max_pool_3x3', 'separable_7x7_2',
                      'avg_pool_3x3', 'separable_5x5_2', 'none', 'avg_pool_3x3',
                      'separable_3x3_2', 'max_pool_3x3']
        super(NasNetAReductionCell, self).__init__(
            num_conv_filters, operations, [1, 1, 1, 0, 0, 0, 0],
            [0, 1, 0, 1, 0, 1, 3, 2, 2, 0], drop_path_keep_prob, total_num_cells,
            total_training_steps, use_bounded_activation)
