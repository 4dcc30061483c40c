"""Model strings of audio backbones, and which model strings name one.

- ``audio:SPEC``: log-mel spectrograms through the image backbone ``SPEC`` names, any string
  :func:`graft.backbones.create_backbone` accepts for an image model (``audio:efficientnet_lite0``
  offline, ``audio:timm:resnet18``, ``scratch:audio:efficientnet_lite0``, ``audio:/folder``):
  :class:`~graft.backbones.audio.spectrogram.SpectrogramBackbone`;
- ``hf:ORG/NAME``: a transformers audio model from the hub (wav2vec 2.0, HuBERT, WavLM, AST,
  Whisper's encoder): :class:`~graft.backbones.audio.hf_audio.HFAudioBackbone`;
- a local folder holding such a model (``config.json``, weights, ``preprocessor_config.json``).

The image network of ``audio:SPEC`` is built by the function the caller hands over (the
registry's ``create_backbone``), so this module never imports the registry that imports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft.backbones.audio.preprocessing import AudioPreprocessing, SpectrogramSettings
from graft.errors import ConfigError, ModelUnavailableError

if TYPE_CHECKING:
    from graft.backbones.base import Backbone

AUDIO_PREFIX = "audio:"
#: How graft spells a backbone with random weights (as :mod:`graft.backbones.registry` does).
SCRATCH_PREFIX = "scratch:"
#: transformers model types whose encoders read audio (``hf:`` ids of them are audio).
AUDIO_MODEL_TYPES = frozenset(
    {
        "audio-spectrogram-transformer",
        "data2vec-audio",
        "hubert",
        "sew",
        "sew-d",
        "unispeech",
        "unispeech-sat",
        "wav2vec2",
        "wav2vec2-bert",
        "wav2vec2-conformer",
        "wavlm",
        "whisper",
    }
)


def is_audio_model(spec: str) -> bool:
    """Whether the model string ``spec`` names an audio backbone: ``audio:...``; a folder whose
    ``preprocessor_config.json`` describes a feature extractor (image processors and
    tokenizers do not); an ``hf:`` id whose configuration's ``model_type`` is one of
    :data:`AUDIO_MODEL_TYPES` (read from the hub or its cache: False when it cannot be read,
    and the text path then says why)."""
    spec = spec.strip()
    if spec.startswith(AUDIO_PREFIX):
        return True
    folder = Path(spec).expanduser()
    if folder.is_dir():
        try:
            record = json.loads((folder / "preprocessor_config.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(record, dict) and "feature_extractor_type" in record
    if not spec.startswith("hf:"):
        return False
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(spec[3:]).model_type in AUDIO_MODEL_TYPES
    except (OSError, ValueError, KeyError):
        return False


def build_audio_backbone(
    spec: str,
    image_backbone: Callable[[str, bool], Backbone],
    pretrained: bool = True,
    preprocessing: AudioPreprocessing | None = None,
    **overrides: Any,
) -> Backbone:
    """Build the audio backbone a model string names (see the module docstring).

    Args:
        spec: the model string.
        image_backbone: builds the image network of ``audio:SPEC`` from ``(SPEC,
            pretrained)`` (:func:`graft.backbones.create_backbone`).
        pretrained: load the pretrained weights (False: the architecture only, for restoring
            a saved fine-tuned model).
        preprocessing: a saved record to rebuild with (its clip length for a transformers
            model, whose feature extractor fixes the rest); None: the defaults.
        overrides: fields of :class:`AudioPreprocessing` or :class:`SpectrogramSettings`
            (``clip_seconds=0.7``, ``n_mels=64``); a transformers model takes ``clip_seconds``
            only.
    """
    from graft.backbones.audio.hf_audio import HFAudioBackbone
    from graft.backbones.audio.spectrogram import SpectrogramBackbone

    spec = spec.strip()
    if spec.startswith(AUDIO_PREFIX):
        inner = spec.removeprefix(AUDIO_PREFIX).strip()
        if not inner:
            raise ModelUnavailableError(f"{spec!r}: name an image backbone after audio:")
        if inner.startswith(SCRATCH_PREFIX):  # spelt as graft spells every scratch backbone
            spec = SCRATCH_PREFIX + AUDIO_PREFIX + inner.removeprefix(SCRATCH_PREFIX)
        base = preprocessing or AudioPreprocessing(spectrogram=SpectrogramSettings())
        if base.spectrogram is None:
            raise ConfigError(f"{spec}: the preprocessing given has no spectrogram settings")
        record = base.replace(**overrides)  # checked before the image network is built
        image = image_backbone(inner, pretrained)
        return SpectrogramBackbone(image, record, spec).eval()
    if spec.startswith("hf:") or Path(spec).expanduser().is_dir():
        extra = sorted(set(overrides) - {"clip_seconds"})
        if extra:
            raise ConfigError(
                f"{spec}: {', '.join(extra)} cannot be set for a transformers audio model (its "
                "feature extractor fixes the sample rate and features); only clip_seconds can"
            )
        clip = overrides.get("clip_seconds", preprocessing.clip_seconds if preprocessing else 1.0)
        source = spec[3:] if spec.startswith("hf:") else str(Path(spec).expanduser().resolve())
        return HFAudioBackbone.create(source, pretrained, spec, clip_seconds=clip).eval()
    raise ModelUnavailableError(
        f"unknown audio model {spec!r}: expected audio:IMAGE_MODEL (audio:efficientnet_lite0 "
        "works offline), hf:ORG/NAME or a folder holding a transformers audio model"
    )
