"""Detection data as batches: images with their targets, and the order of training batches.

:class:`DetectionDataset` decodes an image and its objects (:class:`DetectionTarget`) and runs
the joint transforms of :mod:`graft.data.dense_transforms`; images stay float tensors in [0, 1]
(the detector normalises them) and keep their own sizes, so a batch is a list
(:func:`collate_detection`, :class:`ImageBatch`). Training images come resized by the
multi-scale transform, with crowd regions left out (a detector learns no crowd boxes, as
torchvision's references do); evaluation images come at their original size with every object,
crowd flags and decoded masks included, for the metrics.

:class:`SizeBucketSampler` batches training images of alike aspect ratio
(:func:`~graft.data.dense_transforms.size_buckets`) in an order that is a function of the seed
and the epoch only, so a resumed fit replays the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler
from torchvision.transforms.v2 import functional as F

from graft.data.annotations.target import DetectionTarget
from graft.data.dense_transforms import detection_sample, size_buckets
from graft.data.images import UnreadableImage, open_rgb
from graft.errors import DataError


class ImageBatch(list):
    """A list of image tensors (of different sizes) that moves to a device as a whole."""

    def to(self, device: Any) -> ImageBatch:
        return ImageBatch(image.to(device) for image in self)


class DetectionDataset(Dataset):
    """``(image, target)`` pairs of detection data, or ``(image, None)`` for paths alone.

    Args:
        images: image paths.
        targets: their objects (None: images to predict).
        transform: a joint transform of ``(image, target)`` (None: the image as it is).
        masks: decode instance masks into the targets.
        train: leave crowd regions out of the targets.
    """

    def __init__(
        self,
        images: Sequence[str],
        targets: Sequence[DetectionTarget] | None = None,
        transform: Any = None,
        masks: bool = False,
        train: bool = False,
    ):
        self.images, self.targets = list(images), targets
        self.transform, self.masks, self.train = transform, masks, train

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict | None]:
        path = self.images[index]
        try:
            image = open_rgb(path)
        except UnreadableImage as error:
            raise DataError(f"{path}: not a readable image ({error})") from None
        if self.targets is None:
            return F.to_dtype(F.to_image(image), torch.float32, scale=True), None
        target = self.targets[index]
        if self.train and target.iscrowd.any():
            target = target.select(target.iscrowd == 0)
        try:
            image, sample = detection_sample(image, target, masks=self.masks)
        except DataError as error:
            raise DataError(f"{path}: {error}") from None
        if self.transform is not None:
            image, sample = self.transform(image, sample)
        else:
            image = F.to_dtype(image, torch.float32, scale=True)
        return image.as_subclass(torch.Tensor), plain(sample)


def plain(sample: dict) -> dict[str, torch.Tensor]:
    """A target's tensors without their torchvision ``tv_tensors`` wrappers."""
    return {key: value.as_subclass(torch.Tensor) for key, value in sample.items()}


def collate_detection(batch: list[tuple]) -> tuple[ImageBatch, list | None]:
    """A list of ``(image, target)`` as ``(images, targets)`` lists (targets None without)."""
    images = ImageBatch(image for image, _ in batch)
    targets = [target for _, target in batch]
    return images, None if any(t is None for t in targets) else targets


class SizeBucketSampler(Sampler[list[int]]):
    """Batches of images of alike aspect ratio, reshuffled each epoch from ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch; the batches of an epoch are
    :func:`size_buckets` of the sizes with the seed ``seed * 1_000_003 + epoch``.
    """

    def __init__(self, sizes: Sequence[tuple[int, int]], batch_size: int, seed: int):
        self.sizes, self.batch_size, self.seed = list(sizes), batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        return size_buckets(self.sizes, self.batch_size, self.seed * 1_000_003 + self.epoch)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())
