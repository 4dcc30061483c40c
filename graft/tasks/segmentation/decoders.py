"""The head of a semantic segmentation fit: segmentation_models_pytorch's decoders on a graft
backbone.

segmentation_models_pytorch (smp) builds a model from an *encoder* that returns feature maps at
strides 1 (the input), 2, 4, 8, 16 and 32, a *decoder* and a *segmentation head* (a convolution
to one logit per class, upsampled to the input's size). graft's backbone is the encoder: the
multi-scale view of any graft image backbone (:mod:`graft.backbones.features_only`: the offline
EfficientNet-Lite weights, any timm model, local weights); the decoder and segmentation head
are the new head (:class:`SegmenterHead`), built by smp itself and never rewritten here:

- ``unet``: U-Net (Ronneberger et al. 2015), skip connections at every stride;
- ``fpn``: a feature pyramid (Kirillov et al. 2019, "Panoptic Feature Pyramid Networks");
- ``deeplabv3plus``: DeepLabV3+ (Chen et al. 2018): atrous spatial pyramid pooling on an
  encoder whose last stage is dilated to stride 16 (:func:`dilate`), with a stride-4 skip.

The decoder is taken from the smp model of the same encoder architecture (``tu-NAME``, built
without weights), so its channels match the encoder's maps whatever smp's version; the
random encoder it came with is dropped.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from graft.errors import ConfigError
from graft.tasks.segmentation.options import ARCHITECTURES

#: The output stride each architecture needs of its encoder (DeepLabV3+ dilates the last stage).
OUTPUT_STRIDES = {"unet": 32, "fpn": 32, "deeplabv3plus": 16}
#: Encoder strides smp's decoders read: the input (1), then 2 to 32.
SMP_DEPTH = 5


class SegmenterHead(nn.Module):
    """An smp decoder and segmentation head reading a graft backbone's feature maps.

    ``forward(maps)`` takes the backbone's maps (an ordered dict or list, finest first, at the
    strides of ``reductions``) and returns logits ``[n, classes, H, W]`` at the input's size
    (the finest map's size times its stride).

    Attributes:
        architecture: ``unet``, ``fpn`` or ``deeplabv3plus``.
        encoder_channels: the channels smp's decoder expects of each feature, input first (0
            for a stride the backbone lacks, as smp marks it).
        reductions: the stride of each backbone map.
    """

    def __init__(
        self,
        architecture: str,
        decoder: nn.Module,
        segmentation_head: nn.Module,
        encoder_channels: Sequence[int],
        reductions: Sequence[int],
    ):
        super().__init__()
        self.architecture = architecture
        self.decoder = decoder
        self.segmentation_head = segmentation_head
        self.encoder_channels = [int(c) for c in encoder_channels]
        self.reductions = [int(r) for r in reductions]
        parameters = inspect.signature(decoder.forward).parameters.values()
        self._spread = any(p.kind is p.VAR_POSITIONAL for p in parameters)  # smp < 0.5

    def features(self, maps: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> list:
        """The feature list smp's decoders read: a stand-in for the input (only its size is
        read), empty maps for strides the backbone lacks, then the backbone's maps."""
        maps = list(maps.values()) if isinstance(maps, Mapping) else list(maps)
        finest, stride = maps[0], self.reductions[0]
        batch, height, width = finest.shape[0], finest.shape[2] * stride, finest.shape[3] * stride
        features = [finest.new_zeros((batch, 0, height, width))]
        missing = len(self.encoder_channels) - 1 - len(maps)
        for index in range(missing):
            scale = 2 ** (index + 1)
            features.append(finest.new_zeros((batch, 0, height // scale, width // scale)))
        return features + maps

    def forward(self, maps) -> torch.Tensor:
        features = self.features(maps)
        decoded = self.decoder(*features) if self._spread else self.decoder(features)
        logits = self.segmentation_head(decoded)
        size = features[0].shape[-2:]
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


def build_head(backbone: nn.Module, architecture: str, classes: int) -> SegmenterHead:
    """A new :class:`SegmenterHead` of ``architecture`` for ``classes`` classes on ``backbone``
    (a :class:`~graft.backbones.features_only.FeaturesOnlyBackbone`), initialised as smp
    initialises it (seeded by the caller).

    Raises:
        ConfigError: an unknown architecture, or a backbone smp cannot decode.
    """
    import segmentation_models_pytorch as smp

    if architecture not in ARCHITECTURES:
        raise ConfigError(
            f"--architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}"
        )
    name = timm_architecture(backbone)
    options = {"encoder_depth": SMP_DEPTH}
    if architecture == "deeplabv3plus":
        options["encoder_output_stride"] = OUTPUT_STRIDES[architecture]
    try:
        model = smp.create_model(
            architecture,  # graft's names are smp's
            encoder_name=f"tu-{name}",
            encoder_weights=None,
            classes=classes,
            **options,
        )
    except Exception as error:  # noqa: BLE001  (smp and timm raise many kinds)
        raise ConfigError(
            f"segmentation_models_pytorch cannot build {architecture} on {backbone.spec} "
            f"({type(error).__name__}: {str(error)[:200]})"
        ) from None
    expected = [int(c) for c in model.encoder.out_channels]
    given = [c for c in expected[1:] if c]
    if given != list(backbone.channels):
        raise ConfigError(
            f"{backbone.spec} gives feature maps of {backbone.channels} channels where smp's "
            f"{architecture} decoder reads {given}"
        )
    return SegmenterHead(
        architecture, model.decoder, model.segmentation_head, expected, backbone.reductions
    )


def timm_architecture(backbone: nn.Module) -> str:
    """The timm architecture name under a graft backbone (``tf_efficientnet_lite0`` for
    ``efficientnet_lite0``)."""
    model = getattr(backbone, "model", None)
    config = getattr(model, "pretrained_cfg", None) or {}
    name = config.get("architecture")
    if not name:
        raise ConfigError(
            f"--model {backbone.spec} is not a timm image backbone: semantic segmentation "
            "takes a registered image backbone, timm:NAME, timm:NAME@weights or a timm folder"
        )
    return str(name)


def dilate(backbone: nn.Module, output_stride: int) -> nn.Module:
    """Make ``backbone`` (a features-only view) reach at most ``output_stride``: its timm
    network is rebuilt with timm's ``output_stride`` (the later stages' strides turned into
    dilations) and given the same weights, so the features keep their resolution from that
    stride on. Nothing changes when the backbone already does; returns ``backbone``.

    Raises:
        ConfigError: the architecture cannot be dilated.
    """
    import timm

    if max(backbone.reductions) <= output_stride:
        return backbone
    name = timm_architecture(backbone)
    try:
        model = timm.create_model(
            name, pretrained=False, num_classes=0, output_stride=output_stride
        )
    except Exception as error:  # noqa: BLE001
        raise ConfigError(
            f"{backbone.spec} cannot be dilated to stride {output_stride} for DeepLabV3+ "
            f"({type(error).__name__}): choose --architecture unet or fpn"
        ) from None
    model.prune_intermediate_layers(backbone.levels, prune_head=True, prune_norm=False)
    model.load_state_dict(backbone.model.state_dict(), strict=True)
    model.pretrained_cfg = backbone.model.pretrained_cfg
    model.to(memory_format=torch.channels_last).train(backbone.model.training)
    info = list(model.feature_info)
    backbone.model = model
    backbone.reductions = [int(info[i]["reduction"]) for i in backbone.levels]
    return backbone
