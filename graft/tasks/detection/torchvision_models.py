"""torchvision's complete pretrained detectors (``--model torchvision:NAME``) as a graft backbone.

``torchvision:fasterrcnn_resnet50_fpn_v2`` (and the other FPN detectors of
``torchvision.models.detection``: Faster R-CNN, Mask R-CNN, RetinaNet, FCOS) is split where graft
splits every model: the convolutional body is the :class:`~graft.backbones.base.Backbone` (its
stages are the parameter groups strategies train from the top), and the rest, pretrained too
(feature pyramid, proposal network, box and mask heads), is handed to the detection head
(:func:`graft.tasks.detection.detectors.build_head`) as
:attr:`TorchvisionDetectorBackbone.detector_parts`, whose
class layers are then replaced for the new classes.

The COCO weights come from the network (torchvision's download, cached under ``$TORCH_HOME``)
or from a local file: ``torchvision:NAME@/path/to/weights.pth`` (the file torchvision
downloads, or a checkpoint holding its ``model`` state dict). Offline without a file, building
fails with a message that names the file to fetch. ``pretrained=False`` builds the architecture
with random weights (restoring a fine-tuned run, or ``scratch:torchvision:NAME``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from graft.backbones.base import Backbone, ImagePreprocessing
from graft.errors import ModelUnavailableError

PREFIX = "torchvision:"
#: The torchvision detectors this adapter splits (FPN detectors; SSD and keypoints are not).
NAMES = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
)


def is_torchvision_spec(spec: str) -> bool:
    return spec.startswith(PREFIX)


def family(name: str) -> str:
    """``fasterrcnn``, ``maskrcnn``, ``retinanet`` or ``fcos``: the kind of detector ``name``
    builds (the part before its first underscore)."""
    return name.split("_", 1)[0]


class TorchvisionDetectorBackbone(Backbone):
    """The body of a torchvision detector (see the module docstring).

    Attributes:
        body: torchvision's ``IntermediateLayerGetter`` over the detector's backbone network.
        detector_parts: the detector with a :class:`graft.tasks.detection.detectors.Neck` (its
        pretrained
            pyramid) in place of its backbone; not a submodule (the head copies it).
        name: the torchvision model name; channels: channels of each map the body returns.
    """

    def __init__(self, detector: nn.Module, name: str, spec: str):
        from graft.tasks.detection.detectors import Neck

        super().__init__()
        self.body = detector.backbone.body
        self.name, self.spec = name, spec
        neck = Neck(detector.backbone.fpn, detector.backbone.out_channels)
        detector.backbone = neck
        object.__setattr__(self, "detector_parts", detector)
        transform = detector.transform
        self.preprocessing = ImagePreprocessing(
            input_size=(int(transform.min_size[-1]), int(transform.max_size)),
            mean=tuple(float(v) for v in transform.image_mean),
            std=tuple(float(v) for v in transform.image_std),
            interpolation="bilinear",
            crop_pct=1.0,
        )
        inner = detector.backbone.fpn.inner_blocks
        self.channels = [int(block[0].in_channels) for block in inner]
        self.feature_dim = detector.backbone.out_channels

    def forward(self, pixels: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.body(pixels)

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The body's top-level stages in order (stem layers, then each stage)."""
        groups = [list(child.parameters()) for child in self.body.children()]
        return [group for group in groups if group]


def create_torchvision_detector(spec: str, pretrained: bool = True) -> TorchvisionDetectorBackbone:
    """The backbone of ``torchvision:NAME[@file]`` (see the module docstring).

    Raises:
        ModelUnavailableError: an unknown name, a missing or unreadable weights file, or no
            network to download the weights from (the message says which file to fetch).
    """
    from torchvision.models import get_model_builder, get_model_weights

    name, _, file = spec.removeprefix(PREFIX).partition("@")
    if name not in NAMES:
        raise ModelUnavailableError(
            f"--model {spec}: torchvision:NAME takes one of {', '.join(NAMES)}"
        )
    weights = get_model_weights(name).DEFAULT
    classes = len(weights.meta["categories"])
    builder = get_model_builder(name)
    detector = builder(weights=None, weights_backbone=None, num_classes=classes)
    if pretrained:
        state = _local_state(Path(file), spec) if file else _downloaded_state(weights, spec)
        _load(detector, state, spec)
    return TorchvisionDetectorBackbone(detector.eval(), name, spec)


def _downloaded_state(weights, spec: str) -> dict:
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # network errors come in many types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        name = spec.removeprefix(PREFIX)
        raise ModelUnavailableError(
            f"could not download the COCO weights of {spec} from {weights.url} (is the network "
            f"reachable?): {reason}. Fetch that file where there is a network and pass "
            f"--model {PREFIX}{name}@/path/to/{Path(weights.url).name} (or put it in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'})"
        ) from None


def _local_state(path: Path, spec: str) -> dict:
    if not path.expanduser().is_file():
        raise ModelUnavailableError(f"--model {spec}: the weights file {path} does not exist")
    try:
        state = torch.load(path.expanduser(), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (pickle, zip and format errors)
        raise ModelUnavailableError(
            f"--model {spec}: {path} is not a weights file ({error})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a checkpoint of torchvision's reference scripts
    if not isinstance(state, dict):
        raise ModelUnavailableError(f"--model {spec}: {path} holds no state dict")
    return state


def _load(detector: nn.Module, state: dict, spec: str) -> None:
    """Load ``state`` (torchvision's frozen BatchNorm has no ``num_batches_tracked``)."""
    try:
        result = detector.load_state_dict(state, strict=False)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise ModelUnavailableError(f"--model {spec}: the weights do not fit ({first})") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        shown = ", ".join((missing + list(result.unexpected_keys))[:4])
        raise ModelUnavailableError(
            f"--model {spec}: the weights are not those of this architecture ({shown}, ...)"
        )
