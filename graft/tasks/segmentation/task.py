"""Semantic segmentation: a class for every pixel.

The data are images with masks of class indices (:mod:`graft.tasks.segmentation.read`: a folder of
images beside a folder of masks of the same stems, as index, palette or colour-coded PNGs; or
COCO polygons or RLE rendered to semantic masks), checked file by file; ``--binary-masks``
reads instance masks (Penn-Fudan's ``PedMasks``) or 0/255 masks as background and one
foreground class, and the ignore index (``--ignore-index``, 255) is left out of the loss and
the metrics. A folder of images and masks is claimed by content; COCO annotations are detection
data unless ``--task segmentation`` is asked for.

The model is one of segmentation_models_pytorch's architectures (``--architecture unet``,
``fpn`` or ``deeplabv3plus``: :mod:`graft.tasks.segmentation.decoders`) whose decoder is the
new head on the multi-scale view of graft's backbone (the offline EfficientNet-Lite weights,
any timm model, local weights). The strategies keep their meaning: feature-extract trains
the decoder on the frozen encoder, fine-tune trains the decoder first and then the encoder at
the lower rate, full trains everything at once, partial the top groups. The loss is
cross-entropy, Dice or their sum (``--loss``, :mod:`graft.tasks.segmentation.module`), with
class weights (``--class-weights auto``: median frequency balancing of the training pixels).

Images are seen at a working scale (:mod:`graft.tasks.segmentation.scale`): shorter side
resized to ``--image-size`` pixels (:data:`graft.tasks.segmentation.options.DEFAULTS`), or
kept at their own resolution when the training images are large (slides, scenes) or their
thinnest labelled structures would be under 3 pixels wide once resized (membranes,
vessels). Training takes random crops of ``--image-size`` from rescaled, flipped copies;
prediction runs the whole image, or overlapping tiles of twice the crop blended back when it
is larger (:mod:`graft.tasks.segmentation.tiling`); answers are at each image's own size.

Metrics (:mod:`graft.tasks.segmentation.metrics`): mean IoU (the headline, and the validation
score that keeps each phase's best epoch), per-class IoU and Dice, pixel accuracy, the pixel
confusion matrix, and the images of lowest IoU.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError
from graft.tasks.base import (
    MetricsTable,
    Task,
    check_classes,
    check_companions,
    check_same_classes,
)
from graft.tasks.segmentation import answers as answering
from graft.tasks.segmentation.answers import MaskAnswers
from graft.tasks.segmentation.capabilities import SegmentationCapabilities
from graft.tasks.segmentation.inference import TiledInference, black
from graft.tasks.segmentation.options import DEFAULTS, SegmentationOptions
from graft.tasks.segmentation.scale import working_scale
from graft.tasks.segmentation.splits import read_fit_splits, read_like

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits
    from graft.tasks.segmentation.batches import Scale
    from graft.tasks.segmentation.read import SegmentationData

log = logging.getLogger("graft")

#: Epochs without a better validation mean IoU before a phase stops (the generic backbone
#: phases stop after 2; on Penn-Fudan's 50 validation images the mean IoU dips by 0.03 and
#: recovers, see bench/RESULTS.md).
PATIENCE = 3


class SegmentationTask(SegmentationCapabilities, MaskAnswers, TiledInference, Task):
    """A class for every pixel (see the module docstring).

    Attributes:
        classes: the class names, in the order of the mask values (background first for
            binary and COCO data).
        architecture, loss_kind: ``--architecture`` and ``--loss``.
        scale: crops, working scale, tiles and the ignore index.
        binary: the masks were read with ``--binary-masks``.
        colors: the classes' colours when the masks were coded by colour (else None: VOC's).
        class_pixels: pixels of each class in the training masks.
    """

    kind = "segmentation"
    headline = "mean_iou"
    split_kind = "random split of images"
    formats = "a folder of images beside a folder of masks (segmentation)"

    def __init__(
        self,
        classes: list[str],
        architecture: str,
        loss_kind: str,
        scale: Scale,
        binary: bool = False,
        colors: list | None = None,
        class_pixels: list[int] | None = None,
    ):
        self._classes = list(classes)
        self.architecture = architecture
        self.loss_kind = loss_kind
        self.scale = scale
        self.binary = binary
        self.colors = [tuple(c) for c in colors] if colors else None
        self.class_pixels = list(class_pixels or [])
        self._fill: list[float] | None = None

    @property
    def ignore_index(self) -> int:
        return self.scale.ignore_index

    # Labels ------------------------------------------------------------------------------------

    @classmethod
    def claims(cls, data: Any) -> bool:
        """A folder of images beside a folder of masks (or splits of them), or segmentation
        data in memory."""
        from graft.tasks.segmentation.read import SegmentationData, find_pair, find_split_pairs

        if isinstance(data, SegmentationData):
            return True
        if not isinstance(data, str | os.PathLike) or not Path(data).is_dir():
            return False
        path = Path(data)
        return find_pair(path) is not None or bool(find_split_pairs(path))

    @classmethod
    def near_miss(cls, data: Any) -> str | None:
        from graft.tasks.segmentation.read import near_miss

        return near_miss(data)

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """The training data (and its validation and test splits when the layout has them),
        and ``val``/``test`` read with the training data's classes."""
        return read_fit_splits(data, val, test, columns, SegmentationOptions.of(config))

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        for message, bad in refusals(config, cls.kind).items():
            if bad:
                raise ConfigError(message)

    def defaults(self, config: FitConfig) -> FitConfig:
        """Segmentation's own defaults (:data:`~graft.tasks.segmentation.options.DEFAULTS`)
        for the options left at None."""
        return config.with_defaults(DEFAULTS, self.kind)

    def plan(self, phases: list) -> list:
        """Every phase keeps its epoch of best validation mean IoU, and waits at least
        :data:`PATIENCE` epochs for a better one (the mean IoU of a few dozen images is noisy)."""
        return [
            dataclasses.replace(phase, monitor="val_score", patience=max(phase.patience, PATIENCE))
            for phase in phases
        ]

    @classmethod
    def split(cls, data: SegmentationData, val_fraction: float, seed: int):
        from graft.data import random_split

        return random_split(data, val_fraction, seed)

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        check_companions(splits)
        check_same_classes(splits)
        return splits

    @classmethod
    def from_training_data(cls, train: SegmentationData, config: FitConfig) -> SegmentationTask:
        from graft.tasks.segmentation.batches import class_pixels

        options = SegmentationOptions.of(config)
        crop = config.image_size or DEFAULTS["image_size"]
        scale = working_scale(train, crop, train.ignore_index, config.seed)
        return cls(
            list(train.classes),
            options.architecture,
            options.loss,
            scale,
            binary=train.binary,
            colors=train.colors,
            class_pixels=class_pixels(train, seed=config.seed).tolist(),
        )

    def announce(self) -> str:
        short = self.scale.short_side
        seen = f"shorter side {short}" if short else "their own resolution"
        return (
            f"task: {self.kind} ({self.architecture}, {len(self.classes)} classes; images at "
            f"{seen}, crops of {self.scale.crop}, tiles of {self.scale.tile})"
        )

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> SegmentationData:
        """Images and masks to evaluate on, read with this model's classes."""
        from graft.tasks.segmentation.read import SegmentationData

        if not isinstance(data, SegmentationData):
            data = read_like(data, self)
        check_classes(data, self.classes)
        return data

    def relabel(self, data: Any) -> Any:
        return data

    # Training ----------------------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        return self._classes

    @classmethod
    def build_backbone(cls, config: FitConfig, data: Any) -> Any:
        """The multi-scale view of ``--model``, told the crop size it trains at (dilated to
        stride 16 for DeepLabV3+)."""
        from graft.tasks.segmentation.decoders import OUTPUT_STRIDES, dilate

        backbone = cls.restore_backbone(config.model, pretrained=True)
        size = config.image_size or DEFAULTS["image_size"]
        backbone.preprocessing = dataclasses.replace(
            backbone.preprocessing, input_size=(size, size)
        )
        return dilate(backbone, OUTPUT_STRIDES.get(SegmentationOptions.of(config).architecture, 32))

    @classmethod
    def restore_backbone(cls, spec: str, pretrained: bool) -> Any:
        from graft.backbones.features_only import features_only

        backbone = features_only(spec, pretrained)
        if backbone.modality != "image":
            raise ConfigError(
                f"--model {spec} reads {backbone.modality}; segmentation reads images"
            )
        return backbone

    def new_head(self, backbone: Any, dropout: float = 0.0):
        """The decoder and segmentation head of :attr:`architecture` (seeded by the caller);
        DeepLabV3+ dilates a restored encoder first (its weights stay)."""
        from graft.tasks.segmentation.decoders import OUTPUT_STRIDES, build_head, dilate

        dilate(backbone, OUTPUT_STRIDES[self.architecture])
        self._fill = black(backbone.preprocessing)  # how an exported model's tiles are padded
        return build_head(backbone, self.architecture, len(self.classes))

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        from graft.tasks.segmentation.module import segmentation_loss

        return segmentation_loss(outputs, targets, self.loss_kind, self.ignore_index, class_weights)

    def score_metric(self):
        from graft.tasks.segmentation.metrics import MeanIoU

        return MeanIoU(len(self.classes), self.ignore_index)

    def training_module(self, head, phase, backbone, **options: Any):
        from graft.tasks.segmentation.module import SegmentationModule

        return SegmentationModule(
            head,
            phase,
            backbone,
            label_smoothing=0.0,
            weight_decay=options.get("weight_decay", 0.01),
            class_weights=options.get("class_weights"),
            task=self,
        )

    # Batches -----------------------------------------------------------------------------------

    def items_of(self, data: SegmentationData) -> list[str]:
        return list(data.images)

    def read_inputs(self, inputs: list, modality: str, column: str | None = None) -> list:
        """Image files and folders to predict; a folder of images and masks, or a COCO file,
        gives its images."""
        from graft.data import load_inputs

        items: list[str] = []
        for value in inputs:
            found = dataset_images(value)
            items += found if found is not None else load_inputs([value], "image", column=column)
        return items

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        """Images to predict (a list of paths), or images with masks: random crops for
        training (``augment``: :data:`graft.tasks.segmentation.batches.SCALES`), whole images
        at the working scale for validation."""
        from graft.tasks.segmentation import batches as batches

        mean, std = preprocessing.mean, preprocessing.std
        if isinstance(data, list):
            return batches.Images(data, batches.image_transform(self.scale, mean, std))
        if train:
            transform = batches.train_transform(self.scale, mean, std, augment)
        else:
            transform = batches.eval_transform(self.scale, mean, std)
        return batches.MaskedImages(data, transform)

    def collate(self, preprocessing: Any):
        from graft.tasks.segmentation.batches import SegmentationCollate

        return SegmentationCollate(self.ignore_index)

    # Answers -----------------------------------------------------------------------------------

    # Metrics -----------------------------------------------------------------------------------

    def metrics(self, outputs: list, data: SegmentationData) -> dict:
        from graft.tasks.segmentation.metrics import segmentation_metrics

        truth = (data.load_mask(i) for i in range(len(data)))
        return segmentation_metrics(
            answering.masks_of(outputs),
            truth,
            self.classes,
            data.images,
            self.ignore_index,
            self.colors,
        )

    def describe(self) -> str:
        return f"{len(self.classes)} classes, {self.architecture}"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        return answering.metrics_tables(metrics, classes, title)

    # Record ------------------------------------------------------------------------------------

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "architecture": self.architecture,
            "loss": self.loss_kind,
            **self.scale.to_dict(),
            "binary": self.binary,
            "colors": [list(c) for c in self.colors] if self.colors else None,
            "class_pixels": self.class_pixels,
        }

    def export_record(self) -> dict:
        return self.record()

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> SegmentationTask:
        from graft.tasks.segmentation.batches import Scale

        keys = ("crop", "short_side", "tile", "overlap", "ignore_index")
        scale = Scale(**{key: record[key] for key in keys})
        options = {k: record.get(k) for k in ("binary", "colors", "class_pixels")}
        return cls(list(labels), record["architecture"], record["loss"], scale, **options)

    def summary(self, splits: DataSplits) -> dict:
        return {"class_pixels": dict(zip(self.classes, self.class_pixels, strict=False))}

    def data_summary(self, splits: DataSplits, backbone: Any) -> dict:
        """Images per split, the training pixels of each class, the images skipped."""
        return data_summary(splits, self.kind, self.summary(splits)["class_pixels"])


