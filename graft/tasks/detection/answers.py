"""What a detection model answers and prints: detections as records, masks as COCO RLE, and the
command line's tables of COCO metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from graft.tasks.base import MetricsTable

#: Digits kept of box coordinates (pixels) and scores in answers.
BOX_DIGITS, SCORE_DIGITS = 2, 4


def compact(found: dict) -> dict:
    """One image's detections with Mask R-CNN's ``[n, 1, H, W]`` mask probabilities turned
    into compressed COCO RLE (``{"size": [H, W], "counts": str}``) of the mask above 0.5:
    what is kept of an image's outputs (a full-size float mask per detection would not fit)."""
    out = {k: v.detach() for k, v in found.items() if k != "masks"}
    if "masks" in found:
        out["masks"] = rle_masks(found["masks"])
    return out


def rle_masks(masks: torch.Tensor) -> list[dict]:
    """``[n, 1, H, W]`` probabilities as compressed RLE of ``probability > 0.5``."""
    from pycocotools import mask as coco_mask

    if not len(masks):
        return []
    binary = (masks.detach().cpu()[:, 0] > 0.5).numpy().astype(np.uint8)
    encoded = coco_mask.encode(np.asfortranarray(binary.transpose(1, 2, 0)))
    return [
        {"size": [int(s) for s in e["size"]], "counts": e["counts"].decode("ascii")}
        for e in encoded
    ]


def answer_list(found: dict, classes: list[str], threshold: float) -> list[dict]:
    """An image's detections scoring at least ``threshold``, best first: ``label``, ``score``,
    ``box`` ``[x1, y1, x2, y2]`` (pixels of the original image) and, with masks, ``mask``."""
    scores = found["scores"]
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    answers = []
    for i in order:
        score = float(scores[i])
        if score < threshold:
            break
        answer = {
            "label": classes[int(found["labels"][i])],
            "score": round(score, SCORE_DIGITS),
            "box": [round(float(v), BOX_DIGITS) for v in found["boxes"][i].tolist()],
        }
        if "masks" in found:
            answer["mask"] = found["masks"][i]
        answers.append(answer)
    return answers


def _figure(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def metrics_tables(
    metrics: dict, classes: list[str], title: str, masks: bool
) -> list[MetricsTable]:
    """The COCO summary (boxes, and masks) and the per-class APs."""
    kinds = [("box", "")] + ([("mask", "mask_")] if masks else [])
    summary = MetricsTable(
        f"{title}: box mAP {_figure(metrics.get('map'))}, mAP@.5 {_figure(metrics.get('map_50'))}"
        + (f", mask mAP {_figure(metrics.get('mask_map'))}" if masks else "")
        + f" ({metrics['num_examples']} images, {metrics['num_objects']} objects)",
        ["", "mAP", "mAP@.5", "mAP@.75", "small", "medium", "large", "AR@100"],
        left=("",),
    )
    for name, prefix in kinds:
        keys = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")
        summary.rows.append([name, *(_figure(metrics.get(prefix + k)) for k in keys)])
    columns = ["class", "objects", "AP", "AP@.5", "AP@.75"] + (["mask AP"] if masks else [])
    per_class = MetricsTable(f"{title}: per class", columns, left=("class",))
    for name in classes:
        row = metrics["per_class"].get(name, {})
        cells = [_figure(row.get(k)) for k in ("ap", "ap_50", "ap_75")]
        if masks:
            cells.append(_figure(row.get("mask_ap")))
        per_class.rows.append([name, str(row.get("objects", 0)), *cells])
    return [summary, per_class]
