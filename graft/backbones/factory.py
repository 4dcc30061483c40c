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
    cut to ``config.max_length`` tokens when given, an audio backbone's clips cut to
    ``config.clip_seconds`` (:func:`audio_input`); refused when it reads another modality
    than ``data`` (the training data) holds."""
    backbone = create_backbone(config.model)
    if backbone.modality != data.modality:
        hint = ""
        if data.modality == "audio" and backbone.modality == "image":
            hint = f" (audio:{config.model} shows it log-mel spectrograms)"
        raise ConfigError(
            f"--model {config.model} is a {backbone.modality} backbone, but "
            f"{data.source} holds {data.modality} data{hint}"
        )
    if backbone.modality == "audio":
        return audio_input(backbone, config, data)
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
    if config.views > 1 and backbone.modality != "image":
        raise ConfigError("--views caches augmented views of images; this data is text")
    if getattr(config, "clip_seconds", None) is not None:
        raise ConfigError(f"--clip-seconds cuts audio clips; this data is {data.modality}")
    return backbone


def audio_input(backbone: Backbone, config: Any, data: Any) -> Backbone:
    """An audio ``backbone`` set up for training ``data`` (audio files) with ``config``.

    Clips are cut to ``config.clip_seconds``, else to the length of 95% of the training clips
    (:func:`~graft.backbones.audio.preprocessing.default_clip_seconds`, read from the files'
    headers); a spectrogram backbone's images are ``config.image_size`` pixels square when
    given, else the spectrogram's own size (``n_mels`` by the clip's frames); SpecAugment is
    off with ``--augment none``. Assigning the preprocessing rebuilds the frontend, whose mask
    sizes depend on the clip length.
    """
    from graft.backbones.audio.preprocessing import clip_seconds_of

    if config.max_length is not None:
        raise ConfigError(f"--max-length cuts texts; {config.model} reads audio")
    if config.views > 1:
        raise ConfigError("--views caches augmented views of images; this data is audio")
    changes: dict[str, Any] = {"clip_seconds": config.clip_seconds or clip_seconds_of(data.items)}
    if config.image_size is not None and backbone.preprocessing.spectrogram is None:
        raise ConfigError(
            f"--image-size sizes spectrogram images; {config.model}'s feature extractor "
            "makes its own input"
        )
    if backbone.preprocessing.spectrogram is not None:  # None: the new clip's own size
        size = config.image_size
        changes["image_size"] = None if size is None else (size, size)
    backbone.preprocessing = backbone.preprocessing.replace(**changes)
    if hasattr(backbone, "spec_augment"):
        backbone.spec_augment = config.augment != "none"
    return backbone
