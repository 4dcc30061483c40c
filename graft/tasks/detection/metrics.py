"""Detection and instance segmentation metrics: COCO's, from torchmetrics' MeanAveragePrecision.

The evaluation is pycocotools' (torchmetrics' ``MeanAveragePrecision`` with its ``pycocotools``
backend), not a hand-written one: mAP@[.5:.95], mAP@.5, mAP@.75, mAP by object size (COCO's
small < 32², medium < 96², large), average recall at 1, 10 and 100 detections, and from the
precision array it keeps (``extended_summary``) each class's AP, AP@.5, AP@.75, AP by size and
its precision-recall curves at IoU .5 and .75. Crowd regions count as COCO counts them
(detections on them are neither right nor wrong).

Besides, :func:`worst_images` lists the images with the most errors at a score threshold
(detections that match no object at IoU .5, objects that no detection matches), for the report
to draw first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from graft.data.annotations.target import DetectionData, decode_masks

#: The summary entries of torchmetrics' result kept in the metrics (each a number, or None).
SUMMARY = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)
AREAS = ("all", "small", "medium", "large")
#: Images the metrics keep for the report's "worst first" drawings.
WORST_IMAGES = 12
#: The score from which a detection counts as an answer when looking for errors.
ERROR_THRESHOLD = 0.5


def map_metric(masks: bool = False, detailed: bool = False):
    """A fresh ``MeanAveragePrecision`` over boxes (and masks); ``detailed``: per class, with
    the precision arrays (slower: for the final metrics, not every validation epoch)."""
    from torchmetrics.detection import MeanAveragePrecision

    return MeanAveragePrecision(
        iou_type=("bbox", "segm") if masks else "bbox",
        class_metrics=detailed,
        extended_summary=detailed,
        backend="pycocotools",
    )


def metric_inputs(
    detections: list[dict], targets: list[dict], masks: bool = False
) -> tuple[list[dict], list[dict]]:
    """``(preds, target)`` as ``MeanAveragePrecision.update`` takes them, from a detection
    head's outputs (masks as ``[n, 1, H, W]`` probabilities or RLE dicts) and the targets of
    :class:`~graft.tasks.detection.batches.DetectionDataset` (decoded ``masks``)."""
    preds, truths = [], []
    for found, target in zip(detections, targets, strict=True):
        pred = {k: found[k].detach().cpu() for k in ("boxes", "scores", "labels")}
        truth = {k: target[k].detach().cpu() for k in ("boxes", "labels", "iscrowd")}
        if masks:
            height, width = target["masks"].shape[-2:]
            pred["masks"] = binary_masks(found["masks"], height, width)
            truth["masks"] = target["masks"].detach().cpu().bool()
        preds.append(pred)
        truths.append(truth)
    return preds, truths


def binary_masks(masks: Any, height: int, width: int) -> torch.Tensor:
    """Masks as bool ``[n, H, W]``: probabilities ``[n, 1, H, W]`` above 0.5, or RLE dicts."""
    if isinstance(masks, torch.Tensor):
        return (masks.detach().cpu().reshape(-1, height, width) > 0.5).bool()
    if not masks:
        return torch.zeros((0, height, width), dtype=torch.bool)
    return torch.from_numpy(decode_masks(list(masks), height, width)).bool()


def detection_metrics(outputs: list[dict], data: DetectionData, masks: bool = False) -> dict:
    """The metrics of a detection head's ``outputs`` (one dict per image, masks as RLE) on
    labelled ``data`` (see the module docstring)."""
    metric = map_metric(masks, detailed=True)
    for found, target in zip(outputs, data.targets, strict=True):
        truth = {
            "boxes": torch.as_tensor(target.boxes),
            "labels": torch.as_tensor(target.labels),
            "iscrowd": torch.as_tensor(target.iscrowd),
        }
        if masks:
            truth["masks"] = torch.from_numpy(target.decode_masks())
        preds, truths = metric_inputs([found], [truth], masks)
        metric.update(preds, truths)
    result = metric.compute()
    kinds = [("", "bbox_" if masks else "")] + ([("mask_", "segm_")] if masks else [])
    metrics: dict[str, Any] = {"num_examples": len(data), "num_objects": _objects(data)}
    for name, key in kinds:
        metrics.update({f"{name}{k}": _number(result[f"{key}{k}"]) for k in SUMMARY})
    present = [int(c) for c in result["classes"].reshape(-1).tolist()]
    precision = result[f"{kinds[0][1]}precision"].numpy()
    metrics["per_class"] = per_class(precision, present, data)
    metrics["pr_curves"] = pr_curves(precision, present, data.classes)
    if masks:
        mask_precision = result["segm_precision"].numpy()
        for name, row in per_class(mask_precision, present, data).items():
            metrics["per_class"][name].update({f"mask_{k}": v for k, v in row.items()})
    metrics["worst"] = worst_images(outputs, data)
    return metrics


def _objects(data: DetectionData) -> int:
    return int(sum(int((t.iscrowd == 0).sum()) for t in data.targets))


def _number(value: torch.Tensor) -> float | None:
    number = float(value)
    return None if number < 0 else round(number, 6)


def average_precision(precision: np.ndarray) -> float | None:
    """The mean of the defined entries of a slice of COCO's precision array (None if none)."""
    defined = precision[precision > -1]
    return round(float(defined.mean()), 6) if defined.size else None


