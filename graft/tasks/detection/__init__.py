"""Object detection and instance segmentation data: COCO JSON, Pascal VOC XML and YOLO text
labels read into one form (:class:`DetectionData`) and checked; a fit splits them by image
(:meth:`graft.tasks.detection.task.DetectionTask.split`)."""

from graft.data.annotations.target import REPORT_KEYS, DetectionData, DetectionTarget, decode_masks
from graft.tasks.detection.read import (
    FORMATS,
    detection_format,
    read_detection,
    read_detection_splits,
)

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
