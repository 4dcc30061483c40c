"""The options of a semantic segmentation fit, declared once with :func:`graft.options.option`:
``graft fit --help`` lists them in their own panel and ``graft.fit(..., architecture="fpn")``
takes them. Nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from graft.errors import ConfigError
from graft.options import KindOptions, check_choice, option

#: smp's decoders graft builds (:func:`graft.tasks.segmentation.decoders.build_head`).
ARCHITECTURES = ("unet", "fpn", "deeplabv3plus")
#: Pixel losses (:func:`graft.tasks.segmentation.module.segmentation_loss`).
LOSSES = ("ce", "dice", "ce+dice")
#: Segmentation's own defaults of options every fit has, for those the user leaves at None
#: (:meth:`graft.config.FitConfig.with_defaults`): see bench/RESULTS.md, "Semantic
#: segmentation", for the measurements behind them.
DEFAULTS = {
    "batch_size": 8,
    "lr": 1e-3,
    "head_epochs": 4,
    "epochs": 12,
    "label_smoothing": 0.0,
    "image_size": 256,
}


@dataclass
class SegmentationOptions(KindOptions):
    """Options of ``task="segmentation"``.

    Attributes:
        architecture: the decoder (``unet``, ``fpn``, ``deeplabv3plus``).
        loss: the pixel loss (``ce``, ``dice``, ``ce+dice``: their sum).
        binary_masks: masks read as background and one foreground (every value above 0).
        ignore_index: the mask value left out of loss and metrics.
    """

    fit_defaults: ClassVar[dict[str, Any]] = DEFAULTS

    architecture: str = option(
        "unet", "unet, fpn or deeplabv3plus (smp's decoders).", panel="Segmentation"
    )
    loss: str = option("ce+dice", "ce, dice or ce+dice (their sum).", panel="Segmentation")
    binary_masks: bool = option(
        False, "Every mask value above 0 is foreground.", panel="Segmentation"
    )
    ignore_index: int = option(
        255, "The mask value left out of loss and metrics.", panel="Segmentation"
    )

    def validate(self) -> SegmentationOptions:
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_choice("loss", self.loss, LOSSES)
        if not isinstance(self.ignore_index, int) or not 0 <= self.ignore_index <= 65535:
            raise ConfigError(
                f"--ignore-index must be between 0 and 65535, got {self.ignore_index}"
            )
        return self