def per_class(precision: np.ndarray, present: list[int], data: DetectionData) -> dict:
    """Each class's AP@[.5:.95], AP@.5, AP@.75 and AP by size (at 100 detections), and its
    objects, from COCO's precision array ``[iou, recall, class, area, max detections]``."""
    counts = data.class_counts()
    rows = {}
    for index, name in enumerate(data.classes):
        row: dict[str, Any] = {"objects": counts.get(name, 0)}
        if index in present:
            k = present.index(index)
            row["ap"] = average_precision(precision[:, :, k, 0, -1])
            row["ap_50"] = average_precision(precision[0, :, k, 0, -1])
            row["ap_75"] = average_precision(precision[5, :, k, 0, -1])
            for area in (1, 2, 3):
                row[f"ap_{AREAS[area]}"] = average_precision(precision[:, :, k, area, -1])
        else:
            row.update({key: None for key in ("ap", "ap_50", "ap_75")})
        rows[name] = row
    return rows


def pr_curves(precision: np.ndarray, present: list[int], classes: list[str]) -> dict:
    """Each class's precision at COCO's 101 recall points, at IoU .5 and .75 (-1: recall not
    reached)."""
    recall = [round(r, 2) for r in np.linspace(0.0, 1.0, precision.shape[1]).tolist()]
    curves = {}
    for k, index in enumerate(present):
        if index < len(classes):
            curves[classes[index]] = {
                "recall": recall,
                "precision_50": [round(float(p), 4) for p in precision[0, :, k, 0, -1]],
                "precision_75": [round(float(p), 4) for p in precision[5, :, k, 0, -1]],
            }
    return curves


def image_errors(found: dict, boxes: np.ndarray, labels: np.ndarray, crowd: np.ndarray) -> dict:
    """False and missed detections of one image at :data:`ERROR_THRESHOLD` (IoU .5 greedy
    matching by score, per class; detections on crowd regions count for nothing)."""
    from torchvision.ops import box_iou

    keep = found["scores"] >= ERROR_THRESHOLD
    pred_boxes, pred_labels = found["boxes"][keep], found["labels"][keep]
    truth = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    ious = box_iou(pred_boxes.float(), truth) if len(truth) and len(pred_boxes) else None
    matched, false = set(), 0
    for i in range(len(pred_boxes)):
        best, best_iou = None, 0.5
        for j in range(len(truth)):
            if j in matched or int(labels[j]) != int(pred_labels[i]):
                continue
            if float(ious[i, j]) >= best_iou and not crowd[j]:
                best, best_iou = j, float(ious[i, j])
        if best is not None:
            matched.add(best)
        elif not any(crowd[j] and float(ious[i, j]) >= 0.5 for j in range(len(truth))):
            false += 1
    missed = int((crowd == 0).sum()) - len(matched)
    return {"false": false, "missed": missed, "errors": false + missed}


def worst_images(outputs: list[dict], data: DetectionData, count: int = WORST_IMAGES) -> list:
    """The ``count`` images with the most errors (:func:`image_errors`), with their true boxes
    and detections (score at least 0.3, 30 at most) for the report to draw."""
    rows = []
    for index, (found, target) in enumerate(zip(outputs, data.targets, strict=True)):
        errors = image_errors(found, target.boxes, target.labels, target.iscrowd)
        if errors["errors"]:
            rows.append((errors["errors"], index, errors))
    rows.sort(key=lambda row: (-row[0], row[1]))
    worst = []
    for _, index, errors in rows[:count]:
        found, target = outputs[index], data.targets[index]
        shown = (found["scores"] >= 0.3).nonzero().reshape(-1)[:30]
        worst.append(
            {
                "image": data.images[index],
                **errors,
                "truth": [
                    [*map(_round, box), int(label)]
                    for box, label in zip(
                        target.boxes.tolist(), target.labels.tolist(), strict=True
                    )
                ],
                "detections": [
                    [
                        *map(_round, found["boxes"][i].tolist()),
                        int(found["labels"][i]),
                        round(float(found["scores"][i]), 4),
                    ]
                    for i in shown.tolist()
                ],
            }
        )
    return worst


def _round(value: float) -> float:
    return round(float(value), 1)
