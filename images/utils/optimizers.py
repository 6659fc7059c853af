"""The optimizers FastNN offers, each with its own flags, plus decoupled-weight-decay Adam."""
import dataclasses
import re
from typing import Sequence

import tensorflow.compat.v1 as tf

OPTIMIZERS = ("adadelta", "adagrad", "adam", "adamweightdecay", "ftrl", "momentum", "rmsprop",
              "sgd")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer flags (FastNN's names and defaults)."""
    name: str = "rmsprop"
    adadelta_rho: float = 0.95
    adagrad_initial_accumulator_value: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    opt_epsilon: float = 1.0
    ftrl_learning_rate_power: float = -0.5
    ftrl_initial_accumulator_value: float = 0.1
    ftrl_l1: float = 0.0
    ftrl_l2: float = 0.0
    momentum: float = 0.9
    rmsprop_momentum: float = 0.9
    rmsprop_decay: float = 0.9
    adamw_weight_decay_rate: float = 0.01
    adamw_exclude_from_weight_decay: Sequence[str] = ("BatchNorm", "LayerNorm", "biases",
                                                      "beta", "gamma")

    def validate(self):
        """Raises ValueError naming the valid optimizers for an unknown one."""
        if self.name not in OPTIMIZERS:
            raise ValueError("unknown optimizer %r; valid: %s" % (self.name, ", ".join(OPTIMIZERS)))


def build_optimizer(cfg: OptimizerConfig, learning_rate):
    """Returns a ``tf.train.Optimizer`` for ``cfg.name`` driven by ``learning_rate``."""
    cfg.validate()
    if cfg.name == "adadelta":
        return tf.train.AdadeltaOptimizer(learning_rate, rho=cfg.adadelta_rho,
                                          epsilon=cfg.opt_epsilon)
    if cfg.name == "adagrad":
        return tf.train.AdagradOptimizer(
            learning_rate, initial_accumulator_value=cfg.adagrad_initial_accumulator_value)
    if cfg.name == "adam":
        return tf.train.AdamOptimizer(learning_rate, beta1=cfg.adam_beta1, beta2=cfg.adam_beta2,
                                      epsilon=cfg.opt_epsilon)
    if cfg.name == "adamweightdecay":
        return AdamWeightDecayOptimizer(
            learning_rate, weight_decay_rate=cfg.adamw_weight_decay_rate, beta1=cfg.adam_beta1,
            beta2=cfg.adam_beta2, epsilon=cfg.opt_epsilon,
            exclude_from_weight_decay=cfg.adamw_exclude_from_weight_decay)
    if cfg.name == "ftrl":
        return tf.train.FtrlOptimizer(
            learning_rate, learning_rate_power=cfg.ftrl_learning_rate_power,
            initial_accumulator_value=cfg.ftrl_initial_accumulator_value,
            l1_regularization_strength=cfg.ftrl_l1, l2_regularization_strength=cfg.ftrl_l2)
    if cfg.name == "momentum":
        return tf.train.MomentumOptimizer(learning_rate, momentum=cfg.momentum, name="Momentum")
    if cfg.name == "rmsprop":
        return tf.train.RMSPropOptimizer(learning_rate, decay=cfg.rmsprop_decay,
                                         momentum=cfg.rmsprop_momentum, epsilon=cfg.opt_epsilon)
    return tf.train.GradientDescentOptimizer(learning_rate)


class AdamWeightDecayOptimizer(tf.train.AdamOptimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter, "AdamW").

    The decay ``lr * weight_decay_rate * w`` is subtracted from each weight beside the Adam step,
    instead of adding ``w^2`` to the loss, so it does not pass through Adam's moment estimates.
    Variables whose names match a pattern of ``exclude_from_weight_decay`` (biases, batch-norm
    parameters by default) are not decayed.
    """

    def __init__(self, learning_rate, weight_decay_rate=0.01, beta1=0.9, beta2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=(), name="AdamWeightDecay"):
        super().__init__(learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon, name=name)
        self._weight_decay_rate = weight_decay_rate
        self._exclude = [re.compile(p) for p in exclude_from_weight_decay or ()]

    def _decays(self, var):
        return self._weight_decay_rate > 0 and not any(p.search(var.op.name)
                                                       for p in self._exclude)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        decays = []
        lr = tf.convert_to_tensor(self._lr, tf.float32)
        for _, var in grads_and_vars:
            if self._decays(var):
                # The decay reads the weight before the Adam step changes it.
                decays.append(var.assign_sub(
                    tf.cast(lr * self._weight_decay_rate, var.dtype.base_dtype) * var.read_value(),
                    use_locking=self._use_locking, read_value=False))
        with tf.control_dependencies(decays):
            return super().apply_gradients(grads_and_vars, global_step=global_step, name=name)
