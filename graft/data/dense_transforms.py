"""Joint augmentation of an image with its boxes and masks, on torchvision.transforms.v2.

A sample is ``(image, target)``: for detection, :func:`detection_sample` gives a
``tv_tensors.Image`` and a dict with ``boxes`` (``tv_tensors.BoundingBoxes``, XYXY pixel
edges), ``labels``, ``iscrowd`` and, for instance masks, ``masks`` (``tv_tensors.Mask``
``[n, H, W]``); for segmentation, :func:`segmentation_sample` gives the image and a
``tv_tensors.Mask`` ``[H, W]`` of class indices. Every geometric transform moves boxes and masks
with the pixels (masks with nearest-neighbour resampling); padding fills masks with the ignore
index. Images come out float32, scaled to [0, 1] and normalised by the backbone's mean and std
when given; detection masks stay uint8, segmentation masks come out int64.

:func:`size_buckets` batches images of similar aspect ratio together, so that a batch of
differently sized detection images pads little (as torchvision's GroupedBatchSampler does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from graft.data.annotations.target import DetectionTarget
from graft.errors import DataError

#: Shorter sides drawn from in multi-scale detection training (torchvision's references).
DETECTION_TRAIN_SIZES = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)


def detection_sample(
    image: Any, target: DetectionTarget, *, masks: bool = True
) -> tuple[tv_tensors.Image, dict[str, torch.Tensor]]:
    """``image`` (RGB, as :func:`~graft.data.images.open_rgb` gives it: PIL, array
    ``[H, W, 3]`` or tensor ``[3, H, W]``) and ``target`` as the transforms take them;
    ``masks``: decode the instance masks when the target has them.

    Raises:
        DataError: the image's size is not the target's.
    """
    image = F.to_image(image)
    height, width = image.shape[-2:]
    if (height, width) != (target.height, target.width):
        raise DataError(
            f"the image is {width}x{height} but its annotation is for {target.width}x"
            f"{target.height}"
        )
    out: dict[str, torch.Tensor] = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.as_tensor(target.boxes, dtype=torch.float32),
            format="XYXY",
            canvas_size=(height, width),
        ),
        "labels": torch.as_tensor(target.labels, dtype=torch.int64),
        "iscrowd": torch.as_tensor(target.iscrowd, dtype=torch.int64),
    }
    if masks and target.masks is not None:
        out["masks"] = tv_tensors.Mask(torch.from_numpy(target.decode_masks()))
    return image, out


def segmentation_sample(image: Any, mask: np.ndarray) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """``image`` and its class-index ``mask`` ``[H, W]`` as the transforms take them.

    Raises:
        DataError: the mask's size is not the image's.
    """
    image = F.to_image(image)
    mask = tv_tensors.Mask(torch.as_tensor(np.asarray(mask)))
    if tuple(mask.shape[-2:]) != tuple(image.shape[-2:]):
        raise DataError(
            f"the mask is {mask.shape[-1]}x{mask.shape[-2]} but the image is "
            f"{image.shape[-1]}x{image.shape[-2]}"
        )
    return image, mask


def detection_train_transform(
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    *,
    min_sizes: Sequence[int] = DETECTION_TRAIN_SIZES,
    max_size: int = 1333,
    hflip: float = 0.5,
    photometric: bool = True,
    crop: bool = False,
) -> v2.Compose:
    """Detection training augmentation: photometric distortion, an optional SSD-style random
    IoU crop (boxes then recomputed from the masks, when there are masks), multi-scale resize
    (shorter side drawn from ``min_sizes``, longer side at most ``max_size``), horizontal flip;
    boxes left with no area are removed with their labels, masks and crowd flags."""
    steps: list[Any] = [v2.ToImage()]
    if photometric:
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    if crop:
        steps += [v2.RandomIoUCrop(), BoxesFromMasks()]
    steps += [
        v2.RandomShortestSize(min_size=list(min_sizes), max_size=max_size),
        v2.RandomHorizontalFlip(hflip),
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(labels_getter=labels_and_crowd),
    ]
    return v2.Compose(steps + _to_float(mean, std, mask_dtype=None))


def detection_eval_transform(
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    *,
    min_size: int = 800,
    max_size: int = 1333,
) -> v2.Compose:
    """Detection evaluation: resize keeping the aspect ratio (shorter side ``min_size``,
    longer side at most ``max_size``), then to float and normalised."""
    steps: list[Any] = [v2.ToImage(), v2.Resize(min_size, max_size=max_size)]
    return v2.Compose(steps + _to_float(mean, std, mask_dtype=None))


def segmentation_train_transform(
    size: int | tuple[int, int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    *,
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: float = 0.5,
    photometric: bool = True,
    ignore_index: int = 255,
) -> v2.Compose:
    """Segmentation training augmentation: random scale (shorter side ``scale`` times the
    crop's longer side), random crop to ``size`` (``(height, width)`` or a square), padding
    images with 0 and masks with ``ignore_index`` where the image is smaller, horizontal flip,
    photometric distortion."""
    crop = (size, size) if isinstance(size, int) else tuple(size)
    base = max(crop)
    steps: list[Any] = [
        v2.ToImage(),
        v2.RandomResize(max(1, round(scale[0] * base)), max(2, round(scale[1] * base) + 1)),
        v2.RandomCrop(crop, pad_if_needed=True, fill=_fill(ignore_index)),
        v2.RandomHorizontalFlip(hflip),
    ]
    if photometric:
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    return v2.Compose(steps + _to_float(mean, std, mask_dtype=torch.int64))


def segmentation_eval_transform(
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    *,
    max_size: int | None = None,
    multiple: int = 32,
    ignore_index: int = 255,
) -> v2.Compose:
    """Segmentation evaluation: resize keeping the aspect ratio (shorter side ``size``; None:
    as it is), then pad right and bottom to a multiple of ``multiple`` (encoders halve the
    size several times), masks padded with ``ignore_index``."""
    steps: list[Any] = [v2.ToImage()]
    if size is not None:
        steps.append(v2.Resize(size, max_size=max_size))
    steps.append(PadToMultiple(multiple, ignore_index))
    return v2.Compose(steps + _to_float(mean, std, mask_dtype=torch.int64))


def _fill(ignore_index: int) -> dict[Any, int]:
    return {tv_tensors.Mask: ignore_index, "others": 0}


def _to_float(
    mean: Sequence[float] | None, std: Sequence[float] | None, mask_dtype: torch.dtype | None
) -> list[Any]:
    dtypes = {tv_tensors.Image: torch.float32, tv_tensors.Mask: mask_dtype, "others": None}
    steps: list[Any] = [v2.ToDtype(dtypes, scale=True)]
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is not None:
        steps.append(v2.Normalize(list(mean), list(std)))
    return steps


def labels_and_crowd(sample: Any) -> tuple[torch.Tensor, ...]:
    """What :class:`~torchvision.transforms.v2.SanitizeBoundingBoxes` removes along with a
    box: its label and, when present, its crowd flag (masks it finds itself)."""
    target = sample[1] if isinstance(sample, tuple | list) else sample
    return tuple(target[key] for key in ("labels", "iscrowd") if key in target)


class BoxesFromMasks:
    """Sets each box to the extent of its instance mask (after a crop, a clipped box can be
    larger than what is left of its object); an empty mask gives an empty box, which
    :class:`~torchvision.transforms.v2.SanitizeBoundingBoxes` then removes."""

    def __call__(self, *inputs: Any) -> Any:
        image, target = inputs if len(inputs) > 1 else inputs[0]
        if "masks" not in target:
            return image, target
        target = dict(target)
        boxes = mask_extents(target["masks"])
        target["boxes"] = tv_tensors.wrap(boxes.to(target["boxes"].dtype), like=target["boxes"])
        return image, target


def mask_extents(masks: torch.Tensor) -> torch.Tensor:
    """``[n, 4]`` XYXY pixel-edge boxes around ``[n, H, W]`` masks (zeros for an empty mask)."""
    height, width = masks.shape[-2:]
    rows, cols = masks.bool().any(dim=2), masks.bool().any(dim=1)
    y1 = rows.int().argmax(dim=1)
    y2 = height - rows.flip(1).int().argmax(dim=1)
    x1 = cols.int().argmax(dim=1)
    x2 = width - cols.flip(1).int().argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    boxes[~rows.any(dim=1)] = 0.0
    return boxes


class PadToMultiple(v2.Transform):
    """Pads right and bottom so that height and width are multiples of ``multiple``: images with
    0, masks with ``ignore_index`` (boxes are unmoved)."""

    def __init__(self, multiple: int, ignore_index: int = 255):
        super().__init__()
        self.multiple = multiple
        self.ignore_index = ignore_index

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        sized = (tv_tensors.Image, tv_tensors.Mask, torch.Tensor)
        first = next(x for x in flat_inputs if isinstance(x, sized) and x.ndim >= 2)
        height, width = F.get_size(first)
        return {"padding": [0, 0, -width % self.multiple, -height % self.multiple]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not any(params["padding"]):
            return inpt
        fill = self.ignore_index if isinstance(inpt, tv_tensors.Mask) else 0
        return F.pad(inpt, params["padding"], fill=fill)


def size_buckets(
    sizes: Sequence[tuple[int, int]],
    batch_size: int,
    seed: int,
    *,
    bins: int = 3,
    drop_last: bool = False,
) -> list[list[int]]:
    """Batches of image indices whose aspect ratios are alike, in a seeded random order.

    ``sizes``: ``(height, width)`` of each image. Aspect ratios ``w / h`` fall into ``2 * bins
    + 2`` groups split at ``2 ** linspace(-1, 1, 2 * bins + 1)`` (as torchvision's detection
    references quantise them); each group is shuffled and cut into full batches; what is left
    of the groups is sorted by aspect ratio and batched together, so every image comes exactly
    once (the last, smaller batch is dropped with ``drop_last``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    shape = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    ratios = np.log2(shape[:, 1] / shape[:, 0])
    edges = np.linspace(-1.0, 1.0, 2 * bins + 1) if bins > 0 else np.zeros(1)
    groups = np.digitize(ratios, edges)
    rng = np.random.default_rng(seed)
    batches: list[list[int]] = []
    leftovers: list[int] = []
    for group in np.unique(groups):
        members = rng.permutation(np.flatnonzero(groups == group))
        full = len(members) // batch_size * batch_size
        batches += [members[i : i + batch_size].tolist() for i in range(0, full, batch_size)]
        leftovers += members[full:].tolist()
    leftovers.sort(key=lambda i: ratios[i])
    for start in range(0, len(leftovers), batch_size):
        batch = leftovers[start : start + batch_size]
        if len(batch) == batch_size or not drop_last:
            batches.append(batch)
    return [batches[i] for i in rng.permutation(len(batches))]
