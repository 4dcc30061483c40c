"""Segmentation data on Penn-Fudan: COCO RLE rendered to the same masks as PedMasks, index,
palette and colour-coded masks read to the same arrays, and every bad mask named by file."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graft.errors import ConfigError, DataError
from graft.tasks.segmentation.read import (
    SegmentationData,
    read_class_file,
    read_segmentation,
    read_segmentation_splits,
)
from tests.conftest import SHARED

PENNFUDAN = SHARED / "pennfudan"
STEMS = ("FudanPed00001", "FudanPed00046", "PennPed00010", "PennPed00086")
COLORS = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]
NAMES = ["background", "near", "middle", "far"]


@pytest.fixture(scope="module", autouse=True)
def _pennfudan():
    if not (PENNFUDAN / "PedMasks").is_dir():
        pytest.skip(f"shared dataset {PENNFUDAN} is not available")


def ped_mask(stem: str) -> np.ndarray:
    return np.asarray(Image.open(PENNFUDAN / "PedMasks" / f"{stem}_mask.png"))


def class_mask(stem: str) -> np.ndarray:
    """A 4-class mask from a Penn-Fudan instance mask (instance k is class min(k, 3)) with a
    4-pixel border of the ignore index 255."""
    mask = np.minimum(ped_mask(stem), 3).astype(np.uint8)
    mask[:4], mask[-4:], mask[:, :4], mask[:, -4:] = 255, 255, 255, 255
    return mask


def make_folder(root: Path, encode, stems=STEMS, images="images", masks="masks") -> Path:
    """``root/images`` (links to Penn-Fudan photos) and ``root/masks`` written by ``encode``."""
    (root / images).mkdir(parents=True)
    (root / masks).mkdir(parents=True)
    for stem in stems:
        (root / images / f"{stem}.png").symlink_to(PENNFUDAN / "PNGImages" / f"{stem}.png")
        encode(class_mask(stem)).save(root / masks / f"{stem}.png")
    return root


def as_palette(mask: np.ndarray) -> Image.Image:
    image = Image.fromarray(mask, mode="P")
    palette = [c for color in COLORS for c in color] + [9, 9, 9] * 251 + [224, 224, 192]
    image.putpalette(palette)
    return image


def as_rgb(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(COLORS, dtype=np.uint8)[np.where(mask == 255, 0, mask)])


def test_coco_rle_masks_render_exactly_to_pedmasks():
    coco = read_segmentation(PENNFUDAN / "annotations.json", binary=True)
    folder = read_segmentation(PENNFUDAN, binary=True, classes=["background", "person"])
    assert len(coco) == len(folder) == 170
    assert coco.classes == folder.classes == ["background", "person"]
    assert coco.images == folder.images and coco.sizes == folder.sizes
    assert folder.masks[0] == str(PENNFUDAN.resolve() / "PedMasks" / "FudanPed00001_mask.png")
    different = 0
    for i in range(len(coco)):
        rendered = coco.load_mask(i)
        assert rendered.dtype == np.uint8
        expected = (ped_mask(Path(coco.images[i]).stem) > 0).astype(np.uint8)
        different += int((rendered != expected).sum())
        np.testing.assert_array_equal(folder.load_mask(i), expected)
    assert different == 0  # the README's "pixel-identical" holds exactly


def test_coco_multiclass_and_splits():
    train, val, test = read_segmentation_splits(PENNFUDAN / "annotations_train.json")
    assert (len(train), val, test) == (120, None, None)
    train, val, test = read_segmentation_splits(PENNFUDAN)  # PNGImages + PedMasks: no splits
    assert (len(train), val, test) == (170, None, None) and train.classes == ["0", *"12345678"]
    coco = read_segmentation(PENNFUDAN / "annotations_val.json")
    assert coco.classes == ["background", "person"] and len(coco) == 50


@pytest.mark.parametrize("encode", [lambda m: Image.fromarray(m, mode="L"), as_palette])
def test_index_and_palette_masks_read_as_their_indices(tmp_path, encode):
    data = read_segmentation(make_folder(tmp_path, encode), classes=NAMES)
    assert len(data) == 4 and data.classes == NAMES and data.ignore_index == 255
    for i, stem in enumerate(STEMS):
        assert Path(data.images[i]).stem == stem
        mask = data.load_mask(i)
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, class_mask(stem))  # ignore border kept as 255


def test_index_masks_without_classes_name_them_by_value(tmp_path):
    data = read_segmentation(make_folder(tmp_path, lambda m: Image.fromarray(m)))
    assert data.classes == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "classes.csv",
            "name,r,g,b\n"
            + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in zip(NAMES, COLORS, strict=True)),
        ),
        (
            "label_colors.txt",
            "".join(f"{r} {g} {b}\t{n}\n" for n, (r, g, b) in zip(NAMES, COLORS, strict=True)),
        ),
        ("classes.json", json.dumps({n: list(c) for n, c in zip(NAMES, COLORS, strict=True)})),
    ],
)
def test_rgb_masks_with_a_class_file_read_to_the_same_indices(tmp_path, name, text):
    folder = make_folder(tmp_path, as_rgb)
    (folder / name).write_text(text)
    assert read_class_file(folder / name) == (NAMES, COLORS)
    data = read_segmentation(folder)
    assert data.classes == NAMES and data.colors == COLORS
    for i, stem in enumerate(STEMS):
        expected = class_mask(stem)
        np.testing.assert_array_equal(data.load_mask(i), np.where(expected == 255, 0, expected))


def test_unknown_colour_is_named(tmp_path):
    folder = make_folder(tmp_path, as_rgb)
    (folder / "classes.csv").write_text("background,0,0,0\nnear,128,0,0\nmiddle,0,128,0\n")
    unknown = r"masks/FudanPed00046\.png: colour\(s\) \(128, 128, 0\) are not in"
    with pytest.raises(DataError, match=unknown):
        read_segmentation(folder)
    (folder / "classes.csv").unlink()
    with pytest.raises(DataError, match="a colour mask, but no class colours are known"):
        read_segmentation(folder)


def test_size_mismatch_is_named_with_both_sizes(tmp_path, caplog):
    folder = make_folder(tmp_path, lambda m: Image.fromarray(m))
    Image.fromarray(class_mask(STEMS[2])).resize((100, 80)).save(
        folder / "masks" / f"{STEMS[2]}.png"
    )
    with pytest.raises(DataError) as error:
        read_segmentation(folder, classes=NAMES)
    width, height = Image.open(PENNFUDAN / "PNGImages" / f"{STEMS[2]}.png").size
    assert str(error.value) == (
        f"{folder / 'masks' / STEMS[2]}.png: the mask is 100x80 but its image {STEMS[2]}.png "
        f"is {width}x{height}"
    )


def test_values_outside_the_classes_are_named(tmp_path, caplog):
    folder = make_folder(tmp_path, lambda m: Image.fromarray(m))
    with pytest.raises(DataError) as error, caplog.at_level(logging.WARNING, logger="graft"):
        read_segmentation(folder, classes=["background", "person"])
    assert str(error.value).startswith(
        f"{folder / 'masks' / STEMS[0]}.png: value(s) 2 are not among the 2 classes (0-1) nor "
        "the ignore index 255"
    )
    assert str(error.value).endswith("(and 3 more masks with problems, logged)")
    assert f"{STEMS[3]}.png: value(s) 2, 3 are not among" in caplog.text


def test_binary_reads_instance_masks_as_foreground(tmp_path):
    folder = make_folder(tmp_path, lambda m: Image.fromarray(np.where(m == 255, 0, m * 40)))
    data = read_segmentation(folder, binary=True)
    assert data.classes == ["background", "foreground"]
    np.testing.assert_array_equal(
        data.load_mask(3), (np.minimum(ped_mask(STEMS[3]), 3) > 0) & (class_mask(STEMS[3]) != 255)
    )
    with pytest.raises(ConfigError, match="binary masks have 2 classes"):
        read_segmentation(folder, binary=True, classes=NAMES)


def test_masks_of_only_0_and_255_are_warned_about(tmp_path, caplog):
    folder = make_folder(
        tmp_path,
        lambda m: Image.fromarray(np.where(m > 0, 255, 0).astype(np.uint8)),
        stems=STEMS[:1],
    )
    with caplog.at_level(logging.WARNING, logger="graft"):
        data = read_segmentation(folder)
    assert data.classes == ["0"] and "read them with binary=True" in caplog.text
    assert set(np.unique(read_segmentation(folder, binary=True).load_mask(0))) == {0, 1}


def test_ignore_index_that_is_a_class_is_an_error(tmp_path):
    folder = make_folder(tmp_path, lambda m: Image.fromarray(m))
    with pytest.raises(ConfigError, match="the ignore index 2 is also the index of class 'middle'"):
        read_segmentation(folder, classes=NAMES, ignore_index=2)


def test_images_without_masks_are_skipped_and_named(tmp_path):
    folder = make_folder(
        tmp_path, lambda m: Image.fromarray(m), images="photos", masks="photos_masks"
    )
    (folder / "photos_masks" / f"{STEMS[1]}.png").unlink()
    data = read_segmentation(folder, classes=NAMES)
    assert len(data) == 3
    assert data.skipped == [
        (
            str(folder / "photos" / f"{STEMS[1]}.png"),
            f"no mask of the same name in {folder / 'photos_masks'}",
        )
    ]


def test_split_layouts(tmp_path):
    index = lambda m: Image.fromarray(m)  # noqa: E731
    make_folder(tmp_path / "a" / "train", index, stems=STEMS[:3])
    make_folder(tmp_path / "a" / "val", index, stems=STEMS[3:])
    train, val, test = read_segmentation_splits(tmp_path / "a")
    assert (len(train), len(val), test) == (3, 1, None) and val.classes == train.classes == [
        "0",
        "1",
        "2",
        "3",
    ]
    assert len(read_segmentation(tmp_path / "a")) == 4  # all splits together
    make_folder(tmp_path / "b", index, stems=STEMS[:2], images="images/train", masks="masks/train")
    make_folder(tmp_path / "b", index, stems=STEMS[2:], images="images/val", masks="masks/val")
    train, val, _ = read_segmentation_splits(tmp_path / "b", classes=NAMES)
    assert [Path(p).stem for p in val.images] == list(STEMS[2:])
    np.testing.assert_array_equal(val.load_mask(1), class_mask(STEMS[3]))


def test_coco_crowd_is_ignored_and_later_instances_paint_over(tmp_path):
    width, height = Image.open(PENNFUDAN / "PNGImages" / f"{STEMS[0]}.png").size
    square = lambda x, y, s: [[x, y, x + s, y, x + s, y + s, x, y + s]]  # noqa: E731
    crowd = np.zeros((height, width), dtype=np.uint8)
    crowd[100:200, 100:200] = 1
    # an uncompressed RLE (column-major run lengths), as COCO writes crowd regions
    flat = crowd.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    annotations = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [10, 10, 50, 50],
            "segmentation": square(10, 10, 50),
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 2,
            "bbox": [40, 40, 50, 50],
            "segmentation": square(40, 40, 50),
        },
        {
            "id": 3,
            "image_id": 1,
            "category_id": 2,
            "bbox": [100, 100, 100, 100],
            "iscrowd": 1,
            "segmentation": {"size": [height, width], "counts": counts},
        },
        {
            "id": 4,
            "image_id": 1,
            "category_id": 1,
            "bbox": [150, 150, 20, 20],
            "segmentation": square(150, 150, 20),
        },
    ]
    doc = {
        "images": [
            {
                "id": 1,
                "file_name": str(PENNFUDAN / "PNGImages" / f"{STEMS[0]}.png"),
                "width": width,
                "height": height,
            }
        ],
        "annotations": annotations,
        "categories": [{"id": 2, "name": "bicycle"}, {"id": 1, "name": "person"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    data = read_segmentation(tmp_path / "c.json")
    assert data.classes == ["background", "person", "bicycle"]
    mask = data.load_mask(0)
    assert mask[20, 20] == 1 and mask[45, 45] == 2 and mask[80, 80] == 2  # 2 painted over 1
    assert mask[120, 120] == 255 and mask[160, 160] == 1  # crowd ignored, person over crowd
    assert mask[5, 5] == 0 and (mask == 255).sum() == 100 * 100 - 20 * 20

    assert np.array_equal(pickle.loads(pickle.dumps(data)).load_mask(0), mask)


def test_subset_and_content_hash(tmp_path):
    folder = make_folder(tmp_path, lambda m: Image.fromarray(m))
    data = read_segmentation(folder, classes=NAMES)
    part = data.subset([3, 1])
    assert isinstance(part, SegmentationData) and [Path(p).stem for p in part.images] == [
        STEMS[3],
        STEMS[1],
    ]
    np.testing.assert_array_equal(part.load_mask(0), data.load_mask(3))
    before = data.content_hash()
    assert before == read_segmentation(folder, classes=NAMES).content_hash()
    assert before != part.content_hash()
    Image.fromarray(np.zeros_like(class_mask(STEMS[0]))).save(folder / "masks" / f"{STEMS[0]}.png")
    assert before != read_segmentation(folder, classes=NAMES).content_hash()
