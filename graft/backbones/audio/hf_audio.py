"""Audio backbones from Hugging Face transformers: a hub id or a local model folder.

Any model ``AutoModel`` builds with an ``AutoFeatureExtractor`` beside it: wav2vec 2.0,
HuBERT, WavLM and Data2Vec-Audio (raw waveforms in), the Audio Spectrogram Transformer
(Kaldi filterbanks in) and Whisper, of which only the encoder is kept. Batches are waveforms
``[B, samples]`` at the feature extractor's sample rate; the feature extractor turns them into
the model's input inside :meth:`HFAudioBackbone.forward` (no gradient flows through it).

Features are the mean of the last hidden states over the frames that hold the clip (Whisper
pads every input to its 30-second window: its mask leaves that padding out), except for AST,
whose pooled output (the mean of its CLS and distillation tokens) is what it was trained to
classify from.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from graft.backbones.audio.preprocessing import AudioPreprocessing
from graft.backbones.base import Backbone
from graft.backbones.hf_text import _layer_list, layer_groups, load_encoder
from graft.backbones.lora import known_targets
from graft.errors import ConfigError, ModelUnavailableError

log = logging.getLogger("graft")

#: Layers LoRA adapts by default, by family: the attention projections of wav2vec 2.0,
#: HuBERT, WavLM and Whisper, and of AST (a ViT in transformers' BERT naming).
LORA_TARGETS = (("q_proj", "k_proj", "v_proj", "out_proj"), ("query", "key", "value"))
#: Families whose features are the model's pooled output rather than a mean over frames.
POOLED_OUTPUT = frozenset({"audio-spectrogram-transformer"})
#: Seconds in one input frame of AST's Kaldi filterbanks (10 ms shift, 25 ms window).
AST_FRAME_SHIFT, AST_WINDOW = 0.010, 0.025


def encoder_layers(model: nn.Module) -> nn.ModuleList | None:
    """The transformer layers: the longest ModuleList whose blocks hold an attention module
    (a wav2vec 2.0 feature encoder's convolutions are a ModuleList too, and may be as long)."""
    lists = [
        m
        for m in model.modules()
        if isinstance(m, nn.ModuleList)
        and len(m) > 0
        and any("attention" in n or "attn" in n for n, _ in m[0].named_modules())
    ]
    return max(lists, key=len) if lists else _layer_list(model)


class HFAudioBackbone(Backbone):
    """A transformers audio encoder behind its feature extractor; batches are waveforms."""

    export_refusal = (
        "its feature extractor runs in NumPy, outside the network, so no ONNX or TorchScript "
        "graph holds it; serve it with the torch engine (graft serve, graft predict)"
    )

    def __init__(
        self,
        model: nn.Module,
        feature_extractor: Any,
        preprocessing: AudioPreprocessing,
        spec: str,
    ):
        super().__init__()
        self.model = model
        self.feature_extractor = feature_extractor
        self.model_type = str(getattr(model.config, "model_type", ""))
        config = model.config
        self.feature_dim = int(getattr(config, "hidden_size", None) or config.d_model)
        self.spec = spec
        self.preprocessing = preprocessing
        # parameters the model keeps fixed itself (Whisper's sinusoidal positions) stay fixed
        self._fixed = {name for name, p in model.named_parameters() if not p.requires_grad}

    @property
    def preprocessing(self) -> AudioPreprocessing:
        """The feature extractor's sample rate and source, and the clip length."""
        return self._preprocessing

    @preprocessing.setter
    def preprocessing(self, record: AudioPreprocessing) -> None:
        """Take ``record``, its clip length capped at the input window of models that have
        one (Whisper's ``chunk_length``, AST's ``max_length`` frames); the feature extractor
        fixes the sample rate."""
        rate = int(self.feature_extractor.sampling_rate)
        if not isinstance(record, AudioPreprocessing) or record.spectrogram is not None:
            raise ConfigError(f"{self.spec}: expected a transformers model's audio preprocessing")
        if record.sample_rate != rate:
            raise ConfigError(
                f"{self.spec} reads audio at {rate} Hz (its feature extractor's rate), not "
                f"{record.sample_rate} Hz"
            )
        window = _input_window(self.model_type, self.feature_extractor)
        if window is not None and record.clip_seconds > window:
            log.info("%s reads at most %.2f s: clips cut to that", self.spec, window)
            record = dataclasses.replace(record, clip_seconds=window)
        self._preprocessing = record

    def model_inputs(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """The feature extractor's output for ``waveforms`` ``[B, samples]``, on the model's
        device (floating-point inputs in its dtype)."""
        if waveforms.dim() != 2:
            raise ValueError(f"expected waveforms [batch, samples], got {tuple(waveforms.shape)}")
        arrays = [np.asarray(w, dtype=np.float32) for w in waveforms.detach().float().cpu()]
        options = {"return_attention_mask": True} if self.model_type == "whisper" else {}
        encoded = self.feature_extractor(
            arrays, sampling_rate=self.preprocessing.sample_rate, return_tensors="pt", **options
        )
        reference = next(self.model.parameters())
        return {
            key: value.to(reference.device, reference.dtype if value.is_floating_point() else None)
            for key, value in encoded.items()
        }

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        inputs = self.model_inputs(batch)
        mask = inputs.pop("attention_mask", None)
        if self.model_type == "whisper":
            outputs = self.model(**inputs)  # the encoder takes no mask; it pools the clip only
        else:
            outputs = self.model(**inputs, **({} if mask is None else {"attention_mask": mask}))
        if self.model_type in POOLED_OUTPUT:
            return outputs.pooler_output
        hidden = outputs.last_hidden_state
        if mask is None:
            return hidden.mean(dim=1)
        weights = _frame_mask(mask, hidden.shape[1]).unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The parameters before the first layer (feature encoder, embeddings), one group per
        transformer layer, and those after the last (a final norm) with the last layer."""
        params = [p for n, p in self.model.named_parameters() if n not in self._fixed]
        return layer_groups(params, encoder_layers(self.model))

    def lora_targets(self) -> list[str]:
        return known_targets(self.model, LORA_TARGETS) or super().lora_targets()

    @classmethod
    def create(
        cls,
        source: str,
        pretrained: bool = True,
        spec: str | None = None,
        clip_seconds: float = 1.0,
    ) -> HFAudioBackbone:
        """Load ``source`` (a hub id or a folder with a feature extractor's
        ``preprocessor_config.json``); ``clip_seconds`` is capped at the input window of
        models that have one (see :attr:`preprocessing`)."""
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        try:
            config = AutoConfig.from_pretrained(source)
            extractor = AutoFeatureExtractor.from_pretrained(source)
            model = load_encoder(source, unused=()) if pretrained else AutoModel.from_config(config)
        except OSError as error:
            raise ModelUnavailableError(_audio_download_message(source, error)) from None
        except ValueError as error:
            raise ModelUnavailableError(
                f"transformers cannot build an audio encoder from {source}: {error}"
            ) from None
        if config.model_type == "whisper":
            model = model.get_encoder()
            model.embed_positions.requires_grad_(False)  # sinusoidal, fixed as Whisper made it
        rate = getattr(extractor, "sampling_rate", None)
        if not rate:
            raise ModelUnavailableError(f"{source}: its feature extractor has no sampling_rate")
        preprocessing = AudioPreprocessing(
            sample_rate=int(rate), clip_seconds=clip_seconds, feature_extractor=source
        )
        return cls(model, extractor, preprocessing, spec or f"hf:{source}")


def _frame_mask(mask: torch.Tensor, frames: int) -> torch.Tensor:
    """A mask over ``mask.shape[1]`` input steps, read at ``frames`` evenly spaced steps: which
    output frames start on the clip rather than on padding."""
    steps = mask.shape[1]
    positions = torch.arange(frames, device=mask.device) * steps // frames
    return mask[:, positions]


def _input_window(model_type: str, extractor) -> float | None:
    """The most seconds a model's feature extractor passes on (None: no limit)."""
    if model_type == "whisper":
        return float(extractor.chunk_length)
    if model_type in POOLED_OUTPUT:
        return (extractor.max_length - 1) * AST_FRAME_SHIFT + AST_WINDOW
    return None


def _audio_download_message(source: str, error: Exception) -> str:
    if Path(source).is_dir() and not (Path(source) / "preprocessor_config.json").is_file():
        return (
            f"{source} has no preprocessor_config.json: an audio model folder needs its feature "
            "extractor beside its weights (feature_extractor.save_pretrained(folder))"
        )
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    return (
        f"could not load the Hugging Face audio model {source}{offline}; is the network "
        f"reachable? {reason}. To use a model you have on disk, pass its folder (config.json, "
        "weights and preprocessor_config.json). Offline audio backbone: audio:efficientnet_lite0."
    )
