"""Each learning-rate schedule against its formula, evaluated at chosen steps."""
import math

import pytest
import tensorflow.compat.v1 as tf

from images.utils import learning_rate as lr_lib

LR = 0.1
TOTAL = 120


def evaluate(cfg, steps):
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        lr = lr_lib.build_learning_rate(cfg, step)
        with tf.Session() as sess:
            return [float(sess.run(lr, {step: s})) for s in steps]


def t2t(lr, warmup, step):
    # FastNN: lr * exp(log(0.01) / warmup) ** (warmup - step) below warmup.
    return lr * math.exp(math.log(0.01) / warmup) ** (warmup - step) if step < warmup else lr


def luong(lr, factor, total, start_frac, times, step):
    start = int(total * start_frac)
    period = int((total - start) / times)
    return lr if step < start else lr * factor ** ((step - start) // period)


STEPS = [0, 1, 5, 10, 39, 40, 59, 60, 61, 79, 80, 81, 90, 99, 100, 110, 119, 120, 150]

CASES = {
    "fixed": (dict(decay_type="fixed"), lambda s: LR),
    "fixed+t2t": (dict(decay_type="fixed", warmup_steps=10), lambda s: t2t(LR, 10, s)),
    "linear_warmup": (dict(decay_type="fixed", warmup_steps=10, warmup_scheme="linear"),
                      lambda s: LR * min(s, 10) / 10),
    "exponential_no_schedule": (dict(decay_type="exponential"), lambda s: LR),
    "exponential_epochs": (
        dict(decay_type="exponential", num_samples_per_epoch=400, global_batch_size=20,
             num_epochs_per_decay=1.5, decay_factor=0.5),
        lambda s: LR * 0.5 ** (s // 30)),
    "luong234": (dict(decay_scheme="luong234", decay_factor=0.5),
                 lambda s: luong(LR, 0.5, TOTAL, 2 / 3, 4, s)),
    "luong5": (dict(decay_scheme="luong5", decay_factor=0.5),
               lambda s: luong(LR, 0.5, TOTAL, 0.5, 5, s)),
    "luong10": (dict(decay_scheme="luong10", decay_factor=0.94),
                lambda s: luong(LR, 0.94, TOTAL, 0.5, 10, s)),
    "luong234+t2t": (dict(decay_scheme="luong234", decay_factor=0.5, warmup_steps=20),
                     lambda s: t2t(luong(LR, 0.5, TOTAL, 2 / 3, 4, s), 20, s)),
    "polynomial": (dict(decay_type="polynomial", end_learning_rate=0.001),
                   lambda s: (LR - 0.001) * (1 - min(s, TOTAL) / TOTAL) + 0.001),
    "polynomial_luong5": (
        dict(decay_type="polynomial", decay_scheme="luong5", end_learning_rate=0.0),
        lambda s: LR if s < 60 else LR * (1 - min(s - 60, 60) / 60)),
    "cosine": (dict(decay_type="cosine", end_learning_rate=0.0),
               lambda s: 0.5 * LR * (1 + math.cos(math.pi * min(s, TOTAL) / TOTAL))),
    "cosine+warmup": (dict(decay_type="cosine", end_learning_rate=0.01, warmup_steps=10),
                      lambda s: t2t(0.01 + 0.5 * (LR - 0.01) * (
                          1 + math.cos(math.pi * min(s, TOTAL) / TOTAL)), 10, s)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_schedule_matches_formula(case):
    kwargs, formula = CASES[case]
    cfg = lr_lib.LearningRateConfig(learning_rate=LR, total_steps=TOTAL, **kwargs)
    got = evaluate(cfg, STEPS)
    want = [formula(s) for s in STEPS]
    assert got == pytest.approx(want, rel=1e-5, abs=1e-9)
    # The plain-Python twin used for logging agrees too.
    assert [lr_lib.learning_rate_at(cfg, s) for s in STEPS] == pytest.approx(want, rel=1e-9)


def test_t2t_warmup_starts_at_one_hundredth():
    cfg = lr_lib.LearningRateConfig(learning_rate=LR, decay_type="fixed", warmup_steps=50)
    first, last = evaluate(cfg, [0, 50])
    assert first == pytest.approx(LR / 100, rel=1e-5)
    assert last == pytest.approx(LR)


@pytest.mark.parametrize("field,value,needle", [
    ("decay_type", "step", "learning_rate_decay_type"),
    ("decay_scheme", "luong3", "decay_scheme"),
    ("warmup_scheme", "gradual", "warmup_scheme"),
])
def test_unknown_names_are_rejected(field, value, needle):
    cfg = lr_lib.LearningRateConfig(**{field: value})
    with pytest.raises(ValueError, match=needle):
        cfg.validate()
