"""PLSC's dynamic loss scaling (Paddle's ``update_loss_scaling``) on top of the zoo's optimizer
wrapper.

The scale grows by ``incr_ratio`` after ``incr_every_n_steps`` consecutive steps with finite
gradients and shrinks by ``decr_ratio`` after ``decr_every_n_nan_or_inf`` consecutive steps
with a non-finite gradient; a non-finite step is skipped (weights and slots keep their values)
and resets the count of good steps, a finite one the count of bad steps.  The scale stays in
``[1, MAX_DYNAMIC_SCALE]``.
"""
import tensorflow.compat.v1 as tf

from images.utils import precision


class PLSCLossScaleOptimizer(precision.GradientPolicyOptimizer):
    """:class:`images.utils.precision.GradientPolicyOptimizer` with PLSC's scaling rule.

    Args:
      optimizer: the optimizer to wrap.
      init_loss_scaling: the first scale.
      incr_every_n_steps: good steps before the scale grows.
      decr_every_n_nan_or_inf: bad steps before it shrinks.
      incr_ratio: growth factor (> 1).
      decr_ratio: shrink factor (in (0, 1)).
    """

    def __init__(self, optimizer, init_loss_scaling=1.0, incr_every_n_steps=2000,
                 decr_every_n_nan_or_inf=2, incr_ratio=2.0, decr_ratio=0.5):
        super().__init__(optimizer, precision.LossScaleConfig(
            "dynamic", float(init_loss_scaling), int(incr_every_n_steps),
            float(init_loss_scaling)))
        self._incr_ratio, self._decr_ratio = float(incr_ratio), float(decr_ratio)
        self._decr_every = int(decr_every_n_nan_or_inf)
        with tf.variable_scope(None, default_name="loss_scale"):
            self._bad_steps = tf.get_variable(
                "bad_steps", initializer=tf.constant(0, tf.int64), trainable=False,
                collections=[tf.GraphKeys.GLOBAL_VARIABLES])

    def _update_scale(self, finite):
        ceiling = max(precision.MAX_DYNAMIC_SCALE, float(self._ls.initial_dynamic))

        def good():
            count = self._good_steps + 1
            grow = count >= self._ls.growth_steps
            scale = tf.where(grow, tf.minimum(self._scale_var * self._incr_ratio, ceiling),
                             self._scale_var)
            return tf.group(self._scale_var.assign(scale),
                            self._good_steps.assign(tf.where(grow, tf.zeros_like(count), count)),
                            self._bad_steps.assign(tf.zeros_like(self._bad_steps)))

        def bad():
            count = self._bad_steps + 1
            shrink = count >= self._decr_every
            scale = tf.where(shrink, tf.maximum(self._scale_var * self._decr_ratio, 1.0),
                             self._scale_var)
            return tf.group(self._scale_var.assign(scale),
                            self._bad_steps.assign(tf.where(shrink, tf.zeros_like(count), count)),
                            self._good_steps.assign(tf.zeros_like(self._good_steps)))

        return tf.cond(finite, good, bad)

    def variables(self):
        return super().variables() + [self._bad_steps]
