"""The image sizes of a detection model and the backbone a detection model string names: the
multi-scale view of a graft image backbone, or a torchvision detector's body."""

from __future__ import annotations

import dataclasses
from typing import Any

#: The feature maps a graft backbone gives the feature pyramid: its last three levels
#: (strides 8, 16 and 32 for EfficientNet and ResNet).
LEVELS = (-3, -2, -1)
#: The shorter image side at inference when ``--image-size`` is not given, and the longer
#: side's limit as a multiple of it (torchvision's 800 and 1333).
MIN_SIZE = 512
MAX_SIDE_RATIO = 1333 / 800
#: Multi-scale training draws the shorter side from this range around the inference size.
TRAIN_SCALES = (0.8, 1.2)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The image sizes of a detection model: inference shorter side and longer-side limit,
    and the shorter sides multi-scale training draws from."""

    min_size: int
    max_size: int
    train_sizes: tuple[int, ...]

    @classmethod
    def around(cls, min_size: int) -> Sizes:
        low, high = (round(min_size * s / 32) * 32 for s in TRAIN_SCALES)
        train = tuple(range(max(32, low), high + 1, 32))
        return cls(min_size, round(min_size * MAX_SIDE_RATIO), train or (min_size,))


def detection_backbone(spec: str, pretrained: bool = True) -> Any:
    """The backbone of a detection model string: a torchvision detector's body
    (``torchvision:NAME``), or the multi-scale view of any graft image backbone; ``scratch:``
    either of them with seeded random weights."""
    import torch

    from graft.backbones.features_only import features_only
    from graft.backbones.registry import SCRATCH_PREFIX, SCRATCH_SEED
    from graft.tasks.detection.torchvision_models import (
        create_torchvision_detector,
        is_torchvision_spec,
    )

    inner = spec.removeprefix(SCRATCH_PREFIX)
    if not is_torchvision_spec(inner):
        return features_only(spec, pretrained, LEVELS)
    if inner == spec:
        return create_torchvision_detector(spec, pretrained)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SCRATCH_SEED)
        backbone = create_torchvision_detector(inner, pretrained=False)
    backbone.spec = spec
    return backbone
