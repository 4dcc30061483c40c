"""The options of a detection fit (and of instance segmentation, which trains Mask R-CNN).

Declared once with :func:`graft.options.option`: ``graft fit --help`` lists them in their own
panel and ``graft.fit(..., detector="retinanet")`` takes them. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from graft.options import KindOptions, check_choice, option

#: The detectors graft builds (:mod:`graft.tasks.detection.detectors`).
DETECTORS = ("fasterrcnn", "retinanet", "fcos")
#: Detection's own defaults of options every fit has, for those the user leaves at None
#: (:meth:`graft.config.FitConfig.with_defaults`).
DEFAULTS = {"batch_size": 4, "lr": 1e-3, "head_epochs": 4, "epochs": 8}


@dataclass
class DetectionOptions(KindOptions):
    """Options of ``task="detection"`` and ``task="instance-segmentation"``.

    Attributes:
        detector: ``fasterrcnn`` (Faster R-CNN with a feature pyramid), ``retinanet`` or
            ``fcos``; instance segmentation is Mask R-CNN (``fasterrcnn``).
    """

    fit_defaults: ClassVar[dict[str, Any]] = DEFAULTS

    detector: str = option(
        "fasterrcnn",
        "fasterrcnn (Faster R-CNN with a feature pyramid), retinanet or fcos (instance "
        "segmentation trains Mask R-CNN).",
        panel="Detection",
    )

    def validate(self) -> DetectionOptions:
        check_choice("detector", self.detector, DETECTORS)
        return self
