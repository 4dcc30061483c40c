"""The data side of the detection kinds: which data they claim, reading the splits, the
options and splits they refuse, and the data part of a fit's summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError, DataError
from graft.tasks.base import check_companions, check_same_classes

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits
    from graft.tasks.detection import DetectionData


def holds_detection_data(data: Any) -> bool:
    """Whether ``data`` is COCO JSON, a VOC folder, a YOLO layout or detection data held in
    memory (told by content, never by a class folder or a table)."""
    from graft.tasks.detection import DetectionData
    from graft.tasks.detection.read import detection_format

    if isinstance(data, DetectionData):
        return True
    if not isinstance(data, str | os.PathLike) or not Path(data).exists():
        return False
    path = Path(data)
    if path.is_file() and path.suffix.lower() == ".json":
        from graft.data.annotations.coco import is_coco

        return is_coco(path)
    try:
        detection_format(path)
    except DataError:
        return False
    return True


def read_splits(data: Any, val: Any, test: Any, columns: dict, kind: str) -> DataSplits:
    """The training data (a path, or :class:`DetectionData`), with the validation and test
    splits its layout holds, or ``val`` and ``test`` read with its classes."""
    from graft.data import DataSplits
    from graft.tasks.detection import DetectionData, read_detection, read_detection_splits

    given = [f"--{k.replace('_', '-')}" for k, v in columns.items() if v is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} name table columns; {kind} data has none")
    if isinstance(data, DetectionData):
        train, found_val, found_test = data, None, None
    else:
        train, found_val, found_test = read_detection_splits(data)
    parts = []
    for given_part, found in ((val, found_val), (test, found_test)):
        if given_part is not None and not isinstance(given_part, DetectionData):
            given_part = read_detection(given_part, classes=train.classes)
        parts.append(given_part if given_part is not None else found)
    return DataSplits(train, *parts)


def check_options(config: FitConfig, kind: str, masks: bool) -> None:
    """Refuse the options a detection fit cannot take (ConfigError naming the option; the
    values of its own are checked by :class:`DetectionOptions`)."""
    from graft.tasks.detection.options import DetectionOptions

    detector = DetectionOptions.of(config).detector
    refused = {
        "--strategy auto measures pooled features of class labels; choose a strategy "
        "(fine-tune by default)": config.strategy == "auto",
        "--views caches pooled features of augmented views; detection trains on images": (
            config.views > 1
        ),
        f"--adapt {config.adapt} aligns pooled features; not with {kind}": (config.adapt != "none"),
        "instance segmentation trains Mask R-CNN: --detector fasterrcnn": (
            masks and detector != "fasterrcnn"
        ),
        "--image-size must be at least 64 for detection": (
            config.image_size is not None and config.image_size < 64
        ),
    }
    for message, bad in refused.items():
        if bad:
            raise ConfigError(message)


def check_splits(splits: DataSplits, masks: bool) -> DataSplits:
    """Validation and test data hold images and the training data's classes; the training
    images hold objects; with ``masks``, every object has a mask."""
    train = splits.train
    check_companions(splits)
    check_same_classes(splits)
    for part in splits.parts().values():
        check_masks(part, masks)
    if not sum(len(t) for t in train.targets):
        raise DataError(f"{train.source}: the training images hold no objects")
    return splits


def check_masks(data: DetectionData, masks: bool) -> None:
    """Instance segmentation (``masks``) needs a mask for every object."""
    if masks and any(len(t) for t in data.targets) and not data.has_masks:
        raise DataError(
            f"{data.source}: --task instance-segmentation needs a mask for every object, and "
            "these annotations hold boxes only (give COCO polygons or RLE, or YOLO "
            "segmentation lines; or use --task detection)"
        )


def data_summary(splits: DataSplits, kind: str) -> dict:
    """Images and objects per split and class, and the images skipped while reading."""
    parts = splits.parts()
    skipped = {n: p.skipped for n, p in parts.items() if p.skipped}
    return {
        "modality": "image",
        "task": kind,
        "examples": {n: len(p) for n, p in parts.items()},
        "class_counts": {n: p.class_counts() for n, p in parts.items()},
        "skipped": {n: [{"input": w, "reason": r} for w, r in s] for n, s in skipped.items()},
        "skipped_count": sum(len(s) for s in skipped.values()),
    }
