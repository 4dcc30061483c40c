"""The backbone of a fit: the configured model, with its input size or text length as asked,
checked against the data it will read."""

from __future__ import annotations

import dataclasses
from typing import Any

from graft.backbones.base import Backbone
from graft.backbones.registry import create_backbone
from graft.errors import ConfigError


def build_backbone(config: Any, data: Any) -> Backbone:
    """``config.model`` (resolved), its images resized to ``config.image_size`` and its texts
    cut to ``config.max_length`` tokens when given; refused when it reads another modality
    than ``data`` (the training data) holds."""
    backbone = create_backbone(config.model)
    size, length = config.image_size, config.max_length
    if size is not None:
        if backbone.modality != "image":
            raise ConfigError(f"--image-size resizes images; {config.model} reads text")
        backbone.preprocessing = dataclasses.replace(
            backbone.preprocessing, input_size=(size, size)
        )
    if length is not None:
        if backbone.modality != "text":
            raise ConfigError(f"--max-length cuts texts; {config.model} reads images")
        limit = getattr(getattr(backbone, "model", None), "config", None)
        limit = getattr(limit, "max_position_embeddings", None)
        if limit is not None and length > limit:
            raise ConfigError(
                f"--max-length {length} is over the {limit} positions {config.model} has"
            )
        backbone.preprocessing = dataclasses.replace(backbone.preprocessing, max_length=length)
    if backbone.modality != data.modality:
        raise ConfigError(
            f"--model {config.model} is a {backbone.modality} backbone, but "
            f"{data.source} holds {data.modality} data"
        )
    if config.views > 1 and backbone.modality != "image":
        raise ConfigError("--views caches augmented views of images; this data is text")
    return backbone
