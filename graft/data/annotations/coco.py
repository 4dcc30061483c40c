"""COCO instance annotations: one JSON file with ``images``, ``annotations`` and ``categories``.

An image's ``file_name`` is looked up relative to the JSON file's folder, then an ``images/``
folder beside it; when the JSON sits in an ``annotations/`` folder (COCO's own layout), also
relative to the folder above, its ``images/``, and the split folder the file name ends with
(``instances_train2017.json`` -> ``train2017/``). ``bbox`` is ``[x, y, w, h]``; an annotation
without one takes the box of its mask. ``segmentation`` may be polygons or RLE (compressed or
not); masks are kept only when every object has one. Classes follow the categories' ids.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graft.data.annotations.checks import (
    BoxChecks,
    find_image,
    finish,
    keep_masks_when_complete,
    make_target,
    readable_size,
)
from graft.data.annotations.target import DetectionData, mask_box
from graft.errors import DataError

log = logging.getLogger("graft")
#: What :func:`_segmentation` returns for polygons that all have fewer than 3 points.
_NO_POLYGON = object()


def read_coco(path: str | Path, classes: Sequence[str] | None = None) -> DetectionData:
    """Read a COCO instances JSON file.

    ``classes``: the class list to use (a model's); categories named otherwise are skipped as
    unknown classes. None: the file's categories, in the order of their ids.

    Raises:
        DataError: the file is not valid JSON or not COCO-shaped (naming the file and the
            line, image or annotation), or no image can be used.
    """
    path = Path(path).resolve()
    doc = load_json(path)
    names, label_of = _categories(path, doc, classes)
    images = _records(path, doc, "images")
    by_image = _annotations_by_image(path, doc, images)
    checks, skipped = BoxChecks(str(path)), []
    folders = image_folders(path)
    looked = ", ".join(str(f) for f in folders if f.is_dir())
    kept, targets = [], []
    for image in images:
        name = str(image["file_name"])
        file = find_image(name, folders)
        if file is None:
            skipped.append((name, f"image {image['id']} of {path.name}: not found in {looked}"))
            continue
        size = readable_size(file, skipped)
        if size is None:
            continue
        stated = (image.get("width"), image.get("height"))
        if None not in stated and tuple(stated) != size:
            checks.size_mismatch(f"{path}: image {image['id']} ({name})", stated, size)
        objects = [
            _object(path, ann, name, size, label_of, names, checks)
            for ann in by_image.get(image["id"], [])
        ]
        targets.append(make_target([o for o in objects if o is not None], size))
        kept.append(str(file))
    keep_masks_when_complete(str(path), targets)
    return finish(kept, targets, names, str(path), checks, skipped)


def load_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or a DataError naming the file and the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not valid UTF-8 ({error.reason})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})"
        ) from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be COCO annotations") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object with 'images' and 'annotations'")
    return doc


def is_coco(path: Path) -> bool:
    """Whether ``path`` looks like a COCO instances file (read cheaply: its first 64 kB)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            head = handle.read(65536)
    except OSError:
        return False
    keys = ('"images"', '"annotations"', '"categories"')
    return head.lstrip().startswith("{") and any(key in head for key in keys)


def image_folders(path: Path) -> list[Path]:
    """Where the images of the COCO file ``path`` may be (see the module)."""
    here = path.parent
    folders = [here, here / "images"]
    if here.name.lower() in ("annotations", "annotation"):
        up = here.parent
        split = path.stem.rsplit("_", 1)[-1]
        folders += [up, up / "images", up / split, up / "images" / split]
    return folders


def _records(path: Path, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    records = doc.get(key)
    if not isinstance(records, list):
        raise DataError(f"{path}: not a COCO file: no {key!r} list")
    seen: set[Any] = set()
    for number, record in enumerate(records):
        if not isinstance(record, dict) or "id" not in record:
            raise DataError(f"{path}: {key}[{number}] is not an object with an 'id'")
        if key == "images" and "file_name" not in record:
            raise DataError(f"{path}: image {record['id']} has no 'file_name'")
        if record["id"] in seen:
            raise DataError(f"{path}: two {key} have the id {record['id']!r}")
        seen.add(record["id"])
    return records


def _categories(
    path: Path, doc: dict[str, Any], classes: Sequence[str] | None
) -> tuple[list[str], dict[Any, int | None]]:
    """The class names, and the label of each category id (None: not in ``classes``)."""
    if "categories" not in doc and classes is not None:
        categories = []
    else:
        categories = sorted(_records(path, doc, "categories"), key=lambda c: _sort_key(c["id"]))
    found = [str(c.get("name", c["id"])) for c in categories]
    duplicates = sorted({n for n in found if found.count(n) > 1})
    if duplicates:
        raise DataError(f"{path}: two categories are named {duplicates[0]!r}")
    names = list(classes) if classes is not None else found
    if not names:
        raise DataError(f"{path}: no categories, so no classes")
    position = {name: i for i, name in enumerate(names)}
    return names, {c["id"]: position.get(n) for c, n in zip(categories, found, strict=True)}


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def _annotations_by_image(
    path: Path, doc: dict[str, Any], images: list[dict[str, Any]]
) -> dict[Any, list[dict[str, Any]]]:
    annotations = doc.get("annotations", [])
    if not isinstance(annotations, list):
        raise DataError(f"{path}: 'annotations' is not a list")
    ids = {image["id"] for image in images}
    by_image: dict[Any, list[dict[str, Any]]] = {}
    orphans = 0
    for number, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise DataError(f"{path}: annotations[{number}] is not an object with an 'image_id'")
        if ann["image_id"] not in ids:
            orphans += 1
            continue
        by_image.setdefault(ann["image_id"], []).append(ann)
    if orphans:
        log.warning("%s: %d annotation(s) name an image id not in 'images'; ignored", path, orphans)
    return by_image


def _object(
    path: Path,
    ann: dict[str, Any],
    image_name: str,
    size: tuple[int, int],
    label_of: dict[Any, int | None],
    names: list[str],
    checks: BoxChecks,
) -> tuple[tuple[float, ...], int, Any, int] | None:
    """``(box, label, mask or None, iscrowd)`` of one annotation, or None when skipped."""
    where = f"{path}: annotation {ann.get('id', '?')} (image {image_name})"
    category = ann.get("category_id")
    label = label_of.get(category)
    bbox = ann.get("bbox")
    if label is None:
        x, y, w, h = bbox if _numbers(bbox) and len(bbox) == 4 else (0, 0, 0, 0)
        checks.unknown_class(where, category, names, (x, y, x + w, y + h) if w or h else None)
        return None
    mask = _segmentation(where, ann.get("segmentation"), size)
    if mask is _NO_POLYGON:
        checks.warn("degenerate_boxes_skipped", f"{where}: no polygon of 3 points; skipped")
        return None
    if bbox is None and mask is not None:
        bbox = mask_box(mask, size[1], size[0])
    if not (_numbers(bbox) and len(bbox) == 4):
        raise DataError(f"{where}: 'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    box = checks.box(where, (x, y, x + w, y + h), *size)
    if box is None:
        return None
    return box, label, mask, int(bool(ann.get("iscrowd", 0)))


def _segmentation(where: str, segmentation: Any, size: tuple[int, int]) -> Any:
    """The annotation's mask in COCO form; None when it has none; :data:`_NO_POLYGON` when
    all its polygons have fewer than 3 points."""
    if segmentation is None or segmentation == []:
        return None
    width, height = size
    if isinstance(segmentation, dict):
        rle_size = segmentation.get("size")
        counts = segmentation.get("counts")
        if not (_numbers(rle_size) and len(rle_size) == 2) or counts is None:
            raise DataError(f"{where}: an RLE segmentation needs 'size' [h, w] and 'counts'")
        if [int(v) for v in rle_size] != [height, width]:
            raise DataError(
                f"{where}: the RLE mask is {rle_size[1]}x{rle_size[0]} but the image is "
                f"{width}x{height}"
            )
        return segmentation
    if not isinstance(segmentation, list) or not all(isinstance(p, list) for p in segmentation):
        raise DataError(f"{where}: 'segmentation' must be a list of polygons or an RLE object")
    for polygon in segmentation:
        if not _numbers(polygon) or len(polygon) % 2:
            raise DataError(f"{where}: a polygon must be an even count of numbers x1, y1, ...")
    polygons = [p for p in segmentation if len(p) >= 6]
    return polygons or _NO_POLYGON


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    )


_SPLIT_WORDS = {
    "train": r"train",
    "val": r"val|valid|validation",
    "test": r"test",
}


def coco_files(folder: Path) -> list[Path]:
    """COCO JSON files in ``folder`` and its ``annotations/`` folder."""
    found = []
    for where in (folder, folder / "annotations"):
        if where.is_dir():
            found += [f for f in sorted(where.glob("*.json")) if is_coco(f)]
    return found


def split_of(file: Path) -> str | None:
    """The split a COCO file's name says it holds (``instances_val2017`` is ``val``)."""
    stem = file.stem.lower()
    for split, words in _SPLIT_WORDS.items():
        if re.search(rf"(?<![a-z])({words})(?![a-z])", stem):
            return split
    return None


def coco_split_files(folder: Path) -> dict[str, Path]:
    """The COCO file of each split found in ``folder`` (by name; ``instances_`` preferred)."""
    by_split: dict[str, list[Path]] = {}
    for file in coco_files(folder):
        split = split_of(file)
        if split is not None:
            by_split.setdefault(split, []).append(file)
    chosen = {}
    for split, files in by_split.items():
        if len(files) > 1:
            files = [f for f in files if f.stem.lower().startswith("instances")] or files
        if len(files) > 1:
            names = ", ".join(f.name for f in files)
            raise DataError(f"{folder}: several COCO files for the {split} split: {names}")
        chosen[split] = files[0]
    return chosen
