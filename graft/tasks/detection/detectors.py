"""The head of a detection fit: torchvision's detectors on a multi-scale graft backbone.

torchvision builds a detector from a *backbone* that returns named feature maps and has
``out_channels``; everything after it (the feature pyramid, the region proposal network and the
box and mask heads of Faster and Mask R-CNN, RetinaNet's or FCOS's dense heads) is what graft
trains as the new *head* on its backbone (:mod:`graft.backbones.features_only`, or the body of
one of torchvision's complete pretrained detectors,
:mod:`graft.tasks.detection.torchvision_models`).

:class:`DetectorHead` holds the detector with a :class:`Neck` in place of its backbone: the
neck's feature pyramid is part of the head (saved and trained with it), while the graft backbone
under it is only referred to, not registered (:meth:`DetectorHead.attach`), so the head's
weights and the backbone's stay apart as the rest of graft keeps them. Labels in and out of the
head are graft's class indices (no background); torchvision's background class 0 stays inside.

Images go in as float tensors in [0, 1]; the detector's transform normalises them with the
backbone's mean and standard deviation and, at inference, resizes them (shorter side
``min_size``, longer at most ``max_size``) and maps the boxes back to the original pixels. In
training the data pipeline has already resized them (multi-scale), so the transform does not.
Its resize (:class:`ExportableTransform`) gives the same pixels in PyTorch and in the exported
ONNX graph.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

#: Channels of the feature pyramid built on a graft backbone: a light pyramid suits the
#: light backbones graft ships (efficientnet_lite0's coarsest map has 320 channels).
FPN_CHANNELS = 128
#: Proposals an R-CNN's box head samples per training image (torchvision: 512). Detectron2's
#: own tutorial takes 128 for small datasets; on the CPU a training step of 4 Penn-Fudan
#: images at 256 px took 0.8 s instead of 2.05 s (most of it the box head and its RoIAlign
#: backward), the same 1.65 s at 512 px with a frozen backbone.
ROI_SAMPLES = 128
#: Proposals an R-CNN keeps after non-maximum suppression at inference (torchvision: 1000;
#: the Faster R-CNN paper tested with 300): the box head's cost at inference, 0.45 s instead
#: of 1.05 s for 4 images at 256 px.
TEST_PROPOSALS = 300


@dataclass(frozen=True)
class DetectorSettings:
    """What a detection head is built from (recorded with the task).

    Attributes:
        detector: ``fasterrcnn``, ``retinanet`` or ``fcos``.
        classes: how many classes (without background).
        masks: a mask branch too (Mask R-CNN; ``fasterrcnn`` only).
        min_size, max_size: inference resize: shorter side, and the most the longer may be.
        mean, std: the backbone's normalisation of [0, 1] pixels.
    """

    detector: str
    classes: int
    masks: bool
    min_size: int
    max_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


class Neck(nn.Module):
    """The feature pyramid on a backbone the neck refers to without owning it: what the
    torchvision detector sees as its backbone."""

    def __init__(self, fpn: nn.Module, out_channels: int):
        super().__init__()
        self.fpn = fpn
        self.out_channels = out_channels
        object.__setattr__(self, "body", None)  # not a submodule: see DetectorHead.attach

    def forward(self, pixels: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        if self.body is None:
            raise RuntimeError("the detection head has no backbone attached (attach() first)")
        return self.fpn(self.body(pixels))


class DetectorHead(nn.Module):
    """A torchvision detector whose backbone is a :class:`Neck` on a graft backbone.

    ``forward(images, targets)`` returns the detector's losses in training mode and, in eval
    mode, one dict per image (``boxes`` xyxy in the image's pixels, ``labels``, ``scores`` and
    for Mask R-CNN ``masks`` ``[n, 1, H, W]`` probabilities), labels indexing graft's classes.
    """

    def __init__(self, detector: nn.Module, settings: DetectorSettings):
        super().__init__()
        self.detector = detector
        self.settings = settings

    def attach(self, backbone: nn.Module) -> DetectorHead:
        """Run on ``backbone`` (kept as a reference: it is trained and saved as the backbone)."""
        object.__setattr__(self.detector.backbone, "body", backbone)
        return self

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        if targets is not None:
            targets = [{**t, "labels": t["labels"] + 1} for t in targets]
        out = self.detector(images, targets)
        if self.training:
            return out
        return [{**found, "labels": found["labels"] - 1} for found in out]


def fpn_neck(channels: list[int], detector: str) -> Neck:
    """A feature pyramid over maps of ``channels``: with a max-pooled extra level (R-CNN), or
    P6 and P7 (RetinaNet, FCOS)."""
    extra = (
        LastLevelMaxPool()
        if detector == "fasterrcnn"
        else LastLevelP6P7(FPN_CHANNELS, FPN_CHANNELS)
    )
    return Neck(FeaturePyramidNetwork(channels, FPN_CHANNELS, extra_blocks=extra), FPN_CHANNELS)


def anchors(reductions: list[int], detector: str) -> AnchorGenerator:
    """Anchors of side four strides at each pyramid level (three aspect ratios; RetinaNet three
    scales an octave apart too; FCOS one point of the stride's size)."""
    strides = [*reductions, reductions[-1] * 2]
    if detector != "fasterrcnn":
        strides.append(reductions[-1] * 4)
    if detector == "fcos":
        return AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))
    scales = (1.0,) if detector == "fasterrcnn" else (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
    sizes = tuple(tuple(round(4 * s * k) for k in scales) for s in strides)
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(strides))


