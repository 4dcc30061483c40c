"""Detection data on Penn-Fudan: COCO read exactly, VOC and YOLO conversions read back to the
same boxes, the original PASCAL text boxes agree, and every broken annotation is named."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from graft.data.annotations.checks import image_size
from graft.data.dense_transforms import mask_extents
from graft.data.images import open_rgb
from graft.errors import DataError
from graft.tasks.detection import (
    REPORT_KEYS,
    DetectionData,
    detection_format,
    read_detection,
    read_detection_splits,
)
from graft.tasks.detection.task import DetectionTask
from tests.conftest import SHARED

PENNFUDAN = SHARED / "pennfudan"
ISSUES = [k for k in REPORT_KEYS if k not in ("images", "boxes", "negative_images")]


@pytest.fixture(scope="module")
def coco() -> DetectionData:
    if not (PENNFUDAN / "annotations.json").is_file():
        pytest.skip(f"shared dataset {PENNFUDAN} is not available")
    return read_detection(PENNFUDAN)


@pytest.fixture(scope="module")
def few(coco) -> DetectionData:
    """Ten Penn-Fudan images (both the Fudan and the Penn halves), 1 to 6 people each."""
    return coco.subset([0, 3, 20, 40, 73, 80, 100, 120, 150, 169])


def test_coco_reads_every_image_and_box(coco):
    assert detection_format(PENNFUDAN) == ("coco", PENNFUDAN.resolve() / "annotations.json")
    assert len(coco) == 170 and coco.report["boxes"] == 423
    assert coco.classes == ["person"] and coco.class_counts() == {"person": 423}
    assert coco.has_masks and coco.report["negative_images"] == 0
    assert all(coco.report[key] == 0 for key in ISSUES)
    assert coco.images[0] == str((PENNFUDAN / "PNGImages" / "FudanPed00001.png").resolve())
    # COCO [159, 181, 143, 250] -> [159, 181, 302, 431] (pixel edges)
    np.testing.assert_array_equal(
        coco.targets[0].boxes, [[159, 181, 302, 431], [419, 170, 535, 486]]
    )
    heights, widths = zip(*coco.sizes(), strict=True)
    assert (min(widths), max(widths), min(heights), max(heights)) == (253, 1017, 311, 581)


def test_coco_split_files(coco):
    train, val, test = read_detection_splits(PENNFUDAN)
    assert (len(train), train.report["boxes"]) == (120, 292)
    assert (len(val), val.report["boxes"]) == (50, 131)
    assert test is None and train.classes == val.classes == ["person"]
    assert not set(train.images) & set(val.images)
    assert set(train.images) | set(val.images) == set(coco.images)


def test_masks_decode_to_the_instances_of_pedmasks(coco):
    records = json.loads((PENNFUDAN / "annotations.json").read_text())
    values = {}
    for ann in records["annotations"]:
        values.setdefault(ann["image_id"], []).append(ann["instance_value"])
    for index in (0, 77, 169):
        target = coco.targets[index]
        masks = target.decode_masks()
        assert masks.shape == (len(target), target.height, target.width) and masks.dtype == np.uint8
        stem = Path(coco.images[index]).stem
        instances = np.asarray(Image.open(PENNFUDAN / "PedMasks" / f"{stem}_mask.png"))
        for mask, value in zip(masks, values[index + 1], strict=True):
            np.testing.assert_array_equal(mask, instances == value)
        # the COCO boxes are the masks' tight extents
        np.testing.assert_array_equal(mask_extents(torch.from_numpy(masks)), target.boxes)


def pascal_boxes(path: Path) -> list[tuple[int, int, int, int]]:
    """Boxes of a Penn-Fudan PASCAL-1.00 text file in pixel edges: its boxes are 1-based with
    the last pixel included, so (Xmin, Ymin) - (Xmax, Ymax) is [Xmin - 1, Ymin - 1, Xmax, Ymax]."""
    pattern = re.compile(r"Bounding box for object \d+ .*: \((\d+), (\d+)\) - \((\d+), (\d+)\)")
    boxes = []
    for match in pattern.finditer(path.read_text()):
        x1, y1, x2, y2 = map(int, match.groups())
        boxes.append((x1 - 1, y1 - 1, x2, y2))
    return boxes


def test_original_pascal_annotations_agree_with_coco_within_a_pixel(coco):
    # 419 of the 423 boxes agree within 1 px; PennPed00019, 21, 27 and 90 differ by 2-6 px
    # (their masks and hand-drawn boxes disagree), so they are not among these
    for index in (0, 1, 5, 30, 60, 80, 120, 160):
        stem = Path(coco.images[index]).stem
        boxes = pascal_boxes(PENNFUDAN / "Annotation" / f"{stem}.txt")
        assert len(boxes) == len(coco.targets[index])
        np.testing.assert_allclose(coco.targets[index].boxes, boxes, atol=1)


def write_voc(folder: Path, data: DetectionData) -> Path:
    """``data`` as a VOC folder: Annotations/*.xml (1-based boxes) and linked JPEGImages/."""
    (folder / "Annotations").mkdir(parents=True)
    (folder / "JPEGImages").mkdir()
    for image, target in zip(data.images, data.targets, strict=True):
        name = Path(image).name
        (folder / "JPEGImages" / name).symlink_to(image)
        objects = "".join(
            f"<object><name>{data.classes[label]}</name><difficult>0</difficult><bndbox>"
            f"<xmin>{x1 + 1:g}</xmin><ymin>{y1 + 1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax>"
            "</bndbox></object>"
            for (x1, y1, x2, y2), label in zip(target.boxes, target.labels, strict=True)
        )
        xml = (
            f"<annotation><folder>VOC</folder><filename>{name}</filename><size>"
            f"<width>{target.width}</width><height>{target.height}</height><depth>3</depth>"
            f"</size>{objects}</annotation>"
        )
        (folder / "Annotations" / f"{Path(image).stem}.xml").write_text(xml)
    return folder


def write_yolo(folder: Path, data: DetectionData, split: str = "") -> Path:
    """``data`` as YOLO ``images/<split>`` and ``labels/<split>`` (normalised, six decimals)."""
    images, labels = folder / "images" / split, folder / "labels" / split
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for image, target in zip(data.images, data.targets, strict=True):
        (images / Path(image).name).symlink_to(image)
        lines = []
        for (x1, y1, x2, y2), label in zip(target.boxes, target.labels, strict=True):
            w, h = target.width, target.height
            values = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
            lines.append(f"{label} " + " ".join(f"{v:.6f}" for v in values))
        (labels / f"{Path(image).stem}.txt").write_text("\n".join(lines) + "\n")
    return folder


def assert_same_objects(read: DetectionData, expected: DetectionData, atol: float) -> None:
    assert read.classes == expected.classes
    assert [Path(p).name for p in read.images] == [Path(p).name for p in expected.images]
    for got, want in zip(read.targets, expected.targets, strict=True):
        assert (got.width, got.height) == (want.width, want.height)
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=atol, rtol=0)


def test_voc_folder_reads_back_the_coco_boxes(tmp_path, few):
    folder = write_voc(tmp_path / "voc", few)
    assert detection_format(folder)[0] == "voc"
    voc = read_detection(folder)
    assert_same_objects(voc, few, atol=0)
    assert not voc.has_masks and all(voc.report[key] == 0 for key in ISSUES)
    main = folder / "ImageSets" / "Main"
    main.mkdir(parents=True)
    stems = [Path(p).stem for p in few.images]
    (main / "train.txt").write_text("\n".join(stems[:7]) + "\n")
    (main / "val.txt").write_text("\n".join(stems[7:]) + "\n")
    train, val, test = read_detection_splits(folder)
    assert (len(train), len(val), test) == (7, 3, None)
    assert_same_objects(val, few.subset([7, 8, 9]), atol=0)


def test_yolo_split_layout_reads_back_the_coco_boxes(tmp_path, few):
    folder = tmp_path / "yolo"
    write_yolo(folder, few.subset(range(6)), "train")
    write_yolo(folder, few.subset(range(6, 10)), "val")
    (folder / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: person\n"
    )
    assert detection_format(folder)[0] == "yolo"
    train, val, test = read_detection_splits(folder)
    assert (len(train), len(val), test) == (6, 4, None)
    assert_same_objects(train, few.subset(range(6)), atol=0.01)
    assert_same_objects(val, few.subset(range(6, 10)), atol=0.01)
    everything = read_detection(folder / "data.yaml")
    assert len(everything) == 10 and everything.report["boxes"] == few.report["boxes"]


def test_yolo_roboflow_layout(tmp_path, few):
    """train/images + valid/images, with or without the data.yaml Roboflow writes."""
    folder = tmp_path / "yolo"
    write_yolo(folder / "train", few.subset(range(7)))
    write_yolo(folder / "valid", few.subset(range(7, 10)))
    (folder / "classes.txt").write_text("person\n")
    train, val, _ = read_detection_splits(folder)
    assert (len(train), len(val)) == (7, 3)
    (folder / "classes.txt").unlink()
    yaml = "train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['person']\n"
    (folder / "data.yaml").write_text(yaml)
    train, val, _ = read_detection_splits(folder)
    assert_same_objects(val, few.subset(range(7, 10)), atol=0.01)


def test_yolo_plain_layout_with_classes_txt_and_negatives(tmp_path, few):
    folder = write_yolo(tmp_path / "yolo", few.subset(range(3)))
    (folder / "classes.txt").write_text("person\n")
    (folder / "labels" / f"{Path(few.images[1]).stem}.txt").unlink()  # no label file
    (folder / "labels" / f"{Path(few.images[2]).stem}.txt").write_text("")  # an empty one
    data = read_detection(folder)
    assert len(data) == 3 and data.report["negative_images"] == 2
    assert [len(t) for t in data.targets] == [len(few.targets[0]), 0, 0]
    np.testing.assert_allclose(data.targets[0].boxes, few.targets[0].boxes, atol=0.01)


def test_yolo_segment_polygons_become_masks(tmp_path, few):
    folder = write_yolo(tmp_path / "yolo", few.subset([0]))
    (folder / "classes.txt").write_text("person\n")
    target = few.targets[0]
    w, h = target.width, target.height
    # a triangle and a rectangle, in normalised polygon coordinates
    points = [(10, 20), (110, 20), (10, 120)], [(200, 50), (300, 50), (300, 250), (200, 250)]
    lines = ["0 " + " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in poly) for poly in points]
    (folder / "labels" / f"{Path(few.images[0]).stem}.txt").write_text("\n".join(lines))
    data = read_detection(folder)
    assert data.has_masks
    np.testing.assert_allclose(
        data.targets[0].boxes, [[10, 20, 110, 120], [200, 50, 300, 250]], atol=0.01
    )
    masks = data.targets[0].decode_masks()
    assert masks[1].sum() == pytest.approx(100 * 200, rel=0.03)
    assert masks[0].sum() == pytest.approx(100 * 100 / 2, rel=0.05)


def test_coco_annotations_folder_layout(tmp_path, coco):
    """COCO's own layout: annotations/instances_<split>.json beside <split>/ image folders."""
    records = json.loads((PENNFUDAN / "annotations.json").read_text())
    (tmp_path / "annotations").mkdir()
    for split, indices in (("train2017", [0, 1, 2]), ("val2017", [3, 4])):
        (tmp_path / split).mkdir()
        images = [dict(records["images"][i]) for i in indices]
        for image in images:
            name = Path(image["file_name"]).name
            (tmp_path / split / name).symlink_to(PENNFUDAN / image["file_name"])
            image["file_name"] = name
        ids = {image["id"] for image in images}
        anns = [a for a in records["annotations"] if a["image_id"] in ids]
        doc = dict(records, images=images, annotations=anns)
        (tmp_path / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    train, val, test = read_detection_splits(tmp_path)
    assert (len(train), len(val), test) == (3, 2, None) and val.has_masks
    assert [len(t) for t in val.targets] == [len(t) for t in coco.targets[3:5]]
    with pytest.raises(DataError, match="several COCO files"):
        read_detection(tmp_path)


def broken_coco(tmp_path: Path) -> Path:
    """Two Penn-Fudan images: one box reaching outside, one with no width, one of an unknown
    category; an image file that is missing, and an image without objects."""
    records = json.loads((PENNFUDAN / "annotations_val.json").read_text())
    images = records["images"][:3]
    for image in images:
        image["file_name"] = str(PENNFUDAN / image["file_name"])
    images[2]["file_name"] = "PNGImages/missing.png"
    images.append({"id": 999, "file_name": images[0]["file_name"], "width": 1, "height": 1})
    anns = [a for a in records["annotations"] if a["image_id"] == images[0]["id"]][:1]
    first = images[0]
    anns = [
        dict(anns[0], id=1, bbox=[first["width"] - 50, 10, 80, 40]),  # 30 px outside
        dict(anns[0], id=2, bbox=[20, 30, 0, 40]),  # no width
        dict(anns[0], id=3, category_id=7),  # no such category
        dict(anns[0], id=4, image_id=images[1]["id"], bbox=[5, 5, 10, 10], segmentation=[]),
    ]
    for ann in anns:
        ann.pop("segmentation", None)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(dict(records, images=images, annotations=anns)))
    return path


def test_broken_coco_boxes_are_clipped_skipped_and_named(tmp_path, caplog):
    if not PENNFUDAN.is_dir():
        pytest.skip(f"shared dataset {PENNFUDAN} is not available")
    path = broken_coco(tmp_path)
    with caplog.at_level(logging.WARNING, logger="graft"):
        data = read_detection(path)
    report = data.report
    assert report["boxes_clipped"] == 1 and report["degenerate_boxes_skipped"] == 1
    assert report["unknown_class_skipped"] == 1 and report["images_skipped"] == 1
    assert report["size_mismatches"] == 1  # image 999 says 1x1
    assert len(data) == 3 and report["boxes"] == 2 and report["negative_images"] == 1
    width = data.targets[0].width
    np.testing.assert_array_equal(data.targets[0].boxes, [[width - 50, 10, width, 50]])
    image_id = json.loads(path.read_text())["images"][2]["id"]
    why = f"image {image_id} of broken.json: not found in {tmp_path}"
    assert data.skipped == [("PNGImages/missing.png", why)]
    log = caplog.text
    assert f"{path}: annotation 1 (image" in log and "reaches outside" in log and "clipped" in log
    assert f"{path}: annotation 2" in log and "[20, 30, 20, 70] has no area" in log
    assert re.search(rf"{re.escape(str(path))}: annotation 3 \(image .*\): class 7 \(box \[", log)
    assert "is not in the class list ('person'); skipped" in log
    assert "skipped PNGImages/missing.png" in log


def test_unreadable_annotation_files_are_one_line_errors(tmp_path):
    bad_json = tmp_path / "a.json"
    bad_json.write_text('{"images": [\n  {"id": 1,,}\n]}')
    with pytest.raises(DataError, match=r"a\.json, line 2, column 12: not valid JSON"):
        read_detection(bad_json)
    (tmp_path / "voc" / "Annotations").mkdir(parents=True)
    (tmp_path / "voc" / "Annotations" / "x.xml").write_text("<annotation>\n<object>\n</annotation>")
    with pytest.raises(DataError, match=r"x\.xml, line 3: malformed XML \(mismatched tag"):
        read_detection(tmp_path / "voc")
    (tmp_path / "voc" / "Annotations" / "x.xml").write_text(
        "<annotation><object><name>cat</name><bndbox><xmin>a</xmin></bndbox></object></annotation>"
    )
    with pytest.raises(DataError, match=r"x\.xml: object 1 \(cat\): <xmin> must be a number"):
        read_detection(tmp_path / "voc")
    not_coco = tmp_path / "list.json"
    not_coco.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a JSON object"):
        read_detection(not_coco)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no detection annotations found"):
        read_detection(tmp_path / "empty")


def yolo_folder(tmp_path: Path, lines: str, classes: str | None = "person\n") -> Path:
    folder = tmp_path / "yolo"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    Image.new("RGB", (200, 100)).save(folder / "images" / "a.png")
    (folder / "labels" / "a.txt").write_text(lines)
    if classes is not None:
        (folder / "classes.txt").write_text(classes)
    return folder


def test_yolo_unknown_class_is_skipped_and_named(tmp_path, caplog):
    folder = yolo_folder(tmp_path, "0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n0 0.95 0.5 0.2 0.2\n")
    with caplog.at_level(logging.WARNING, logger="graft"):
        data = read_detection(folder)
    assert data.report["unknown_class_skipped"] == 1 and data.report["boxes_clipped"] == 1
    np.testing.assert_allclose(data.targets[0].boxes, [[80, 40, 120, 60], [170, 40, 200, 60]])
    where = f"{folder / 'labels' / 'a.txt'}, line 2"
    assert f"{where}: class 3 (box [80, 40, 120, 60]) is not in the class list" in caplog.text


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("0 0.5 0.5 0.2\n", r"a\.txt, line 1: expected 'class cx cy w h'"),
        ("\n0.5 0.5 0.5 0.2 0.2\n", r"a\.txt, line 2: expected 'class cx cy w h'"),
        ("person 0.5 0.5 0.2 0.2\n", r"a\.txt, line 1: expected"),
    ],
)
def test_malformed_yolo_lines_are_errors(tmp_path, lines, message):
    with pytest.raises(DataError, match=message):
        read_detection(yolo_folder(tmp_path, lines))


def test_yolo_without_class_names_is_an_error(tmp_path):
    folder = yolo_folder(tmp_path, "0 0.5 0.5 0.2 0.2\n", classes=None)
    with pytest.raises(DataError, match="no class names"):
        read_detection(folder)
    assert read_detection(folder, classes=["car"]).classes == ["car"]


def test_missing_and_unreadable_images_are_skipped_and_named(tmp_path, few):
    folder = write_voc(tmp_path / "voc", few.subset([0, 1, 2]))
    names = [Path(p).name for p in few.images[:3]]
    (folder / "JPEGImages" / names[0]).unlink()
    (folder / "JPEGImages" / names[1]).unlink()
    (folder / "JPEGImages" / names[1]).write_bytes(b"not a png")
    data = read_detection(folder)
    assert len(data) == 1 and data.report["images_skipped"] == 2
    (missing, why_missing), (broken, why_broken) = data.skipped
    assert (
        missing.endswith(f"{Path(names[0]).stem}.xml") and "not found in JPEGImages/" in why_missing
    )
    assert broken.endswith(names[1]) and "cannot identify image file" in why_broken
    shutil.rmtree(folder / "JPEGImages")
    with pytest.raises(DataError, match="no usable images found \\(3 skipped; the first"):
        read_detection(folder)


def test_classes_option_maps_and_skips_by_name(few, caplog):
    path = PENNFUDAN / "annotations_val.json"
    data = read_detection(path, classes=["car", "person"])
    assert data.classes == ["car", "person"] and {
        int(v) for t in data.targets for v in t.labels
    } == {1}
    with caplog.at_level(logging.WARNING, logger="graft"):
        only_cars = read_detection(path, classes=["car"])
    assert only_cars.report["unknown_class_skipped"] == 131
    assert only_cars.report["negative_images"] == 50 and not only_cars.has_masks
    assert "more of unknown class skipped not shown (131 in all)" in caplog.text


def test_the_split_is_seeded_and_by_image(coco):
    train, val = DetectionTask.split(coco, 0.2, seed=0)
    assert len(val) == 34 and len(train) == 136
    assert not set(train) & set(val) and set(train) | set(val) == set(range(170))
    again = DetectionTask.split(coco, 0.2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again, strict=True))
    assert not np.array_equal(DetectionTask.split(coco, 0.2, seed=1)[1], val)
    part = coco.subset(val)
    assert part.report["images"] == 34 and part.report["boxes"] == sum(len(t) for t in part.targets)
    with pytest.raises(DataError, match="between 0 and 1"):
        DetectionTask.split(coco, 1.0, seed=0)


def test_content_hash_follows_images_and_boxes(few):
    again = read_detection(PENNFUDAN).subset([0, 3, 20, 40, 73, 80, 100, 120, 150, 169])
    assert few.content_hash() == again.content_hash()
    again.targets[4].boxes[0, 0] += 1
    assert few.content_hash() != again.content_hash()
    assert few.subset(range(9)).content_hash() != few.content_hash()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_image_sizes_follow_the_exif_orientation(tmp_path, suffix):
    """A photo stored 100x50 and turned a quarter by EXIF is 50x100, as graft decodes it, so
    boxes are checked against the upright image."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (100, 50)).save(tmp_path / f"a{suffix}", exif=exif.tobytes())
    assert (
        image_size(tmp_path / f"a{suffix}") == open_rgb(tmp_path / f"a{suffix}").size == (50, 100)
    )
