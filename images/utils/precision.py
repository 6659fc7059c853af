"""Mixed precision: float32 master weights read in float16/bfloat16, and loss scaling.

The network runs in the compute dtype: trainable float32 variables are created in float32 and cast
on read by a custom getter, while batch-norm parameters and statistics stay float32 (tf-slim's fused
batch norm keeps them so).  Logits are cast back to float32 for the loss.

Loss scaling multiplies the loss before differentiation and divides the gradients right after, so
everything downstream (the Horovod allreduce average, clipping, the update) sees true gradients.
``dynamic`` scaling skips a step whose gradients are not finite, halves the scale, and doubles it
after ``growth_steps`` clean steps.
"""
import contextlib
import dataclasses
from typing import Optional

import tensorflow.compat.v1 as tf

COMPUTE_DTYPES = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}


def _master_weight_getter(compute_dtype):
    def getter(base_getter, name, *args, **kwargs):
        requested = kwargs.get("dtype")
        trainable = kwargs.get("trainable", True)
        if requested is not None and requested.base_dtype == compute_dtype and trainable:
            kwargs["dtype"] = tf.float32
            var = base_getter(name, *args, **kwargs)
            return tf.cast(var, compute_dtype, name=name.split("/")[-1] + "_cast")
        return base_getter(name, *args, **kwargs)
    return getter


@contextlib.contextmanager
def compute_dtype_scope(compute_dtype):
    """Variables created inside are float32 and read as ``compute_dtype`` (a no-op for float32)."""
    if compute_dtype == tf.float32:
        yield
        return
    with tf.variable_scope(tf.get_variable_scope(),
                           custom_getter=_master_weight_getter(compute_dtype)):
        yield


@dataclasses.dataclass(frozen=True)
class LossScaleConfig:
    """``mode`` is ``none``, ``static`` (multiply by ``value``) or ``dynamic``."""
    mode: str = "none"
    value: float = 1.0
    growth_steps: int = 2000
    initial_dynamic: float = 2.0 ** 15

    @staticmethod
    def parse(text, growth_steps=2000, initial_dynamic=2.0 ** 15):
        """``'dynamic'``, or a number (1 means no scaling)."""
        text = str(text).strip().lower()
        if text == "dynamic":
            return LossScaleConfig("dynamic", initial_dynamic, growth_steps, initial_dynamic)
        try:
            value = float(text)
        except ValueError:
            raise ValueError("--loss_scale must be a number >= 1 or 'dynamic', got %r"
                             % text) from None
        if not value >= 1.0:
            raise ValueError("--loss_scale must be >= 1 (or 'dynamic'), got %g" % value)
        return LossScaleConfig("none" if value == 1.0 else "static", value, growth_steps,
                               initial_dynamic)


class GradientPolicyOptimizer(tf.train.Optimizer):
    """Wraps an optimizer with loss scaling and gradient clipping by global norm.

    ``compute_gradients`` scales the loss and unscales the gradients; ``apply_gradients`` clips
    (after any allreduce done by a Horovod wrapper around this object), then applies the update or,
    with dynamic scaling and a non-finite gradient, skips it.  The global step advances either way.
    """

    def __init__(self, optimizer, loss_scale: LossScaleConfig = LossScaleConfig(),
                 max_gradient_norm: Optional[float] = None, name="GradientPolicy"):
        super().__init__(use_locking=False, name=name)
        self._opt = optimizer
        self._ls = loss_scale
        self._clip = max_gradient_norm
        self._scale_var = None
        self._good_steps = None
        if loss_scale.mode == "dynamic":
            with tf.variable_scope("loss_scale"):
                self._scale_var = tf.get_variable(
                    "scale", initializer=float(loss_scale.initial_dynamic), trainable=False,
                    collections=[tf.GraphKeys.GLOBAL_VARIABLES])
                self._good_steps = tf.get_variable(
                    "good_steps", initializer=0, dtype=tf.int64, trainable=False,
                    collections=[tf.GraphKeys.GLOBAL_VARIABLES])

    @property
    def inner(self):
        """The wrapped optimizer."""
        return self._opt

    def loss_scale(self):
        """The current scale as a float32 tensor."""
        if self._scale_var is not None:
            return tf.identity(self._scale_var)
        return tf.constant(self._ls.value if self._ls.mode == "static" else 1.0, tf.float32)

    def compute_gradients(self, loss, var_list=None, **kwargs):
        if self._ls.mode == "none":
            return self._opt.compute_gradients(loss, var_list=var_list, **kwargs)
        scale = self.loss_scale()
        grads_and_vars = self._opt.compute_gradients(loss * scale, var_list=var_list, **kwargs)
        inv = 1.0 / scale
        return [(None if g is None else _scale_grad(g, inv), v) for g, v in grads_and_vars]

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        grads = [g for g, _ in grads_and_vars]
        variables = [v for _, v in grads_and_vars]
        if self._clip:
            grads, _ = tf.clip_by_global_norm(grads, self._clip)
        pairs = list(zip(grads, variables))
        if self._ls.mode != "dynamic":
            return self._opt.apply_gradients(pairs, global_step=global_step, name=name)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(_dense(g))) for g in grads])

        def apply():
            with tf.control_dependencies([self._opt.apply_gradients(pairs)]):
                return tf.constant(True)

        def skip():
            return tf.constant(False)

        applied = tf.cond(finite, apply, skip)
        updates = [self._update_scale(applied)]
        if global_step is not None:
            with tf.control_dependencies([applied]):
                updates.append(tf.assign_add(global_step, 1))
        return tf.group(*updates, name=name or "apply_gradients")

    def _update_scale(self, finite):
        growth = self._ls.growth_steps

        def grow_or_count():
            good = self._good_steps + 1
            grow = good >= growth
            new_scale = tf.where(grow, self._scale_var * 2.0, self._scale_var)
            return tf.group(self._scale_var.assign(new_scale),
                            self._good_steps.assign(tf.where(grow, tf.zeros_like(good), good)))

        def shrink():
            return tf.group(self._scale_var.assign(tf.maximum(self._scale_var * 0.5, 1.0)),
                            self._good_steps.assign(tf.zeros_like(self._good_steps)))

        return tf.cond(finite, grow_or_count, shrink)

    # Pass-throughs so wrappers (Horovod) and savers see the inner optimizer's state.
    def get_slot(self, var, name):
        return self._opt.get_slot(var, name)

    def get_slot_names(self):
        return self._opt.get_slot_names()

    def variables(self):
        own = [v for v in (self._scale_var, self._good_steps) if v is not None]
        return self._opt.variables() + own


def _dense(g):
    return g.values if isinstance(g, tf.IndexedSlices) else g


def _scale_grad(g, factor):
    if isinstance(g, tf.IndexedSlices):
        return tf.IndexedSlices(g.values * tf.cast(factor, g.values.dtype), g.indices,
                                g.dense_shape)
    return g * tf.cast(factor, g.dtype)
