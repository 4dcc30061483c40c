"""Boxes, classes and instance masks of a set of images, as every detection reader returns them.

Boxes are ``x1, y1, x2, y2`` in pixels of the image as :func:`graft.data.images.open_rgb` gives
it, with pixel edges as coordinates: a box around pixel columns 10..19 is ``x1=10, x2=20``
(COCO's ``[x, y, w, h]`` is ``[x, y, x + w, y + h]``). Masks stay in their compact COCO form
(compressed or uncompressed RLE, or polygons) and are decoded only when asked for.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

#: The counts every reader fills in :attr:`DetectionData.report`.
REPORT_KEYS = (
    "images",
    "boxes",
    "negative_images",
    "images_skipped",
    "boxes_clipped",
    "degenerate_boxes_skipped",
    "unknown_class_skipped",
    "size_mismatches",
)


@dataclass
class DetectionTarget:
    """The objects of one image.

    Attributes:
        boxes: float32 ``[n, 4]``, ``x1, y1, x2, y2`` in pixels (pixel edges, see the module).
        labels: int64 ``[n]``, an index into the data's ``classes``.
        width, height: the image's size in pixels (read from its header).
        masks: None, or one mask per object in COCO form: an RLE dict (``{"size": [h, w],
            "counts": ...}``) or a list of polygons ``[[x1, y1, x2, y2, ...], ...]``.
        iscrowd: int64 ``[n]``, 1 for a COCO crowd region (many objects under one label).
    """

    boxes: np.ndarray
    labels: np.ndarray
    width: int
    height: int
    masks: list[Any] | None = None
    iscrowd: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.iscrowd is None:
            self.iscrowd = np.zeros(len(self.labels), dtype=np.int64)
        self.iscrowd = np.asarray(self.iscrowd, dtype=np.int64).reshape(-1)
        if not len(self.boxes) == len(self.labels) == len(self.iscrowd):
            raise ValueError("boxes, labels and iscrowd must have one entry per object")
        if self.masks is not None and len(self.masks) != len(self.labels):
            raise ValueError("masks must have one entry per object")

    def __len__(self) -> int:
        return len(self.labels)

    def decode_masks(self) -> np.ndarray:
        """The instance masks as uint8 ``[n, height, width]`` (1 inside the object).

        Raises:
            ValueError: the target has no masks.
        """
        if self.masks is None:
            raise ValueError("this target has no masks")
        return decode_masks(self.masks, self.height, self.width)

    def select(self, keep: np.ndarray) -> DetectionTarget:
        """The target with only the objects where ``keep`` (bool ``[n]``) is true."""
        keep = np.asarray(keep, dtype=bool)
        masks = (
            None if self.masks is None else [m for m, k in zip(self.masks, keep, strict=True) if k]
        )
        return DetectionTarget(
            self.boxes[keep], self.labels[keep], self.width, self.height, masks, self.iscrowd[keep]
        )


def decode_masks(masks: list[Any], height: int, width: int) -> np.ndarray:
    """COCO polygons or RLE dicts decoded with pycocotools to uint8 ``[n, height, width]``."""
    from pycocotools import mask as coco_mask

    out = np.zeros((len(masks), height, width), dtype=np.uint8)
    for i, mask in enumerate(masks):
        out[i] = coco_mask.decode(to_rle(mask, height, width))
    return out


def to_rle(mask: Any, height: int, width: int) -> dict[str, Any]:
    """One mask in COCO form (polygons, uncompressed or compressed RLE) as compressed RLE."""
    from pycocotools import mask as coco_mask

    if isinstance(mask, dict) and isinstance(mask.get("counts"), str | bytes):
        return mask
    rle = coco_mask.frPyObjects(mask, height, width)
    return coco_mask.merge(rle) if isinstance(rle, list) else rle


def mask_box(mask: Any, height: int, width: int) -> list[float]:
    """The ``[x, y, w, h]`` box around one mask in COCO form (zeros for an empty mask)."""
    from pycocotools import mask as coco_mask

    return [float(v) for v in coco_mask.toBbox(to_rle(mask, height, width))]


@dataclass
class DetectionData:
    """Images with their objects: what the detection readers return.

    Attributes:
        images: absolute paths of the images, one per target.
        targets: the objects of each image (an image without objects is a negative example).
        classes: class names; a label is an index into this list (no background class).
        source: the file or folder the data came from, for messages.
        skipped: ``(file, reason)`` for images left out (missing or unreadable).
        report: counts of what reading found and did, keyed by :data:`REPORT_KEYS`.
    """

    images: list[str]
    targets: list[DetectionTarget]
    classes: list[str]
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    report: dict[str, int] = field(default_factory=dict)
    #: What the data are made of, as graft's other data say it (images).
    modality: ClassVar[str] = "image"

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_masks(self) -> bool:
        """Whether every object of every image has a mask (and there is at least one)."""
        objects = [t for t in self.targets if len(t)]
        return bool(objects) and all(t.masks is not None for t in objects)

    def sizes(self) -> list[tuple[int, int]]:
        """``(height, width)`` of each image."""
        return [(t.height, t.width) for t in self.targets]

    def class_counts(self) -> dict[str, int]:
        """Objects per class, crowd regions included."""
        counts = Counter(int(label) for t in self.targets for label in t.labels)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def subset(self, indices: np.ndarray | list[int]) -> DetectionData:
        """The images at ``indices``; the report's image, box and negative counts are those of
        the subset, its other counts those of the whole read."""
        indices = [int(i) for i in np.asarray(indices, dtype=np.int64).reshape(-1)]
        targets = [self.targets[i] for i in indices]
        report = dict(self.report)
        report.update(content_counts(targets))
        return DetectionData(
            [self.images[i] for i in indices],
            targets,
            list(self.classes),
            self.source,
            list(self.skipped),
            report,
        )

    def content_hash(self) -> str:
        """SHA-256 over the classes, every image's bytes and every target: equal exactly when
        the data are the same (recorded with a run, for reproducibility)."""
        digest = hashlib.sha256()
        digest.update("\x1f".join(self.classes).encode("utf-8"))
        for image, target in zip(self.images, self.targets, strict=True):
            digest.update(hashlib.sha256(Path(image).read_bytes()).digest())
            digest.update(np.asarray([target.width, target.height], dtype=np.int64).tobytes())
            for array in (target.boxes, target.labels, target.iscrowd):
                digest.update(np.ascontiguousarray(array).tobytes())
            masks = json.dumps(target.masks, sort_keys=True, default=_bytes_as_text)
            digest.update(masks.encode("utf-8"))
        return digest.hexdigest()


def content_counts(targets: list[DetectionTarget]) -> dict[str, int]:
    """The report counts that follow from the targets themselves."""
    return {
        "images": len(targets),
        "boxes": sum(len(t) for t in targets),
        "negative_images": sum(len(t) == 0 for t in targets),
    }


def _bytes_as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii")
    raise TypeError(f"cannot hash a mask holding {type(value).__name__}")
