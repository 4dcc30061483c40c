"""Object detection and instance segmentation data: COCO JSON, Pascal VOC XML and YOLO text
labels read into one form (:class:`DetectionData`) and checked; a fit splits them by image
(:meth:`graft.tasks.detection.task.DetectionTask.split`)."""

import importlib

#: Where each name lives, imported when first asked for: importing the package (for its torch-free
#: ``options``, which ``graft fit --help`` lists) reads no data modules.
_WHERE = {
    **dict.fromkeys(
        ("REPORT_KEYS", "DetectionData", "DetectionTarget", "decode_masks"),
        "graft.data.annotations.target",
    ),
    **dict.fromkeys(
        ("FORMATS", "detection_format", "read_detection", "read_detection_splits"),
        "graft.tasks.detection.read",
    ),
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = [
    "FORMATS",
    "REPORT_KEYS",
    "DetectionData",
    "DetectionTarget",
    "decode_masks",
    "detection_format",
    "read_detection",
    "read_detection_splits",
]
