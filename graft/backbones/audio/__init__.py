"""Audio backbones behind the :class:`~graft.backbones.base.Backbone` protocol.

Two families, one interface: :class:`SpectrogramBackbone` shows log-mel spectrograms to an
image network (``audio:efficientnet_lite0``), :class:`HFAudioBackbone` runs a transformers
audio encoder behind its feature extractor (``hf:ORG/NAME`` or a model folder). Batches are
waveforms ``[B, samples]`` at the backbone's sample rate (:mod:`graft.data.audio`); what input
a backbone expects is its :class:`AudioPreprocessing`, saved with a run.

:func:`graft.backbones.create_backbone` builds every audio model string
(:mod:`graft.backbones.audio.specs`); :func:`create_audio_backbone` also takes a saved
preprocessing record or changes to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graft.backbones.audio.preprocessing import AudioPreprocessing, SpectrogramSettings
from graft.backbones.audio.specs import AUDIO_PREFIX, is_audio_model

if TYPE_CHECKING:
    from graft.backbones.audio.hf_audio import HFAudioBackbone
    from graft.backbones.audio.spectrogram import LogMelFrontend, SpectrogramBackbone
    from graft.backbones.base import Backbone

#: The backbones, imported on first use (torchaudio, transformers), as graft.backbones does.
_WHERE = {
    "HFAudioBackbone": "graft.backbones.audio.hf_audio",
    "LogMelFrontend": "graft.backbones.audio.spectrogram",
    "SpectrogramBackbone": "graft.backbones.audio.spectrogram",
}
__all__ = [
    "AUDIO_PREFIX",
    "AudioPreprocessing",
    "HFAudioBackbone",
    "LogMelFrontend",
    "SpectrogramBackbone",
    "SpectrogramSettings",
    "create_audio_backbone",
    "is_audio_model",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'graft.backbones.audio' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)


def create_audio_backbone(
    spec: str,
    pretrained: bool = True,
    preprocessing: AudioPreprocessing | None = None,
    **overrides: Any,
) -> Backbone:
    """Build the audio backbone a model string names (:mod:`graft.backbones.audio.specs`).

    Args:
        spec: the model string (``audio:efficientnet_lite0``, ``hf:ORG/NAME``, a folder).
        pretrained: load the pretrained weights (False: the architecture only, for restoring
            a saved fine-tuned model).
        preprocessing: a saved record to rebuild with (its clip length for a transformers
            model, whose feature extractor fixes the rest); None: the defaults.
        overrides: fields of :class:`AudioPreprocessing` or :class:`SpectrogramSettings`
            (``clip_seconds=0.7``, ``n_mels=64``, ``image_size=(64, 64)``); a transformers
            model takes ``clip_seconds`` only.
    """
    from graft.backbones.audio.specs import build_audio_backbone
    from graft.backbones.registry import create_backbone

    return build_audio_backbone(spec, create_backbone, pretrained, preprocessing, **overrides)
