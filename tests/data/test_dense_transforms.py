"""Joint augmentation on Penn-Fudan: boxes stay on their instance masks through flips, scales and
crops; segmentation images and masks stay aligned; batches group alike aspect ratios."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from graft.data.dense_transforms import (
    detection_eval_transform,
    detection_sample,
    detection_train_transform,
    mask_extents,
    segmentation_eval_transform,
    segmentation_sample,
    segmentation_train_transform,
    size_buckets,
)
from graft.errors import DataError
from graft.tasks.detection import DetectionTarget, read_detection
from tests.conftest import SHARED

PENNFUDAN = SHARED / "pennfudan"


@pytest.fixture(scope="module")
def crowded():
    """The three validation images with the most people (4 to 6), as transform samples."""
    if not (PENNFUDAN / "annotations_val.json").is_file():
        pytest.skip(f"shared dataset {PENNFUDAN} is not available")
    data = read_detection(PENNFUDAN / "annotations_val.json")
    order = sorted(range(len(data)), key=lambda i: -len(data.targets[i]))[:3]
    return [detection_sample(Image.open(data.images[i]), data.targets[i]) for i in order]


@pytest.mark.parametrize("crop", [False, True])
def test_detection_boxes_stay_on_their_masks(crowded, crop):
    transform = detection_train_transform(min_sizes=(320, 416, 512), max_size=800, crop=crop)
    for seed in range(6):
        for image, target in crowded:
            torch.manual_seed(seed)
            out, result = transform(image, target)
            n = len(result["boxes"])
            assert out.dtype == torch.float32 and out.shape[0] == 3
            assert (
                result["masks"].shape == (n, *out.shape[1:])
                and result["masks"].dtype == torch.uint8
            )
            assert len(result["labels"]) == len(result["iscrowd"]) == n
            if not crop:
                assert n == len(target["boxes"])
                # the shorter side is drawn (rounded down), or the longer side is capped
                assert (
                    min(abs(min(out.shape[1:]) - s) for s in (320, 416, 512)) <= 1
                    or max(out.shape[1:]) == 800
                )
            else:
                assert n >= 1 and (result["masks"].flatten(1).sum(1) > 0).all()
            # the boxes are the masks' extents, up to resampling
            assert (result["boxes"] - mask_extents(result["masks"])).abs().max() <= 2


def test_detection_flip_mirrors_image_boxes_and_masks_exactly(crowded):
    image, target = crowded[0]
    height, width = image.shape[1:]
    transform = detection_train_transform(
        min_sizes=(min(height, width),), hflip=1.0, photometric=False
    )
    out, result = transform(image, target)
    torch.testing.assert_close(out, image.flip(-1).float() / 255)
    assert torch.equal(result["masks"], target["masks"].flip(-1))
    boxes = target["boxes"]
    mirrored = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
    torch.testing.assert_close(result["boxes"].as_subclass(torch.Tensor), mirrored)
    torch.testing.assert_close(mask_extents(result["masks"]), mirrored)


def test_detection_eval_keeps_the_aspect_and_normalises(crowded):
    image, target = crowded[1]
    height, width = image.shape[1:]
    out, result = detection_eval_transform(
        (0.5, 0.4, 0.3), (0.2, 0.2, 0.2), min_size=400, max_size=600
    )(image, target)
    new_height, new_width = out.shape[1:]
    assert min(new_height, new_width) == 400 or max(new_height, new_width) == 600
    assert new_width / new_height == pytest.approx(width / height, rel=0.01)
    torch.testing.assert_close(
        result["boxes"].as_subclass(torch.Tensor),
        target["boxes"] * new_width / width,
        atol=1.5,
        rtol=0,
    )
    constant = torch.full((3, 50, 80), 255, dtype=torch.uint8)
    empty = DetectionTarget(np.zeros((0, 4)), np.zeros(0), 80, 50)
    out, _ = detection_eval_transform((0.5, 0.4, 0.3), (0.2, 0.2, 0.2), min_size=50)(
        *detection_sample(constant, empty)
    )
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([2.5, 3.0, 3.5]))


def test_negative_images_pass_through_detection_training():
    image = torch.randint(0, 255, (3, 120, 160), dtype=torch.uint8)
    empty = DetectionTarget(np.zeros((0, 4)), np.zeros(0), 160, 120, masks=[])
    for crop in (False, True):
        out, result = detection_train_transform(min_sizes=(100,), crop=crop)(
            *detection_sample(image, empty)
        )
        assert out.shape[1:] == (100, 133) or crop
        assert len(result["boxes"]) == 0 and result["masks"].shape[0] == 0


def test_transforms_pickle_for_loader_workers():
    for transform in (
        detection_train_transform((0.5,) * 3, (0.2,) * 3, crop=True),
        detection_eval_transform(),
        segmentation_train_transform(64),
        segmentation_eval_transform(64),
    ):
        assert type(pickle.loads(pickle.dumps(transform))) is type(transform)


def test_samples_check_sizes():
    empty = DetectionTarget(np.zeros((0, 4)), np.zeros(0), 160, 120)
    with pytest.raises(DataError, match="the image is 100x120 but its annotation is for 160x120"):
        detection_sample(torch.zeros(3, 120, 100, dtype=torch.uint8), empty)
    with pytest.raises(DataError, match="the mask is 99x120 but the image is 100x120"):
        segmentation_sample(
            torch.zeros(3, 120, 100, dtype=torch.uint8), np.zeros((120, 99), np.uint8)
        )


@pytest.fixture(scope="module")
def coded():
    """A Penn-Fudan mask (person where above 0) and an image whose pixels encode it: 60 on
    background, 210 on people."""
    if not (PENNFUDAN / "PedMasks").is_dir():
        pytest.skip(f"shared dataset {PENNFUDAN} is not available")
    mask = (np.asarray(Image.open(PENNFUDAN / "PedMasks" / "FudanPed00046_mask.png")) > 0).astype(
        np.uint8
    )
    image = np.repeat((60 + 150 * mask)[..., None], 3, axis=2).astype(np.uint8)
    return segmentation_sample(image, mask)


def near_edge(mask: torch.Tensor, reach: int) -> torch.Tensor:
    """Pixels with another mask value within ``reach`` pixels."""
    values = mask[None, None].float()
    size = 2 * reach + 1
    highest = torch.nn.functional.max_pool2d(values, size, 1, reach)
    lowest = -torch.nn.functional.max_pool2d(-values, size, 1, reach)
    return (highest != lowest)[0, 0]


def test_segmentation_crops_keep_image_and_mask_aligned(coded):
    transform = segmentation_train_transform(256, scale=(0.3, 1.5), photometric=False)
    padded = 0
    for seed in range(12):
        torch.manual_seed(seed)
        image, mask = transform(*coded)
        assert (
            image.shape == (3, 256, 256) and mask.shape == (256, 256) and mask.dtype == torch.int64
        )
        assert set(mask.unique().tolist()) <= {0, 1, 255}
        pixels = (image[0] * 255).round()
        # padding is 0 in the image exactly where the mask holds the ignore index
        assert torch.equal(pixels == 0, mask == 255)
        padded += int((mask == 255).any())
        inside = mask != 255
        decoded = (pixels > 135).long()
        disagree = int(((decoded != mask) & inside).sum())
        # images resample bilinearly and masks by nearest pixel, so they differ along edges;
        # the mask moved by a pixel or two against the image disagrees more
        for shift in ((2, 0), (-2, 0), (0, 2), (0, -2), (1, 1)):
            moved = torch.roll(mask, shift, (0, 1))
            assert disagree < int(((decoded != moved) & inside & (moved != 255)).sum())
        away = (decoded != mask) & inside & ~near_edge(mask, 2)
        assert disagree <= 0.05 * inside.sum() and away.sum() <= 8
    assert padded > 0  # some draws were smaller than the crop and padded


def test_segmentation_eval_pads_to_a_multiple_with_the_ignore_index(coded):
    image, mask = segmentation_eval_transform(300, (0.5,) * 3, (0.5,) * 3, multiple=32)(*coded)
    height, width = mask.shape
    assert height % 32 == 0 and width % 32 == 0 and image.shape[1:] == mask.shape
    kept_height, kept_width = F.resize(coded[1], 300).shape
    assert (mask[kept_height:] == 255).all() and (mask[:, kept_width:] == 255).all()
    assert (mask[:kept_height, :kept_width] != 255).all()
    assert (image[:, kept_height:] == -1).all()  # 0 normalised by mean 0.5, std 0.5


def test_size_buckets_group_aspect_ratios():
    data = (
        read_detection(PENNFUDAN / "annotations.json")
        if PENNFUDAN.is_dir()
        else pytest.skip("no pennfudan")
    )
    sizes = data.sizes()
    ratios = np.log2([w / h for h, w in sizes])
    batches = size_buckets(sizes, 4, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(170))
    assert sum(len(b) != 4 for b in batches) <= 1
    assert size_buckets(sizes, 4, seed=0) == batches and size_buckets(sizes, 4, seed=1) != batches
    spread = np.mean([np.ptp(ratios[b]) for b in batches])
    shuffled = np.random.default_rng(0).permutation(170).reshape(-1, 5)
    assert spread < np.mean([np.ptp(ratios[b]) for b in shuffled]) / 3
    # with one split at square, portrait and landscape meet only in the leftover batch
    sizes = [(100, 50)] * 5 + [(50, 100)] * 6
    two = size_buckets(sizes, 4, seed=0, bins=0)
    assert [len({i < 5 for i in b}) for b in two if len(b) == 4] == [1, 1]
    assert [len(b) for b in two if len(b) != 4] == [3]  # one left of portrait, two of landscape
    assert [len(b) for b in size_buckets(sizes, 4, seed=0, bins=0, drop_last=True)] == [4, 4]
