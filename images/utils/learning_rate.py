"""Learning-rate schedules: warmup (t2t, linear), decay types and FastNN's luong decay schemes.

The schedule is ``warmup(decay(step))``:

* decay types: ``fixed``; ``exponential`` (staircase by ``decay_factor`` every ``decay_steps``);
  ``polynomial`` (linear to ``end_learning_rate``); ``cosine`` (half cosine to
  ``end_learning_rate``).
* where decay starts and how often it steps: a luong scheme (``luong234``: after 2/3 of the total
  steps, 4 decays; ``luong5``: after 1/2, 5 decays; ``luong10``: after 1/2, 10 decays, spaced
  evenly over the remaining steps), else epoch-based when the epoch size is known
  (``decay_steps = samples_per_epoch / global_batch * num_epochs_per_decay``, as TF-slim), else
  polynomial and cosine span the whole run while exponential stays flat (FastNN's behaviour; a log
  line says so).
* warmup: t2t starts at ``lr / 100`` and rises exponentially to ``lr`` at ``warmup_steps``
  (``lr * exp(log(0.01) / warmup_steps) ** (warmup_steps - step)``); linear rises from 0.
"""
import dataclasses
import logging
import math
from typing import Optional

import tensorflow.compat.v1 as tf

log = logging.getLogger("fastnn")

DECAY_TYPES = ("fixed", "exponential", "polynomial", "cosine")
DECAY_SCHEMES = ("", "luong234", "luong5", "luong10")
WARMUP_SCHEMES = ("t2t", "linear")


@dataclasses.dataclass(frozen=True)
class LearningRateConfig:
    """Arguments of :func:`build_learning_rate` (the trainer's learning-rate flags)."""
    learning_rate: float = 0.01
    decay_type: str = "exponential"
    decay_factor: float = 0.94
    end_learning_rate: float = 1e-4
    warmup_steps: int = 0
    warmup_scheme: str = "t2t"
    decay_scheme: str = ""
    total_steps: int = 100
    num_samples_per_epoch: Optional[int] = None
    global_batch_size: int = 32
    num_epochs_per_decay: float = 2.0

    def validate(self):
        """Raises ValueError with the valid choices for an unknown name or a bad number."""
        if self.decay_type not in DECAY_TYPES:
            raise ValueError("unknown learning_rate_decay_type %r; valid: %s"
                             % (self.decay_type, ", ".join(DECAY_TYPES)))
        if self.decay_scheme not in DECAY_SCHEMES:
            raise ValueError("unknown decay_scheme %r; valid: %s (empty for none)"
                             % (self.decay_scheme, ", ".join(s for s in DECAY_SCHEMES if s)))
        if self.warmup_scheme not in WARMUP_SCHEMES:
            raise ValueError("unknown warmup_scheme %r; valid: %s"
                             % (self.warmup_scheme, ", ".join(WARMUP_SCHEMES)))
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be > 0, got %g" % self.learning_rate)
        if self.warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0, got %d" % self.warmup_steps)
        if self.decay_scheme and self.total_steps < 2 * _SCHEMES[self.decay_scheme][1]:
            raise ValueError("decay_scheme %s needs stop_at_step >= %d to space its decays"
                             % (self.decay_scheme, 2 * _SCHEMES[self.decay_scheme][1]))


# scheme -> (fraction of the run before decay starts, number of decays)
_SCHEMES = {"luong234": (2.0 / 3.0, 4), "luong5": (0.5, 5), "luong10": (0.5, 10)}


def decay_window(cfg: LearningRateConfig):
    """``(start_step, decay_steps)`` of the decay, or ``(None, None)`` when it never decays.

    ``decay_steps`` is the staircase period for exponential decay and the length of the decay for
    polynomial and cosine decay.
    """
    if cfg.decay_type == "fixed":
        return None, None
    if cfg.decay_scheme:
        fraction, times = _SCHEMES[cfg.decay_scheme]
        start = int(cfg.total_steps * fraction)
        period = int((cfg.total_steps - start) / times)
        if cfg.decay_type == "exponential":
            return start, period
        return start, cfg.total_steps - start
    if cfg.num_samples_per_epoch:
        period = int(cfg.num_samples_per_epoch / cfg.global_batch_size * cfg.num_epochs_per_decay)
        return 0, max(1, period)
    if cfg.decay_type == "exponential":
        return None, None
    return 0, max(1, cfg.total_steps)


def learning_rate_at(cfg: LearningRateConfig, step: int) -> float:
    """The schedule in plain Python (documentation, logging and tests)."""
    lr = cfg.learning_rate
    start, steps = decay_window(cfg)
    if start is not None and step >= start:
        t = step - start
        if cfg.decay_type == "exponential":
            lr = lr * cfg.decay_factor ** (t // steps)
        elif cfg.decay_type == "polynomial":
            frac = min(t, steps) / steps
            lr = (lr - cfg.end_learning_rate) * (1 - frac) + cfg.end_learning_rate
        elif cfg.decay_type == "cosine":
            frac = min(t, steps) / steps
            lr = cfg.end_learning_rate + 0.5 * (lr - cfg.end_learning_rate) * (
                1 + math.cos(math.pi * frac))
    if step < cfg.warmup_steps:
        if cfg.warmup_scheme == "t2t":
            lr = lr * math.exp(math.log(0.01) / cfg.warmup_steps) ** (cfg.warmup_steps - step)
        else:
            lr = lr * step / cfg.warmup_steps
    return lr


def build_learning_rate(cfg: LearningRateConfig, global_step):
    """The schedule as a float32 tensor of ``global_step``."""
    cfg.validate()
    step = tf.cast(global_step, tf.float32)
    base = tf.constant(cfg.learning_rate, tf.float32)
    lr = base
    start, steps = decay_window(cfg)
    if start is None and cfg.decay_type == "exponential":
        log.info("exponential decay needs --decay_scheme or the epoch size "
                 "(--num_sample_per_epoch); the learning rate stays at %g after warmup",
                 cfg.learning_rate)
    if start is not None:
        t = tf.maximum(step - float(start), 0.0)
        if cfg.decay_type == "exponential":
            decayed = base * tf.pow(cfg.decay_factor, tf.floor(t / float(steps)))
        else:
            frac = tf.minimum(t, float(steps)) / float(steps)
            end = tf.constant(cfg.end_learning_rate, tf.float32)
            if cfg.decay_type == "polynomial":
                decayed = (base - end) * (1.0 - frac) + end
            else:
                decayed = end + 0.5 * (base - end) * (1.0 + tf.cos(math.pi * frac))
        lr = tf.where(step >= float(start), decayed, base)
    if cfg.warmup_steps > 0:
        w = float(cfg.warmup_steps)
        if cfg.warmup_scheme == "t2t":
            factor = tf.exp(math.log(0.01) / w) ** (w - step)
        else:
            factor = step / w
        lr = tf.where(step < w, lr * factor, lr)
    return tf.identity(lr, name="learning_rate")
