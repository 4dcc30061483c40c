"""The backbone protocol: what every pretrained feature extractor answers, whatever its source.

Downstream code (heads, strategies, the feature cache, ranking) speaks only this interface, as
timm's models all answer ``forward_features``/``group_matcher``: features for a batch, their
dimension, parameter groups from input to output, and the preprocessing the weights expect.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from graft.backbones.lora import LoraSettings, base_state, is_adapter_key, is_identity

Modality = Literal["image", "text", "audio"]


@dataclass(frozen=True)
class ImagePreprocessing:
    """What input an image backbone's weights expect (derived from the weights, never typed)."""

    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    modality: Modality = "image"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TextPreprocessing:
    """The tokenizer (a folder or hub id) and the maximum sequence length of a text backbone."""

    tokenizer: str
    max_length: int
    modality: Modality = "text"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Preprocessing = ImagePreprocessing | TextPreprocessing


def preprocessing_from_dict(values: dict[str, Any]) -> Preprocessing:
    """Rebuild a preprocessing record saved with :meth:`to_dict`."""
    values = dict(values)
    if values.get("modality") == "text":
        return TextPreprocessing(**values)
    if values.get("modality") == "audio":
        from graft.backbones.audio.preprocessing import AudioPreprocessing

        return AudioPreprocessing.from_dict(values)
    for key in ("input_size", "mean", "std"):
        values[key] = tuple(values[key])
    return ImagePreprocessing(**values)


class Backbone(nn.Module, ABC):
    """A pretrained network that maps a batch of inputs to one feature vector per input.

    Attributes:
        spec: the model string that recreates this backbone (``efficientnet_lite0``,
            ``timm:resnet50``, ``hf:org/name``, a local path).
        feature_dim: length of the feature vector.
        preprocessing: what input the weights expect.
        adapter: the LoRA adapters injected into it (:mod:`graft.backbones.lora`), or None.
        source_head: the pretrained classifier of the source task as ``(weight [Z, dim],
            bias [Z])`` (the ImageNet head of an image model), or None. Kept outside the
            module's parameters: it never trains, is never saved and does not change the
            fingerprint; LEEP (:mod:`graft.selection.scores`) reads it.
        export_refusal: why ``graft export`` cannot put this backbone in a graph (a part of
            its preprocessing that runs outside torch), or None when it can.
        adapts_batchnorm: its BatchNorm layers learn their running statistics whenever its
            weights train (not LoRA's adapters alone): its inputs are far from those its
            weights saw (spectrograms shown to an ImageNet network), so the pretrained
            statistics would misnormalise them. False: they stay as pretrained.
        lr_mult: its backbone learning rate as a fraction of ``lr`` when
            ``backbone_lr_mult`` is not given; None: by modality
            (:data:`graft.strategies.base.BACKBONE_LR_MULT`).
        backbone_epochs: epochs of the phases that train it when ``epochs`` is not given;
            None: the strategies' default (:data:`graft.strategies.base.DEFAULT_BACKBONE_EPOCHS`).
    """

    spec: str
    feature_dim: int
    preprocessing: Preprocessing
    adapter: LoraSettings | None = None
    source_head: tuple[torch.Tensor, torch.Tensor] | None = None
    export_refusal: str | None = None
    adapts_batchnorm: bool = False
    lr_mult: float | None = None
    backbone_epochs: int | None = None

    @property
    def modality(self) -> Modality:
        return self.preprocessing.modality

    @abstractmethod
    def forward(self, batch: Any) -> torch.Tensor:
        """Features ``[batch, feature_dim]`` for a batch made by the matching collate."""

    @abstractmethod
    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """Trainable parameters grouped from input (stem, embeddings) to output (last block)."""

    def source_probabilities(self, features: torch.Tensor) -> torch.Tensor | None:
        """The source classifier's class probabilities ``[n, Z]`` for ``features`` (None
        without a source classifier)."""
        if self.source_head is None:
            return None
        weight, bias = self.source_head
        return torch.softmax(features.float() @ weight.T.float() + bias.float(), dim=-1)

    def lora_targets(self) -> list[str]:
        """Module-name patterns LoRA adapts by default: here every ``nn.Linear`` (by full
        name), else every pointwise (1x1, ungrouped) convolution; adapters override this with
        the layers their architectures are known for."""
        linear = [n for n, m in self.named_modules() if isinstance(m, nn.Linear)]
        if linear:
            return linear
        return [
            n
            for n, m in self.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1
        ]

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The parameters of the injected adapters (none without adapters)."""
        return [p for n, p in self.named_parameters() if is_adapter_key(n)]

    def fingerprint(self, base_only: bool = False) -> str:
        """A digest of the weights and preprocessing: equal fingerprints give equal features.

        Adapters count only once they change the features (a LoRA ``B`` matrix is non-zero),
        so a freshly adapted backbone shares the feature cache of the pretrained one;
        ``base_only`` leaves them out regardless: the digest of the pretrained weights.
        """
        state = self.state_dict()
        if self.adapter is not None and (base_only or is_identity(state)):
            state = base_state(state)
        digest = hashlib.sha256(repr(self.preprocessing.to_dict()).encode())
        for name, tensor in sorted(state.items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy())
        return digest.hexdigest()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
