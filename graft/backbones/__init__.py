"""Pretrained backbones behind one protocol; see :mod:`graft.backbones.registry`."""

from graft.backbones.base import (
    Backbone,
    ImagePreprocessing,
    Preprocessing,
    TextPreprocessing,
    preprocessing_from_dict,
)
from graft.backbones.registry import (
    BackboneEntry,
    create_backbone,
    list_backbones,
    register_backbone,
)

__all__ = [
    "Backbone",
    "BackboneEntry",
    "ImagePreprocessing",
    "Preprocessing",
    "TextPreprocessing",
    "create_backbone",
    "list_backbones",
    "preprocessing_from_dict",
    "register_backbone",
]
