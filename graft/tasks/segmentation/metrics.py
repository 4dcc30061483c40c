"""Metrics of semantic segmentation, from the pixel confusion matrix.

Every pixel whose true value is the ignore index is left out. From the confusion matrix ``C``
(``C[t, p]``: pixels of true class ``t`` predicted ``p``, torchmetrics'
``multiclass_confusion_matrix``), each class's

- IoU (Jaccard index) ``= TP / (TP + FP + FN)``,
- Dice (F1) ``= 2 TP / (2 TP + FP + FN)``,

over the whole dataset (the pixels of all images together, as PASCAL VOC and Cityscapes count
them); the mean IoU and mean Dice average the classes present in the truth or the predictions
(a class absent from both has no score); pixel accuracy is ``trace(C) / sum(C)``. The mean IoU
is the headline, and :class:`MeanIoU` computes it over a validation epoch to choose the epoch
kept. Each image also gets its own mean IoU, to show the worst images first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_confusion_matrix

#: How many of the worst validation images the metrics keep (with their masks, small).
WORST = 6
#: The longer side of the masks kept for them, in pixels.
WORST_SIDE = 240


def confusion(
    predicted: torch.Tensor, truth: torch.Tensor, classes: int, ignore_index: int
) -> torch.Tensor:
    """The ``[classes, classes]`` pixel confusion matrix (rows: true class) of class-index
    maps of the same shape, pixels of ``ignore_index`` left out."""
    truth = torch.as_tensor(truth).long()
    keep = truth != ignore_index
    if not bool(keep.any()):
        return torch.zeros((classes, classes), dtype=torch.long)
    return multiclass_confusion_matrix(
        torch.as_tensor(predicted).long()[keep], truth[keep], classes, validate_args=False
    )


def class_scores(matrix: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """Per-class ``iou`` and ``dice`` (NaN for a class neither true nor predicted anywhere),
    and the true and predicted pixels of each class, of a confusion matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(matrix)
    truth, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    union = truth + predicted - hits
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, hits / union, np.nan)
        dice = np.where(union > 0, 2 * hits / (truth + predicted), np.nan)
    return {"iou": iou, "dice": dice, "truth": truth, "predicted": predicted}


def mean_iou(matrix: np.ndarray | torch.Tensor) -> float:
    """The mean IoU over the classes present in the truth or the predictions (0 when the
    matrix is empty)."""
    iou = class_scores(matrix)["iou"]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0


class MeanIoU(Metric):
    """The mean IoU of a validation epoch (see the module): a pixel confusion matrix summed
    over the batches (and over processes), read at the epoch's end.

    ``update(logits [n, classes, h, w] or class indices [n, h, w], truth [n, h, w])``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, classes: int, ignore_index: int = 255):
        super().__init__()
        self.classes = classes
        self.ignore_index = ignore_index
        self.add_state("matrix", torch.zeros((classes, classes), dtype=torch.long), "sum")

    def update(self, predicted: torch.Tensor, truth: torch.Tensor) -> None:
        if predicted.ndim == truth.ndim + 1:
            predicted = predicted.argmax(dim=1)
        found = confusion(predicted.detach().cpu(), truth.cpu(), self.classes, self.ignore_index)
        self.matrix += found.to(self.matrix.device)

    def compute(self) -> torch.Tensor:
        return torch.tensor(mean_iou(self.matrix.cpu()), dtype=torch.float32)


def segmentation_metrics(
    predicted: Iterable[np.ndarray],
    truth: Iterable[np.ndarray],
    classes: Sequence[str],
    images: Sequence[str],
    ignore_index: int = 255,
    colors: Sequence | None = None,
) -> dict:
    """The metrics of predicted masks against true ones, each ``[H, W]`` class indices at the
    image's own size: ``mean_iou``, ``mean_dice``, ``pixel_accuracy``, ``per_class`` (``iou``,
    ``dice``, ``pixels``: true pixels, ``predicted``), ``confusion_matrix`` (pixels, rows true),
    ``num_examples``, and ``worst``: the :data:`WORST` images of lowest mean IoU, worst first,
    with small true and predicted masks (palette PNG data URIs) for the report."""
    count = len(classes)
    total = torch.zeros((count, count), dtype=torch.long)
    ranked, seen = [], 0
    for index, (found, true) in enumerate(zip(predicted, truth, strict=True)):
        found, true = torch.from_numpy(np.asarray(found)), torch.from_numpy(np.asarray(true))
        matrix = confusion(found, true, count, ignore_index)
        total += matrix
        ranked = sorted([*ranked, (mean_iou(matrix), index, found, true)], key=_rank)[:WORST]
        seen += 1
    scores = class_scores(total)
    matrix = total.numpy()
    per_class = {
        name: {
            "iou": _number(scores["iou"][i]),
            "dice": _number(scores["dice"][i]),
            "pixels": int(scores["truth"][i]),
            "predicted": int(scores["predicted"][i]),
        }
        for i, name in enumerate(classes)
    }
    return {
        "mean_iou": mean_iou(total),
        "mean_dice": _nanmean(scores["dice"]),
        "pixel_accuracy": float(np.trace(matrix) / max(1, matrix.sum())),
        "num_examples": seen,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "worst": worst_images(ranked, images, count, colors),
    }


def worst_images(ranked: list, images: Sequence[str], count: int, colors) -> list[dict]:
    """The :data:`WORST` lowest-scoring images: path, mean IoU, and their true and predicted
    masks shrunk to :data:`WORST_SIDE` pixels as palette PNG data URIs."""
    from graft.tasks.segmentation.masks import data_uri, mask_image, palette, shrunk

    shades = palette(count, colors)
    chosen = sorted(ranked, key=_rank)[:WORST]
    return [
        {
            "image": str(images[index]),
            "mean_iou": round(score, 6),
            "truth": data_uri(mask_image(shrunk(np.asarray(true), WORST_SIDE), shades)),
            "predicted": data_uri(mask_image(shrunk(np.asarray(found), WORST_SIDE), shades)),
        }
        for score, index, found, true in chosen
    ]


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else 0.0


def _rank(entry: tuple) -> tuple[float, int]:
    return entry[0], entry[1]


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)
