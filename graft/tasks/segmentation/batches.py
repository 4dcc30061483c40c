"""Segmentation data as batches: images with their masks for training and validation, images
alone (with their original size) for prediction.

Every image is first brought to the model's working scale (:class:`Scale`): its shorter side
resized to ``short_side`` pixels, or kept at its own resolution (``short_side`` None: large
scenes and slides, segmented by tiles). Training then draws random crops of ``crop`` pixels
from a randomly rescaled copy (joint image-and-mask augmentation of
:mod:`graft.data.dense_transforms`, on torchvision.transforms.v2); validation reads the whole
image at the working scale, padded to a multiple of 32 (masks with the ignore index). A batch of
crops is stacked; whole images of different sizes are padded to the largest of the batch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from graft.data.dense_transforms import (
    segmentation_eval_transform,
    segmentation_sample,
    segmentation_train_transform,
)
from graft.data.images import open_rgb

#: Random rescaling of training images, relative to the working scale, by ``--augment``
#: preset: ``none`` crops only; ``light`` rescales by 0.5-2x and flips; ``strong`` also
#: distorts colours (the recipe of DeepLab and mmsegmentation: ratio 0.5-2.0, flip,
#: photometric distortion).
SCALES = {"none": (1.0, 1.0), "light": (0.5, 2.0), "strong": (0.5, 2.0)}


@dataclass(frozen=True)
class Scale:
    """How a segmentation model sees images.

    Attributes:
        crop: side of the square training crops (``--image-size``).
        short_side: the shorter side every image is resized to, or None to keep each image's
            own resolution.
        tile: side of the square tiles of prediction (an image larger is cut into tiles).
        overlap: pixels neighbouring tiles share.
        ignore_index: the mask value left out of the loss and metrics (padding gets it).
    """

    crop: int
    short_side: int | None
    tile: int
    overlap: int
    ignore_index: int = 255

    def to_dict(self) -> dict[str, Any]:
        return {
            "crop": self.crop,
            "short_side": self.short_side,
            "tile": self.tile,
            "overlap": self.overlap,
            "ignore_index": self.ignore_index,
        }


class RandomScale(v2.Transform):
    """Rescales image and mask together by a factor drawn from ``scale`` (masks by nearest
    neighbour): the random rescaling of images kept at their own resolution."""

    def __init__(self, scale: tuple[float, float]):
        super().__init__()
        self.scale = scale

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        sized = (tv_tensors.Image, tv_tensors.Mask)
        first = next(x for x in flat_inputs if isinstance(x, sized))
        height, width = TF.get_size(first)
        factor = random.uniform(*self.scale)
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask):
            return inpt
        return TF.resize(inpt, params["size"], antialias=True)


def train_transform(scale: Scale, mean: Sequence[float], std: Sequence[float], augment: str):
    """The joint augmentation of training crops (see :data:`SCALES`)."""
    low, high = SCALES[augment]
    flip = 0.0 if augment == "none" else 0.5
    photometric = augment == "strong"
    if scale.short_side is not None:
        ratio = scale.short_side / scale.crop
        return segmentation_train_transform(
            scale.crop,
            mean,
            std,
            scale=(low * ratio, high * ratio),
            hflip=flip,
            photometric=photometric,
            ignore_index=scale.ignore_index,
        )
    fill = {tv_tensors.Mask: scale.ignore_index, "others": 0}
    steps: list[Any] = [v2.ToImage(), RandomScale((low, high))]
    steps += [
        v2.RandomCrop(scale.crop, pad_if_needed=True, fill=fill),
        v2.RandomHorizontalFlip(flip),
    ]
    if photometric:
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    dtypes = {tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None}
    return v2.Compose([*steps, v2.ToDtype(dtypes, scale=True), v2.Normalize(list(mean), list(std))])


def eval_transform(scale: Scale, mean: Sequence[float], std: Sequence[float]):
    """Validation: the whole image at the working scale, padded to a multiple of 32."""
    return segmentation_eval_transform(
        scale.short_side, mean, std, multiple=32, ignore_index=scale.ignore_index
    )


def image_transform(scale: Scale, mean: Sequence[float], std: Sequence[float]):
    """Prediction: the image alone at the working scale, normalised (not padded: tiling pads)."""
    steps: list[Any] = [v2.ToImage()]
    if scale.short_side is not None:
        steps.append(v2.Resize(scale.short_side))
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


class MaskedImages(Dataset):
    """Images and their masks (:class:`graft.tasks.segmentation.read.SegmentationData`) through a
    joint transform: ``(image [3, h, w] float, mask [h, w] int64)`` each."""

    def __init__(self, data: Any, transform: Any):
        self.data = data
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image, mask = segmentation_sample(
            open_rgb(self.data.images[index]), self.data.load_mask(index)
        )
        return self.transform(image, mask)


class Images(Dataset):
    """Images to predict: ``((image [3, h, w] at the working scale, (height, width) of the
    original), -1)`` each."""

    def __init__(self, items: list[str], transform: Any):
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image = open_rgb(self.items[index])
        return (self.transform(image), (image.height, image.width)), -1


@dataclass
class PixelBatch:
    """Images to predict, each at the working scale (sizes differ), with each original's
    ``(height, width)``."""

    images: list[torch.Tensor]
    sizes: list[tuple[int, int]]

    def to(self, device: torch.device) -> PixelBatch:
        return PixelBatch([image.to(device) for image in self.images], self.sizes)

    def __len__(self) -> int:
        return len(self.images)


class SegmentationCollate:
    """Batches of :class:`MaskedImages` (images and masks padded to the largest of the batch,
    masks with the ignore index) or of :class:`Images` (a :class:`PixelBatch`). Picklable."""

    def __init__(self, ignore_index: int = 255):
        self.ignore_index = ignore_index

    def __call__(self, batch: list):
        first, second = batch[0]
        if not isinstance(second, torch.Tensor):
            images, sizes = zip(*(item for item, _ in batch), strict=True)
            return PixelBatch(list(images), list(sizes)), None
        height = max(image.shape[-2] for image, _ in batch)
        width = max(image.shape[-1] for image, _ in batch)
        images = torch.stack([_pad(image, height, width, 0) for image, _ in batch])
        masks = torch.stack([_pad(mask, height, width, self.ignore_index) for _, mask in batch])
        return images, masks


def _pad(tensor: torch.Tensor, height: int, width: int, value: int) -> torch.Tensor:
    padding = (0, width - tensor.shape[-1], 0, height - tensor.shape[-2])
    if not any(padding):
        return torch.as_tensor(tensor)
    return F.pad(torch.as_tensor(tensor), padding, value=value)


def class_pixels(data: Any, limit: int = 500, seed: int = 0) -> np.ndarray:
    """Pixels of each class in the masks of ``data`` (at most ``limit`` of them, drawn at
    random): the class frequencies that weigh the loss and that the summary reports."""
    count = len(data.classes)
    chosen = np.arange(len(data))
    if len(chosen) > limit:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, limit, replace=False))
    totals = np.zeros(count, dtype=np.int64)
    for index in chosen:
        mask = np.asarray(data.load_mask(int(index))).reshape(-1)
        totals += np.bincount(mask[mask < count].astype(np.int64), minlength=count)[:count]
    return totals


__all__ = [
    "Images",
    "MaskedImages",
    "PixelBatch",
    "Scale",
    "SegmentationCollate",
    "class_pixels",
    "eval_transform",
    "image_transform",
    "train_transform",
]
