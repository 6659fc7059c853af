"""PLSC's ``plsc.models``: ``BaseModel`` and the ResNets."""
from plsc.models.base_model import BaseModel
from plsc.models.resnet import ResNet, ResNet50, ResNet100, ResNet101, ResNet152

__all__ = ["BaseModel", "ResNet", "ResNet50", "ResNet100", "ResNet101", "ResNet152"]
