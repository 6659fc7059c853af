"""Every optimizer makes a step; AdamW's decay is decoupled; clipping by global norm."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from images.utils import optimizers, precision


def one_step(cfg, lr=0.1, steps=1, w0=(1.0, -2.0, 3.0), clip=None):
    """Minimises sum((w - target)^2) for ``steps`` steps; returns (w0, w, losses)."""
    with tf.Graph().as_default():
        w = tf.get_variable("w", initializer=np.array(w0, np.float32))
        target = tf.constant([0.5, 0.5, 0.5])
        loss = tf.reduce_sum(tf.square(w - target))
        opt = optimizers.build_optimizer(cfg, lr)
        if clip:
            opt = precision.GradientPolicyOptimizer(opt, max_gradient_norm=clip)
        gs = tf.train.get_or_create_global_step()
        train = opt.minimize(loss, global_step=gs)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            losses = []
            for _ in range(steps):
                losses.append(sess.run(loss))
                sess.run(train)
            return np.array(w0, np.float32), sess.run(w), losses + [sess.run(loss)], sess.run(gs)


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS)
def test_each_optimizer_makes_a_step(name):
    cfg = optimizers.OptimizerConfig(name=name, opt_epsilon=1e-3)
    w0, w, losses, gs = one_step(cfg, steps=3)
    assert not np.allclose(w, w0), "%s left the weights unchanged" % name
    assert losses[-1] < losses[0], "%s did not lower the loss: %s" % (name, losses)
    assert gs == 3


def test_sgd_step_is_plain_gradient_descent():
    w0, w, _, _ = one_step(optimizers.OptimizerConfig(name="sgd"), lr=0.1)
    np.testing.assert_allclose(w, w0 - 0.1 * 2 * (w0 - 0.5), rtol=1e-6)


def test_adamweightdecay_decay_is_decoupled():
    b1, b2, eps, lr, wd = 0.9, 0.999, 1e-6, 0.1, 0.2
    cfg = optimizers.OptimizerConfig(name="adamweightdecay", adam_beta1=b1, adam_beta2=b2,
                                     opt_epsilon=eps, adamw_weight_decay_rate=wd)
    w0, w, _, _ = one_step(cfg, lr=lr)
    g = 2 * (w0 - 0.5)
    m = (1 - b1) * g
    v = (1 - b2) * g * g
    lr_t = lr * np.sqrt(1 - b2) / (1 - b1)
    # Adam on the loss gradient alone, plus lr * wd * w outside the moments.
    want = w0 - lr * wd * w0 - lr_t * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(w, want, rtol=1e-5)


def test_adamweightdecay_skips_excluded_variables():
    with tf.Graph().as_default():
        bias = tf.get_variable("layer/biases", initializer=[1.0])
        loss = tf.reduce_sum(bias * 0.0)
        opt = optimizers.build_optimizer(
            optimizers.OptimizerConfig(name="adamweightdecay", adamw_weight_decay_rate=0.5), 0.1)
        train = opt.minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train)
            assert sess.run(bias)[0] == 1.0


def test_clipping_by_global_norm():
    # Gradient 2 * (w0 - 0.5) has norm sqrt(1 + 25 + 25) ~ 7.1; clipped to 1.
    w0, w, _, _ = one_step(optimizers.OptimizerConfig(name="sgd"), lr=1.0, clip=1.0)
    g = 2 * (w0 - 0.5)
    np.testing.assert_allclose(w, w0 - g / np.linalg.norm(g), rtol=1e-5)


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(ValueError, match="valid: adadelta, adagrad"):
        optimizers.OptimizerConfig(name="lamb").validate()
