"""What a segmentation model answers, from its outputs: masks, probabilities, pixel shares,
the service's PNG masks, and the command line's tables.

The outputs of a batch (:meth:`graft.tasks.segmentation.task.SegmentationTask.infer`) are, per
image, its logits ``[classes, h, w]`` at the model's working scale and the original image's
``(height, width)``; the logits are resized (bilinearly) to the original before the arg-max,
so every answer is at the image's own size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from graft.tasks.base import MetricsTable
from graft.tasks.capabilities import PredictionText, Served

Output = tuple[torch.Tensor, torch.Tensor]


def full_size(output: Output) -> torch.Tensor:
    """The logits of one image resized to its original ``(height, width)``."""
    logits, size = output
    height, width = (int(v) for v in size)
    if tuple(logits.shape[-2:]) == (height, width):
        return logits.float()
    resized = F.interpolate(
        logits[None].float(), size=(height, width), mode="bilinear", align_corners=False
    )
    return resized[0]


def mask_of(output: Output) -> np.ndarray:
    """The class-index mask ``[H, W]`` (uint8, or int64 beyond 256 classes) of one image."""
    indices = full_size(output).argmax(dim=0)
    dtype = torch.uint8 if output[0].shape[0] <= 256 else torch.int64
    return indices.to(dtype).numpy()


def masks_of(outputs: Sequence[Output]) -> Iterator[np.ndarray]:
    """Each image's mask, one at a time (a dataset's masks need not all be held at once)."""
    return (mask_of(output) for output in outputs)


def probabilities_of(output: Output) -> np.ndarray:
    """The class probabilities ``[classes, H, W]`` (float32) of one image's pixels."""
    return torch.softmax(full_size(output), dim=0).numpy()


def pixel_shares(mask: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """The share of the image each predicted class covers, largest first (absent classes
    left out)."""
    counts = np.bincount(mask.reshape(-1).astype(np.int64), minlength=len(classes))
    total = max(1, int(counts.sum()))
    shares = {
        classes[i]: round(int(c) / total, 6) for i, c in enumerate(counts) if c and i < len(classes)
    }
    return dict(sorted(shares.items(), key=lambda pair: -pair[1]))


def record_of(mask: np.ndarray, classes: Sequence[str]) -> dict:
    """``graft predict --json``'s line of one image (without the input): its size and the
    share of it each class covers."""
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "pixels": pixel_shares(mask, classes)}


def served(mask: np.ndarray, classes: Sequence[str], colors: Sequence) -> dict:
    """``graft serve``'s answer for one image: the mask as a palette PNG (a data URI; class 0
    transparent, so that it lies over the image), the classes and their colours, and the share
    of the image each class covers."""
    from graft.tasks.segmentation.masks import data_uri, mask_image

    return {
        "mask": data_uri(mask_image(mask, colors, transparent=0)),
        "width": int(mask.shape[1]),
        "height": int(mask.shape[0]),
        "classes": list(classes),
        "colors": ["#{:02x}{:02x}{:02x}".format(*colors[i]) for i in range(len(classes))],
        "pixels": pixel_shares(mask, classes),
    }


def prediction_text(record: dict) -> str:
    """``person 23.4%, background 76.6%`` (and the mask file written, if any)."""
    shares = ", ".join(f"{name} {share:.1%}" for name, share in record["pixels"].items())
    files = [record[key] for key in ("mask", "overlay") if key in record]
    return shares + (f" -> {', '.join(files)}" if files else "")


def metrics_tables(metrics: dict, classes: Sequence[str], title: str) -> list[MetricsTable]:
    """IoU, Dice and pixels of each class, under the mean IoU, mean Dice and pixel accuracy."""
    summary = (
        f"mean IoU {metrics['mean_iou']:.4f}, mean Dice {metrics['mean_dice']:.4f}, pixel "
        f"accuracy {metrics['pixel_accuracy']:.4f} ({metrics['num_examples']} images)"
    )
    table = MetricsTable(
        f"{title}: {summary}", ["class", "IoU", "Dice", "true pixels", "predicted"], left=("class",)
    )
    for name in classes:
        row = metrics["per_class"][name]
        table.rows.append(
            [
                name,
                "n/a" if row["iou"] is None else f"{row['iou']:.4f}",
                "n/a" if row["dice"] is None else f"{row['dice']:.4f}",
                f"{row['pixels']:,}",
                f"{row['predicted']:,}",
            ]
        )
    return [table]


def overview(record: dict) -> list[tuple[str, str]]:
    """The report's overview rows of a segmentation run's task record: architecture and loss,
    the working scale and crops, the prediction tiles."""
    short = record.get("short_side")
    seen = f"shorter side {short} px" if short else "their own resolution"
    return [
        ("architecture", f"{record.get('architecture')} (loss {record.get('loss')})"),
        ("images", f"at {seen}; training crops {record.get('crop')} px"),
        ("prediction tiles", f"{record.get('tile')} px, overlap {record.get('overlap')} px"),
    ]


class MaskAnswers(Served, PredictionText):
    """A segmentation model's answers from its outputs (each image's logits and size): mixed
    into :class:`graft.tasks.segmentation.task.SegmentationTask` (which gives ``classes`` and
    ``colors``)."""

    @property
    def palette(self) -> list:
        from graft.tasks.segmentation.masks import palette

        return palette(len(self.classes), self.colors)

    def answers(self, outputs: list) -> list[np.ndarray]:
        """Each image's mask ``[H, W]`` of class indices, at its own size."""
        return list(masks_of(outputs))

    def probabilities(self, outputs: list) -> list[np.ndarray]:
        """Each image's class probabilities ``[classes, H, W]``, at its own size."""
        return [probabilities_of(output) for output in outputs]

    def prediction_records(self, outputs: list, top_k: int) -> list[dict]:
        return [record_of(m, self.classes) for m in masks_of(outputs)]

    def served_answers(self, outputs: list, top_k: int) -> list[dict]:
        shades = self.palette
        return [served(m, self.classes, shades) for m in masks_of(outputs)]

    def prediction_text(self, record: dict) -> str:
        return prediction_text(record)
