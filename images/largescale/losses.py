"""The loss registry of the large-scale classifier and the margin settings.

A loss is either *whole-layer* (every worker holds the whole FC layer, trained data parallel) or
*dist* (the FC layer is split by class over the workers, model parallel).  Margin losses compare
L2-normalised features with L2-normalised class centres and change the target logit to
``cos(m1 * theta + m2) - m3`` before multiplying by the scale ``s`` (see :mod:`fc_layer`).
"""
import dataclasses
import math
from typing import Dict, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Margin:
    """Combined margin ``(m1, m2, m3)`` and scale ``s``.

    ArcFace is ``(1, 0.5, 0)``, CosFace ``(1, 0, 0.35)``, SphereFace ``(1.35, 0, 0)``.
    ``easy_margin`` applies the margin only where the target cosine is positive (else the guard
    that keeps the target logit monotonic in the angle is used).
    """
    m1: float = 1.0
    m2: float = 0.5
    m3: float = 0.0
    scale: float = 64.0
    easy_margin: bool = False

    def validate(self):
        """Raises ValueError for a margin that cannot train."""
        if not self.m1 > 0:
            raise ValueError("margin m1 (angle multiplier) must be > 0, got %g" % self.m1)
        if not 0 <= self.m2 < math.pi:
            raise ValueError("margin m2 (additive angle) must be in [0, pi), got %g" % self.m2)
        if not 0 <= self.m3 < 2:
            raise ValueError("margin m3 (additive cosine) must be in [0, 2), got %g" % self.m3)
        if not self.scale > 0:
            raise ValueError("scale s must be > 0, got %g" % self.scale)


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """One registered loss.

    Attributes:
      name: registry name.
      distributed: the FC layer is sharded over the workers.
      margins: default ``(m1, m2, m3)`` of a margin loss; None for plain softmax (with bias).
    """
    name: str
    distributed: bool
    margins: Optional[Tuple[float, float, float]]

    @property
    def is_margin(self):
        return self.margins is not None

    @property
    def has_bias(self):
        return self.margins is None


_LOSSES: Dict[str, LossSpec] = {}


def _register(name, distributed, margins):
    _LOSSES[name] = LossSpec(name, distributed, margins)


for _prefix, _dist in (("", False), ("dist_", True)):
    _register(_prefix + "softmax", _dist, None)
    _register(_prefix + "arcface", _dist, (1.0, 0.5, 0.0))
    _register(_prefix + "cosface", _dist, (1.0, 0.0, 0.35))
    _register(_prefix + "sphereface", _dist, (1.35, 0.0, 0.0))
    # insightface's combined margin for MS1M.
    _register(_prefix + "combined", _dist, (1.0, 0.3, 0.2))


def list_losses():
    """Sorted registered loss names."""
    return sorted(_LOSSES)


def get_loss(name) -> LossSpec:
    """The spec of ``name``; an unknown name raises ValueError listing the valid ones."""
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError("unknown loss_type %r; valid: %s" % (name, ", ".join(list_losses()))
                         ) from None
