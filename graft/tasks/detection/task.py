"""Object detection and instance segmentation: boxes (and masks) of every object in an image.

The data are COCO JSON, Pascal VOC or YOLO annotations (:mod:`graft.tasks.detection`: checked,
clipped and counted), split by image when no validation data is given. The model is one of
torchvision's detectors (Faster R-CNN with a feature pyramid by default, ``--detector
retinanet`` or ``fcos``; Mask R-CNN for ``--task instance-segmentation``) whose neck and heads
are the new head (:mod:`graft.tasks.detection.detectors`) on a multi-scale view of graft's backbone
(:mod:`graft.backbones.features_only`: the offline EfficientNet-Lite weights, any timm
backbone, local weights), or the pretrained neck and heads of one of torchvision's complete
detectors (``--model torchvision:fasterrcnn_resnet50_fpn_v2``). The strategies keep their
meaning: feature-extract trains neck and heads on the frozen backbone, fine-tune trains them
first and then the backbone at a lower rate, full trains everything, partial the top groups;
BatchNorm stays frozen in the backbone. Training batches images of alike aspect ratio, with
flips, multi-scale resizing and photometric changes that move boxes and masks with the pixels.

Metrics are COCO's (torchmetrics' ``MeanAveragePrecision`` on pycocotools): mAP@[.5:.95] (the
headline and the validation score that keeps the best epoch), mAP@.5, mAP@.75, by object size,
recall, and per class; instance segmentation adds the mask mAP (its headline). Predictions are
boxes in the original image's pixels with a class and a score (and a mask as COCO RLE).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from graft.errors import ConfigError
from graft.tasks.base import MetricsTable, Task, check_classes
from graft.tasks.detection import data as parts
from graft.tasks.detection.capabilities import DetectionCapabilities
from graft.tasks.detection.options import DEFAULTS, DetectionOptions
from graft.tasks.detection.sizes import MIN_SIZE, Sizes, detection_backbone

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits
    from graft.tasks.detection import DetectionData
    from graft.training.phase import Phase

log = logging.getLogger("graft")

#: The score from which a detection is an answer (``graft predict``, ``graft serve``).
SCORE_THRESHOLD = 0.5


class DetectionTask(DetectionCapabilities, Task):
    """Boxes of the objects of each image (see the module docstring).

    Attributes:
        classes: the class names (labels index them; no background class).
        detector: ``fasterrcnn``, ``retinanet`` or ``fcos``.
        sizes: the image sizes; score_threshold: what an answer's score must reach.
    """

    kind = "detection"
    headline = "map"
    split_kind = "random split of images"
    formats = "COCO JSON, a VOC folder or a YOLO folder (detection)"
    #: Whether the model also predicts each object's mask (Mask R-CNN).
    masks: ClassVar[bool] = False

    def __init__(
        self,
        classes: list[str],
        detector: str = "fasterrcnn",
        sizes: Sizes | None = None,
        score_threshold: float = SCORE_THRESHOLD,
    ):
        self._classes = list(classes)
        self.detector = detector
        self.sizes = sizes or Sizes.around(MIN_SIZE)
        self.score_threshold = score_threshold

    # Labels ------------------------------------------------------------------------------------

    @classmethod
    def claims(cls, data: Any) -> bool:
        """COCO JSON with boxes, a VOC folder or a YOLO layout (or detection data in memory)."""
        return parts.holds_detection_data(data)

    @classmethod
    def near_miss(cls, data: Any) -> str | None:
        from graft.tasks.detection.read import near_miss

        return near_miss(data)

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """Training data (and its validation and test splits when the layout has them), and
        ``val``/``test`` read with the training data's classes."""
        return parts.read_splits(data, val, test, columns, cls.kind)

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        super().check_options(config)
        parts.check_options(config, cls.kind, cls.masks)

    def defaults(self, config: FitConfig) -> FitConfig:
        """Detection's own defaults (:data:`~graft.tasks.detection.options.DEFAULTS`) for the
        options left at None."""
        return config.with_defaults(DEFAULTS, self.kind)

    def plan(self, phases: list[Phase]) -> list[Phase]:
        """Every phase keeps its epoch of best mAP (a detector has no validation loss), and
        warms its learning rate up over a tenth of its steps (new detection heads are
        unsteady at first, as torchvision's references warm up too)."""
        return [
            dataclasses.replace(
                phase, monitor="val_score", warmup_fraction=max(phase.warmup_fraction, 0.1)
            )
            for phase in phases
        ]

    @classmethod
    def split(cls, data: DetectionData, val_fraction: float, seed: int):
        """A seeded ``val_fraction`` of the images goes to validation with all their objects:
        no image is seen on both sides."""
        from graft.data import random_split

        return random_split(data, val_fraction, seed, unit="images")

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        return parts.check_splits(splits, cls.masks)

    @classmethod
    def from_training_data(cls, train: DetectionData, config: FitConfig) -> DetectionTask:
        from graft.tasks.detection.torchvision_models import family, is_torchvision_spec

        detector = DetectionOptions.of(config).detector
        spec = (config.model or "").removeprefix("scratch:")
        if is_torchvision_spec(spec):
            kind = family(spec.removeprefix("torchvision:"))
            if cls.masks and kind != "maskrcnn":
                raise ConfigError(
                    f"--model {config.model} has no mask head: instance segmentation takes a "
                    "torchvision:maskrcnn_* model (or a graft backbone)"
                )
            detector = "fasterrcnn" if kind == "maskrcnn" else kind
        return cls(list(train.classes), detector, Sizes.around(config.image_size or MIN_SIZE))

    def announce(self) -> str:
        return f"task: {self.kind} ({self.detector}, {len(self.classes)} classes)"

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> DetectionData:
        """Detection data to evaluate on, read with this model's classes."""
        from graft.tasks.detection import DetectionData, read_detection

        if not isinstance(data, DetectionData):
            data = read_detection(data, classes=self.classes)
        check_classes(data, self.classes)
        parts.check_masks(data, self.masks)
        return data

    def relabel(self, data: Any) -> Any:
        return data

    # Training ----------------------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        return self._classes

    @classmethod
    def build_backbone(cls, config: FitConfig, data: Any) -> Any:
        return detection_backbone(config.model, pretrained=True)

    @classmethod
    def restore_backbone(cls, spec: str, pretrained: bool) -> Any:
        return detection_backbone(spec, pretrained)

    def settings(self, backbone: Any):
        """What :func:`graft.tasks.detection.detectors.build_head` builds on ``backbone``."""
        from graft.tasks.detection.detectors import DetectorSettings

        preprocessing = backbone.preprocessing
        return DetectorSettings(
            self.detector,
            len(self.classes),
            self.masks,
            self.sizes.min_size,
            self.sizes.max_size,
            tuple(preprocessing.mean),
            tuple(preprocessing.std),
        )

    def new_head(self, backbone: Any, dropout: float = 0.0):
        from graft.tasks.detection.detectors import build_head

        return build_head(backbone, self.settings(backbone))

    def training_module(self, head, phase, backbone, **options: Any):
        from functools import partial

        from graft.tasks.detection.metrics import map_metric, metric_inputs
        from graft.tasks.detection.module import DetectionModule

        return DetectionModule(
            head,
            phase,
            backbone,
            task=self,
            metric=map_metric(self.masks),
            score_key="segm_map" if self.masks else "map",
            to_metric=partial(metric_inputs, masks=self.masks),
            weight_decay=options.get("weight_decay", 0.01),
        )

    # Batches -----------------------------------------------------------------------------------

    def items_of(self, data: DetectionData) -> list[str]:
        return list(data.images)

    def read_inputs(self, inputs: list, modality: str, column: str | None = None) -> list:
        """Image files and folders, and detection annotations (COCO, VOC, YOLO: their
        images)."""
        from graft.data import load_inputs
        from graft.tasks.detection import read_detection

        items: list[str] = []
        for entry in inputs:
            if Path(entry).is_dir() or Path(entry).suffix.lower() in (".json", ".yaml", ".yml"):
                if parts.holds_detection_data(entry):
                    items += read_detection(entry, classes=self.classes).images
                    continue
            items += load_inputs([entry], "image", column=column)
        return items

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        """Images to predict (a list of paths), or labelled images: resized and augmented
        (``augment``: ``none`` resizes only, ``light`` adds flips, multi-scale resizing and
        photometric changes, ``strong`` also random IoU crops) for training, as they are for
        validation (the detector resizes them and maps its boxes back)."""
        from graft.data.dense_transforms import detection_eval_transform, detection_train_transform
        from graft.tasks.detection.batches import DetectionDataset

        if isinstance(data, list):
            return DetectionDataset(data)
        transform = None
        if train and augment == "none":
            transform = detection_eval_transform(
                min_size=self.sizes.min_size, max_size=self.sizes.max_size
            )
        elif train:
            transform = detection_train_transform(
                min_sizes=self.sizes.train_sizes,
                max_size=self.sizes.max_size,
                crop=augment == "strong",
            )
        return DetectionDataset(data.images, data.targets, transform, self.masks, train=train)

    def collate(self, preprocessing: Any):
        from graft.tasks.detection.batches import collate_detection

        return collate_detection

    def train_batches(
        self, data: DetectionData, batch_size: int, seed: int, distributed: bool, preprocessing: Any
    ):
        """Batches of images of alike aspect ratio, in an order of (seed, epoch) only (across
        processes, Lightning's distributed sampler instead)."""
        if distributed:
            return None
        from graft.tasks.detection.batches import SizeBucketSampler

        return {"batch_sampler": SizeBucketSampler(data.sizes(), batch_size, seed)}

    def infer(self, backbone: Any, head: Any, inputs: Any) -> list[dict]:
        """Each image's detections: boxes in its pixels, labels, scores, masks as RLE. One
        image at a time: a batch pads its images to the largest, which changes the features
        near their edges, so an image's boxes would depend on its batch mates (and differ from
        the exported model's, which takes one image a call)."""
        from graft.tasks.detection.answers import compact

        head.attach(backbone)
        return [compact(head([image])[0]) for image in inputs]

    def join(self, chunks: list) -> list[dict]:
        return [found for chunk in chunks for found in chunk]

    # Answers -----------------------------------------------------------------------------------

    def answers(self, outputs: list[dict]) -> list[list[dict]]:
        """Each image's detections at or above the score threshold, best first: ``label``,
        ``score``, ``box`` (x1, y1, x2, y2 in the original image's pixels) and ``mask``."""
        from graft.tasks.detection.answers import answer_list

        return [answer_list(found, self.classes, self.score_threshold) for found in outputs]

    def prediction_records(self, outputs: list[dict], top_k: int) -> list[dict]:
        return [{"predictions": answer} for answer in self.answers(outputs)]

    def served_answers(self, outputs: list[dict], top_k: int) -> list[dict]:
        return [{"detections": answer} for answer in self.answers(outputs)]

    # Metrics -----------------------------------------------------------------------------------

    def metrics(self, outputs: list[dict], data: DetectionData) -> dict:
        from graft.tasks.detection.metrics import detection_metrics

        return detection_metrics(outputs, data, self.masks)

    def describe(self) -> str:
        return f"{len(self.classes)} classes, {self.detector}"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        from graft.tasks.detection.answers import metrics_tables

        return metrics_tables(metrics, classes, title, cls.masks)

    # Record ------------------------------------------------------------------------------------

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "detector": self.detector,
            **dataclasses.asdict(self.sizes),
            "score_threshold": self.score_threshold,
        }

    def export_record(self) -> dict:
        return self.record()

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> DetectionTask:
        sizes = Sizes(record["min_size"], record["max_size"], tuple(record["train_sizes"]))
        return cls(list(labels), record["detector"], sizes, record["score_threshold"])

    def summary(self, splits: DataSplits) -> dict:
        return {"annotations": {name: dict(part.report) for name, part in splits.parts().items()}}

    def data_summary(self, splits: DataSplits, backbone: Any) -> dict:
        return parts.data_summary(splits, self.kind)


class InstanceSegmentationTask(DetectionTask):
    """Boxes and masks of the objects of each image: Mask R-CNN (see the module docstring);
    chosen with ``--task instance-segmentation`` (COCO masks also train a plain detector)."""

    kind = "instance-segmentation"
    headline = "mask_map"
    masks = True

    @classmethod
    def claims(cls, data: Any) -> bool:
        return False  # asked for by name: annotations with masks are detection data too