def dataset_images(value: Any) -> list[str] | None:
    """The images of a folder of images and masks, or of a COCO file (None for anything
    else)."""
    if not isinstance(value, str | os.PathLike):
        return None
    path = Path(value).expanduser()
    if path.is_file() and path.suffix.lower() == ".json":
        from graft.data.annotations.coco import read_coco

        return list(read_coco(path).images)
    if path.is_dir():
        from graft.tasks.segmentation.read import find_pair, find_split_pairs, match_masks

        pairs = [p] if (p := find_pair(path)) else list(find_split_pairs(path).values())
        if pairs:
            return [str(image) for folder in pairs for image, _ in match_masks(*folder)[0]]
    return None


def refusals(config: FitConfig, kind: str) -> dict[str, bool]:
    """The options segmentation refuses, each message with whether ``config`` gives it (its
    own options' values are checked by :class:`SegmentationOptions`)."""
    architecture = SegmentationOptions.of(config).architecture
    return {
        "--strategy auto measures pooled features of class labels; choose a strategy "
        "(fine-tune by default)": config.strategy == "auto",
        "--sampler balanced draws classes of whole images; segmentation weighs pixels: "
        "use --class-weights auto": config.sampler == "balanced",
        "--views caches pooled features of augmented views; segmentation trains on images": (
            config.views > 1
        ),
        f"--adapt {config.adapt} aligns pooled features; not with {kind}": (config.adapt != "none"),
        "--image-size must be a multiple of 32 (at least 64) for segmentation: encoders "
        "halve it five times": config.image_size is not None
        and (config.image_size % 32 or config.image_size < 64),
        "--strategy lora with --architecture deeplabv3plus: the dilated encoder is rebuilt "
        "after the adapters would be injected; choose another": (
            config.strategy == "lora" and architecture == "deeplabv3plus"
        ),
    }


def data_summary(splits: DataSplits, kind: str, pixels: dict[str, int]) -> dict:
    """The data part of a segmentation fit's summary: images per split, the training pixels
    of each class, and the images skipped while reading."""
    parts = splits.parts()
    skipped = {n: p.skipped for n, p in parts.items() if p.skipped}
    return {
        "modality": "image",
        "task": kind,
        "examples": {n: len(p) for n, p in parts.items()},
        "class_counts": {"train": pixels},
        "skipped": {n: [{"input": w, "reason": r} for w, r in s] for n, s in skipped.items()},
        "skipped_count": sum(len(s) for s in skipped.values()),
    }
