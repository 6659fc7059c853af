"""PLSC's API on fastnn: ``from plsc import Entry`` as in PaddlePaddle/PLSC v0.1/v0.2.

A thin face over :mod:`images.largescale`: ``Entry`` is its Entry, starting from the defaults in
``plsc.config`` (PLSC's module of defaults); ``plsc.models`` and ``plsc.utils`` re-export the
model base class, PLSC's ResNets (the IR-ResNets of the model registry) and PLSC's readers.
See docs/largescale.md, "Coming from PLSC".
"""
from images.largescale import Entry as _Entry

__version__ = "0.2.0+fastnn"
__all__ = ["Entry"]


class Entry(_Entry):
    """:class:`images.largescale.Entry` with its defaults taken from ``plsc.config.config``."""

    def __init__(self, cluster=None):
        super().__init__(cluster)
        from plsc import config
        config.apply(self)
