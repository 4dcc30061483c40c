"""A multi-scale view of graft's image backbones, for the dense tasks (detection, segmentation).

timm's ``features_only`` interface gives the feature maps of a network at several strides (the
ends of its stages, ``feature_info``). :class:`FeaturesOnlyBackbone` takes that view of a timm
backbone built by graft (:func:`graft.backbones.registry.create_backbone`: a registered name
such as the offline ``efficientnet_lite0``, any ``timm:NAME``, ``timm:NAME@weights``, a local
folder, a ``graft pretrain`` run, or ``scratch:SPEC``) rather than loading it a second way: the
same weights, the same preprocessing, the same fingerprint rules. The layers after the last
level kept (a classifier's head convolution and pooling) are pruned.

It answers the :class:`~graft.backbones.base.Backbone` protocol: :meth:`parameter_groups` from
input to output (timm's stage groups, so ``partial``, ``gradual``, ``fine-tune`` and
``--layer-decay`` mean what they mean for classification), and :meth:`forward` returns an
ordered dict of feature maps ``{"0": stride-8 map, "1": ..., }`` as torchvision's FPN and
segmentation decoders take them. BatchNorm layers stay in eval mode while training unless the
phase asks otherwise (:class:`graft.training.module.TransferModule`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from timm.models import group_parameters
from torch import nn

from graft.backbones.base import Backbone
from graft.backbones.lora import known_targets
from graft.errors import ConfigError

#: Layers LoRA adapts by default (as for timm backbones).
LORA_TARGETS = (("attn.qkv", "attn.proj"), ("conv_pw", "conv_pwl"))


class FeaturesOnlyBackbone(Backbone):
    """The feature maps of a timm backbone at the strides in ``reductions`` (see the module).

    Attributes:
        model: the timm model, pruned after its last kept level (same parameter names as the
            classification backbone's ``model``).
        levels: indices into the model's ``feature_info`` of the maps returned.
        channels: channels of each returned map; reductions: its stride (input / map size).
        feature_dim: channels of the last (coarsest) map.
    """

    def __init__(self, base: Backbone, levels: Sequence[int] | None = None):
        super().__init__()
        model = getattr(base, "model", None)
        info = getattr(model, "feature_info", None)
        if info is None or not hasattr(model, "forward_intermediates"):
            raise ConfigError(
                f"--model {base.spec} gives no multi-scale feature maps (a timm image "
                "backbone with feature_info does): choose a timm or registered image backbone"
            )
        info = list(info)
        count = len(info)
        levels = sorted({i % count for i in (levels if levels is not None else range(count))})
        model.prune_intermediate_layers(levels, prune_head=True, prune_norm=False)
        self.model = model
        self.spec = base.spec
        self.preprocessing = base.preprocessing
        self.adapter = base.adapter
        self.levels = list(levels)
        self.channels = [int(info[i]["num_chs"]) for i in self.levels]
        self.reductions = [int(info[i]["reduction"]) for i in self.levels]
        self.feature_dim = self.channels[-1]

    def forward(self, pixels: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Feature maps ``{"0": [n, channels[0], h/r0, w/r0], ...}``, finest first."""
        maps = self.model.forward_intermediates(
            pixels.contiguous(memory_format=torch.channels_last),
            indices=self.levels,
            intermediates_only=True,
        )
        return OrderedDict((str(i), m) for i, m in enumerate(maps))

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """timm's coarse stage groups (stem, each stage), from input to output; groups the
        pruning emptied are left out."""
        params = dict(self.model.named_parameters())
        try:
            grouped = group_parameters(self.model, self.model.group_matcher(coarse=True))
        except (AttributeError, NotImplementedError):
            return [list(params.values())]
        ordered = [grouped[key] for key in sorted(grouped)]
        return [[params[n] for n in names if n in params] for names in ordered if names]

    def lora_targets(self) -> list[str]:
        return known_targets(self.model, LORA_TARGETS) or super().lora_targets()


def features_only(
    spec: str, pretrained: bool = True, levels: Sequence[int] | None = None
) -> FeaturesOnlyBackbone:
    """The multi-scale view of the backbone ``spec`` names (any model string
    :func:`~graft.backbones.registry.create_backbone` takes); ``levels``: indices into its
    ``feature_info`` (negative ones count from the coarsest; None: all)."""
    from graft.backbones.registry import create_backbone

    return FeaturesOnlyBackbone(create_backbone(spec, pretrained=pretrained), levels).eval()
