"""What detection has beyond the core of a task (:mod:`graft.tasks.capabilities`): the
``graft predict`` score threshold, answers drawn on the images, an ONNX export from an image
to its detections, report sections and overview, and ``graft rank`` on object features; and
the list of every capability detection has (:class:`DetectionCapabilities`' bases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graft.errors import ConfigError
from graft.tasks.capabilities import (
    BatchesTraining,
    BuildsBackbone,
    ClaimsData,
    DrawsPredictions,
    ExportsItself,
    JoinsOutputs,
    PlansPhases,
    PredictionText,
    PredictOptions,
    Ranks,
    Reported,
    Served,
    Summarised,
    refuse_options,
)
from graft.tasks.detection import data as parts
from graft.tasks.detection.sizes import MIN_SIZE, Sizes, detection_backbone


class DetectionCapabilities(
    ClaimsData,
    BuildsBackbone,
    PlansPhases,
    BatchesTraining,
    JoinsOutputs,
    PredictOptions,
    PredictionText,
    DrawsPredictions,
    Served,
    ExportsItself,
    Reported,
    Summarised,
    Ranks,
):
    """Mixed into :class:`graft.tasks.detection.task.DetectionTask` (which gives ``kind``,
    ``classes``, ``masks``, ``score_threshold`` and ``split``), with how its answers show in
    ``graft predict``'s table and its refusal of probabilities. The task implements the
    capabilities listed here that this mixin does not: data told by content, its backbone,
    phases, batches of alike sizes, joined detections, served answers and its summary."""

    def configured(self, **options: Any) -> Any:
        """This task answering with ``score_threshold`` (and drawing with ``draw``)."""
        threshold = options.pop("score_threshold", None)
        options.pop("draw", None)
        refuse_options(self.kind, options)
        if threshold is None:
            return self
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"--score-threshold must be between 0 and 1, got {threshold}")
        copy = self.__class__.__new__(self.__class__)
        copy.__dict__.update(self.__dict__, score_threshold=float(threshold))
        return copy

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