def new_detector(channels: list[int], reductions: list[int], settings: DetectorSettings):
    """A torchvision detector with random weights on maps of ``channels`` at ``reductions``."""
    neck = fpn_neck(channels, settings.detector)
    generator = anchors(reductions, settings.detector)
    classes = settings.classes + 1  # torchvision's background
    names = [str(i) for i in range(len(channels))]
    if settings.detector == "retinanet":
        return RetinaNet(neck, classes, anchor_generator=generator)
    if settings.detector == "fcos":
        return FCOS(neck, classes, anchor_generator=generator)
    options = dict(
        rpn_anchor_generator=generator,
        box_roi_pool=MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2),
    )
    if settings.masks:
        pool = MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2)
        return MaskRCNN(neck, classes, mask_roi_pool=pool, **options)
    return FasterRCNN(neck, classes, **options)


def build_head(backbone: Any, settings: DetectorSettings) -> DetectorHead:
    """The detection head of ``settings`` on ``backbone``: the pretrained neck and heads of a
    complete torchvision detector (its class layers replaced), or new ones."""
    parts = getattr(backbone, "detector_parts", None)
    if parts is not None:
        detector = reclassed(copy.deepcopy(parts), settings)
    else:
        detector = new_detector(backbone.channels, backbone.reductions, settings)
    if hasattr(detector, "roi_heads"):  # Faster and Mask R-CNN: see ROI_SAMPLES
        detector.roi_heads.fg_bg_sampler.batch_size_per_image = ROI_SAMPLES
        detector.rpn._post_nms_top_n["testing"] = TEST_PROPOSALS
    detector.transform = ExportableTransform(
        settings.min_size,
        settings.max_size,
        list(settings.mean),
        list(settings.std),
        _skip_resize=True,  # training images come resized (multi-scale) by the data pipeline
    )
    return DetectorHead(detector, settings).attach(backbone)


class ExportableTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform with a resize that ONNX Runtime repeats exactly.

    torchvision's resized size is ``floor(side * scale)``: in double precision in PyTorch,
    in float32 in the exported graph, where a shorter side that should come out at exactly
    ``min_size`` can come out a pixel short (a 544 x 425 photo at 160 gave 159 rows in ONNX
    Runtime, 160 in PyTorch, and other detections). Here the float32 scale is raised by
    :data:`SCALE_NUDGE` (relative) in both, so that both floors agree.
    """

    def resize(self, image: torch.Tensor, target: dict | None = None):
        if self.training and self._skip_resize:
            return image, target
        size = self.torch_choice(self.min_size) if self.training else self.min_size[-1]
        height, width = image.shape[-2:]
        scale = resize_scale(image, size, self.max_size)
        image = nn.functional.interpolate(
            image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True
        )[0]
        if target is None:
            return image, target
        target["boxes"] = resize_boxes(target["boxes"], (height, width), image.shape[-2:])
        if "masks" in target:
            masks = target["masks"][:, None].float()
            target["masks"] = nn.functional.interpolate(
                masks, size=image.shape[-2:], mode="nearest"
            )[:, 0].byte()
        return image, target


#: How much the resize scale is raised (relative): far above float32's rounding of a side
#: times the scale (about 1e-7), far below a pixel.
SCALE_NUDGE = 1e-5


def resize_scale(image: torch.Tensor, min_size: int, max_size: int) -> Any:
    """The factor that brings ``image``'s shorter side to ``min_size`` and its longer to at
    most ``max_size`` (float32, raised by :data:`SCALE_NUDGE`; a traced value when exporting,
    so that the graph takes images of any size)."""
    import torchvision
    from torchvision.models.detection.transform import _fake_cast_onnx, _get_shape_onnx

    tracing = torchvision._is_tracing()
    shape = _get_shape_onnx(image) if tracing else torch.tensor(image.shape[-2:])
    shape = shape.to(torch.float32)
    scale = torch.min(min_size / shape.min(), max_size / shape.max()) * (1 + SCALE_NUDGE)
    return _fake_cast_onnx(scale) if tracing else float(scale)


def reclassed(detector: nn.Module, settings: DetectorSettings) -> nn.Module:
    """A pretrained torchvision detector with new class layers for ``settings.classes``; a
    Mask R-CNN's mask branch is dropped when no masks are asked for."""
    classes = settings.classes + 1
    roi_heads = getattr(detector, "roi_heads", None)
    if roi_heads is not None:
        box = roi_heads.box_predictor
        roi_heads.box_predictor = FastRCNNPredictor(box.cls_score.in_features, classes)
        if roi_heads.mask_predictor is not None and settings.masks:
            mask = roi_heads.mask_predictor
            dim = mask.conv5_mask.out_channels
            roi_heads.mask_predictor = MaskRCNNPredictor(mask.conv5_mask.in_channels, dim, classes)
        elif not settings.masks:
            roi_heads.mask_roi_pool = roi_heads.mask_head = roi_heads.mask_predictor = None
        return detector
    head = detector.head.classification_head
    old = head.cls_logits
    anchors_per_place = old.out_channels // head.num_classes
    head.cls_logits = nn.Conv2d(old.in_channels, anchors_per_place * classes, 3, padding=1)
    nn.init.normal_(head.cls_logits.weight, std=0.01)
    nn.init.constant_(head.cls_logits.bias, -math.log((1 - 0.01) / 0.01))
    head.num_classes = classes
    return detector
