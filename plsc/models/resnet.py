"""PLSC's ResNets: ``ResNet50(emb_dim=512)`` and so on, the IR-ResNets of the model registry
(:mod:`images.models.irresnet`).  ``Entry.set_model(ResNet100())`` trains ``irresnet_100`` with
an embedding of ``emb_dim``."""
from images.largescale import backbones
from images.models.irresnet.irresnet import UNITS

__all__ = ["ResNet", "ResNet50", "ResNet100", "ResNet101", "ResNet152"]


class ResNet(backbones.BaseModel):
    """IR-ResNet of ``layers`` (50, 100, 101 or 152) with an ``emb_dim``-wide embedding."""

    def __init__(self, layers=50, emb_dim=512):
        super().__init__()
        if layers not in UNITS:
            raise ValueError("supported layers %s, but given %r" % (sorted(UNITS), layers))
        self.layers = layers
        self.emb_dim = emb_dim

    @property
    def registry_name(self):
        return "irresnet_%d" % self.layers

    def build_network(self, input, is_train=True):  # noqa: A002  (PLSC's parameter name)
        """The embedding of ``input.image`` (``[batch, 112, 112, 3]``)."""
        return backbones.build(input.image, self.registry_name, self.emb_dim, is_train,
                               weight_decay=5e-4)


def ResNet50(emb_dim=512):  # noqa: N802  (PLSC's names)
    return ResNet(50, emb_dim)


def ResNet100(emb_dim=512):  # noqa: N802
    return ResNet(100, emb_dim)


def ResNet101(emb_dim=512):  # noqa: N802
    return ResNet(101, emb_dim)


def ResNet152(emb_dim=512):  # noqa: N802
    return ResNet(152, emb_dim)
