"""PLSC's ``plsc.models.base_model.BaseModel`` (:class:`images.largescale.backbones.BaseModel`):
subclass it and implement ``build_network(self, input, is_train)`` returning the embedding."""
from images.largescale.backbones import BaseModel

__all__ = ["BaseModel"]
