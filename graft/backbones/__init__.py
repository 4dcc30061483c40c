"""Pretrained backbones behind one protocol (:mod:`graft.backbones.base`), one adapter per
source: timm (:mod:`.timm_backbone`, with the offline EfficientNet-Lite weights of
:mod:`.efficientnet_lite`), Hugging Face transformers (:mod:`.hf_text`); the registered names
(:mod:`.catalogue`) and the model strings that build them (:mod:`.registry`). The names below are
imported on first use, so listing the catalogue costs no torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graft.backbones.base import (
        Backbone,
        ImagePreprocessing,
        Preprocessing,
        TextPreprocessing,
        preprocessing_from_dict,
    )
    from graft.backbones.catalogue import BackboneEntry, list_backbones, register_backbone
    from graft.backbones.registry import create_backbone

_WHERE = {
    "Backbone": "graft.backbones.base",
    "ImagePreprocessing": "graft.backbones.base",
    "Preprocessing": "graft.backbones.base",
    "TextPreprocessing": "graft.backbones.base",
    "preprocessing_from_dict": "graft.backbones.base",
    "BackboneEntry": "graft.backbones.catalogue",
    "list_backbones": "graft.backbones.catalogue",
    "register_backbone": "graft.backbones.catalogue",
    "create_backbone": "graft.backbones.registry",
}
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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'graft.backbones' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
