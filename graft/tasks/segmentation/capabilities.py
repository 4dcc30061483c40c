"""What segmentation has beyond the core of a task (:mod:`graft.tasks.capabilities`): class
weights by median frequency balancing, masks written as files (``graft predict --out``), and
report sections and overview; and the list of every capability segmentation has
(:class:`SegmentationCapabilities`' bases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from graft.tasks.capabilities import (
    BuildsBackbone,
    ClaimsData,
    ClassWeighted,
    HeadLoss,
    PlansPhases,
    Reported,
    Summarised,
    WritesPredictions,
)
from graft.tasks.segmentation import answers as answering


class SegmentationCapabilities(
    ClaimsData,
    BuildsBackbone,
    HeadLoss,
    PlansPhases,
    ClassWeighted,
    WritesPredictions,
    Reported,
    Summarised,
):
    """Mixed into :class:`graft.tasks.segmentation.task.SegmentationTask` (which gives
    ``classes``, ``class_pixels``, ``palette`` and ``answers``, and implements the
    capabilities listed here that this mixin does not: data told by content, its backbone,
    loss, phases and summary)."""

    def class_weights(self, train: Any):
        """Median frequency balancing of the training pixels (:func:`median_frequency`)."""
        return median_frequency(self.class_pixels, len(self.classes))

    def write_predictions(self, items: list, outputs: list, folder: Any, overlay: bool = False):
        """Each image's mask as a palette PNG in ``folder`` (and its overlay)."""
        from graft.tasks.segmentation.report import write_masks

        masks = self.answers(outputs)
        written = write_masks(items, masks, Path(folder), self.palette, overlay)
        return [
            {**answering.record_of(mask, self.classes), **files}
            for mask, files in zip(masks, written, strict=True)
        ]

    @classmethod
    def report_sections(cls, metrics: dict, classes: Any, split: str, modality: str | None):
        from graft.tasks.segmentation.report import segmentation_sections

        return segmentation_sections(metrics, list(classes), split)

    @classmethod
    def overview(cls, record: dict) -> list[tuple[str, str]]:
        return answering.overview(record)


def median_frequency(pixels: list[int], count: int):
    """Class weights by median frequency balancing (Eigen and Fergus 2015): ``median(f) /
    f_c`` for the frequency ``f_c`` of each class among the training pixels (1 for a class
    with none)."""
    import torch

    counts = np.asarray(pixels, dtype=np.float64)
    weights = np.ones(count)
    present = counts > 0
    if present.any():
        frequency = counts[present] / counts.sum()
        weights[present] = np.median(frequency) / frequency
    return torch.tensor(weights, dtype=torch.float32)
