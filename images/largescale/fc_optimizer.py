"""Momentum for the FC shard with its slot kept in 16 bits (``set_fc_momentum_dtype``).

The FC layer's weights and momentum are the two buffers of the size of the layer that live for
the whole run; with Partial FC everything else is small.  Keeping the momentum in bfloat16 (or
float16) instead of float32 cuts the layer's resident memory from 8 to 6 bytes per parameter.
The update itself is computed in float32 on the rows a step touches (Partial FC: the sampled
rows) and only the stored momentum is rounded, so the weights keep full precision.

Checkpoints keep the momentum in float32 (:class:`Float32View`): they load into a float32 or a
16-bit run alike, and re-sharding stays a byte copy.
"""
import tensorflow.compat.v1 as tf
from tensorflow.python.training import slot_creator

SLOT_DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}


class LowPrecisionMomentum(tf.train.Optimizer):
    """Applies ``inner`` (a ``tf.train.MomentumOptimizer``) to every variable except
    ``low_variables``, whose momentum slot is ``slot_dtype`` and whose update is done here with
    the same learning rate, momentum and Nesterov setting.

    Sparse gradients (Partial FC) update only their rows and those rows' slots, as TensorFlow's
    sparse momentum does.
    """

    def __init__(self, inner, low_variables, slot_dtype=tf.bfloat16, name="FCMomentum"):
        if not isinstance(inner, tf.train.MomentumOptimizer):
            raise ValueError("a 16-bit FC momentum needs the momentum optimizer, got %s"
                             % type(inner).__name__)
        super().__init__(use_locking=False, name=name)
        self._inner = inner
        self._low = list(low_variables)
        self._dtype = tf.as_dtype(slot_dtype)
        self._slots = {}

    def set_low_variables(self, variables):
        """The variables whose momentum is 16 bits (known only once the FC layer is built,
        after this optimizer)."""
        self._low = list(variables)

    def _slot_for(self, var):
        key = id(var)
        if key not in self._slots:
            with tf.init_scope():
                self._slots[key] = slot_creator.create_slot(
                    var, zeros_in_place(var.shape, self._dtype), "Momentum")
        return self._slots[key]

    def compute_gradients(self, *args, **kwargs):
        return self._inner.compute_gradients(*args, **kwargs)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        low_ids = {id(v) for v in self._low}
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        rest = [(g, v) for g, v in grads_and_vars if id(v) not in low_ids]
        updates = [self._inner.apply_gradients(rest)] if rest else []
        updates += [self._update(g, v) for g, v in grads_and_vars if id(v) in low_ids]
        with tf.control_dependencies(updates):
            if global_step is None:
                return tf.no_op(name=name or "fc_momentum_update")
            return tf.assign_add(global_step, 1, name=name or "fc_momentum_update").op

    def _hyper(self):
        opt = self._inner
        lr = opt._call_if_callable(opt._learning_rate)  # pylint: disable=protected-access
        mu = opt._call_if_callable(opt._momentum)  # pylint: disable=protected-access
        return (tf.cast(lr, tf.float32), tf.cast(mu, tf.float32),
                opt._use_nesterov)  # pylint: disable=protected-access

    def _update(self, grad, var):
        slot = self._slot_for(var)
        lr, mu, nesterov = self._hyper()
        if not isinstance(grad, tf.IndexedSlices):
            new = mu * tf.cast(slot, tf.float32) + grad
            step = lr * (grad + mu * new if nesterov else new)
            return tf.group(slot.assign(tf.cast(new, self._dtype)), var.assign_sub(step))
        rows, values = _summed_rows(grad)
        new = mu * tf.cast(tf.gather(slot, rows), tf.float32) + values
        write_slot = slot.scatter_update(tf.IndexedSlices(tf.cast(new, self._dtype), rows))
        # After the slot's write, ``new`` has no other reader: the step reuses its buffer
        # (element-wise ops forward a buffer nothing else holds), so the update of the rows
        # a step touches costs one float32 copy of them, not two.
        with tf.control_dependencies([write_slot]):
            step = lr * (values + mu * new if nesterov else new)
        return tf.group(write_slot, var.scatter_sub(tf.IndexedSlices(step, rows)))

    def get_slot(self, var, name):
        if name == "momentum" and id(var) in self._slots:
            return self._slots[id(var)]
        return self._inner.get_slot(var, name)

    def get_slot_names(self):
        return self._inner.get_slot_names()

    def variables(self):
        return self._inner.variables() + list(self._slots.values())


def _summed_rows(grad):
    """``(rows, values)`` of an IndexedSlices gradient with repeated rows summed, as
    TensorFlow's sparse updates do; the sum (a copy of the values) is made only when a row
    repeats (Partial FC's rows never do)."""
    rows, position = tf.unique(grad.indices)

    def summed():
        return tf.math.unsorted_segment_sum(grad.values, position, tf.shape(rows)[0])

    repeated = tf.shape(rows)[0] < tf.shape(grad.indices)[0]
    return rows, tf.cond(repeated, summed, lambda: tf.identity(grad.values))


def zeros_in_place(shape, dtype):
    """Zeros of ``shape`` that a variable takes over without a copy.

    A variable initialised from ``tf.zeros`` (a Fill) keeps a second buffer of its size while
    it is initialised (measured: 2x the slot's size at start-up, and that memory is not given
    back); the output of an element-wise op on a fresh random draw is taken over as the
    variable's buffer, as the FC weights' draw is.  ``floor`` of a uniform draw in [0, 1) is
    exactly +0 everywhere.
    """
    return tf.floor(tf.random.stateless_uniform(shape, seed=[0, 0], dtype=dtype))


class Float32View:
    """A 16-bit variable as the checkpointer sees it: read as float32, assigned from float32.

    :class:`images.largescale.checkpoint.ShardedCheckpointer` reads ``shape`` and ``dtype``,
    fetches the object and assigns to it; the conversions are exact for bfloat16 -> float32 and
    round to nearest the other way.
    """

    def __init__(self, variable):
        self.variable = variable
        self.shape = variable.shape
        self.dtype = tf.float32
        self.op = variable.op
        self._read = tf.cast(variable, tf.float32, name=variable.op.name.replace("/", "_")
                             + "_as_float32")

    def _as_graph_element(self):
        return self._read

    def assign(self, value, read_value=False):
        return self.variable.assign(tf.cast(value, self.variable.dtype), read_value=read_value)


def checkpoint_view(variable):
    """``variable`` itself when float32, else a :class:`Float32View` of it."""
    if variable.dtype.base_dtype == tf.float32:
        return variable
    return Float32View(variable)
