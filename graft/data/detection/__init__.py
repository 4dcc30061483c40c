"""Object detection and instance segmentation data: COCO JSON, Pascal VOC XML and YOLO text
labels read into one form (:class:`DetectionData`), checked, and split by image."""

from graft.data.detection.read import (
    FORMATS,
    detection_format,
    read_detection,
    read_detection_splits,
)
from graft.data.detection.split import split_images
from graft.data.detection.target import REPORT_KEYS, DetectionData, DetectionTarget, decode_masks

__all__ = [
    "FORMATS",
    "REPORT_KEYS",
    "DetectionData",
    "DetectionTarget",
    "decode_masks",
    "detection_format",
    "read_detection",
    "read_detection_splits",
    "split_images",
]
