"""Pascal VOC XML: one ``<annotation>`` file per image, in ``Annotations/`` or in the folder itself.

Each ``<object>`` has a ``<name>`` and a ``<bndbox>`` of ``xmin, ymin, xmax, ymax``, VOC's
1-based pixel indices with the last pixel included, so the box is ``[xmin - 1, ymin - 1, xmax,
ymax]`` in graft's pixel edges. The image is ``<filename>`` (else the XML file's stem with an
image extension) in ``JPEGImages/``, beside the XML, in ``images/`` or in the folder. Classes
come from ``classes.txt``/``labels.txt`` in the folder when there is one, else the sorted names
of every XML file there. ``<difficult>`` objects are kept as ordinary objects.
Splits are ``ImageSets/Main/{train,val,test}.txt`` (one image id, the XML stem, a line).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graft.data.annotations.checks import (
    BoxChecks,
    find_image,
    find_image_by_stem,
    find_names_file,
    finish,
    read_names,
    readable_size,
)
from graft.data.annotations.target import DetectionData, DetectionTarget
from graft.errors import DataError

NAMES_FILES = ("classes.txt", "labels.txt")
SPLIT_FILES = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}


@dataclass
class VocRecord:
    """One parsed XML file: its image's file name and size as written, and its objects."""

    xml: Path
    filename: str | None
    size: tuple[int, int] | None
    objects: list[tuple[str, tuple[float, float, float, float]]]


def annotation_folder(root: Path) -> Path:
    return root / "Annotations" if (root / "Annotations").is_dir() else root


def is_voc(root: Path) -> bool:
    """Whether ``root`` holds VOC XML files (in ``Annotations/`` or itself)."""
    return root.is_dir() and any(annotation_folder(root).glob("*.xml"))


def read_voc(root: str | Path, classes: Sequence[str] | None = None) -> DetectionData:
    """Read every XML file of a VOC folder.

    Raises:
        DataError: an XML file is malformed (naming it and the line), or no image is usable.
    """
    root = Path(root).resolve()
    records = parse_folder(root)
    return build(root, records, class_list(root, records, classes))


def read_voc_splits(
    root: str | Path, classes: Sequence[str] | None = None
) -> dict[str, DetectionData] | None:
    """The ``train``/``val``/``test`` data listed in ``ImageSets/Main``, or None without them.

    The class list is shared: given, from a names file, or every name in the folder.
    """
    root = Path(root).resolve()
    lists = {
        split: file
        for split, names in SPLIT_FILES.items()
        if (file := _first_file(root / "ImageSets" / "Main", names)) is not None
    }
    if "train" not in lists:
        return None
    records = parse_folder(root)
    by_stem = {record.xml.stem: record for record in records}
    shared = class_list(root, records, classes)
    splits = {}
    for split, file in lists.items():
        chosen = []
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            stem = line.split()[0] if line.strip() else ""
            if not stem:
                continue
            if stem not in by_stem:
                raise DataError(f"{file}, line {number}: no annotation {stem}.xml for {stem!r}")
            chosen.append(by_stem[stem])
        splits[split] = build(root, chosen, shared, source=f"{root} ({file.name})")
    return splits


def _first_file(folder: Path, stems: Sequence[str]) -> Path | None:
    return next((folder / f"{s}.txt" for s in stems if (folder / f"{s}.txt").is_file()), None)


def parse_folder(root: Path) -> list[VocRecord]:
    folder = annotation_folder(root)
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise DataError(f"{root}: no VOC XML files in {folder}")
    return [parse_xml(file) for file in files]


def parse_xml(file: Path) -> VocRecord:
    """One VOC XML file, or a DataError naming it (and the line or object) when malformed."""
    try:
        tree = ElementTree.parse(file)
    except ElementTree.ParseError as error:
        line = error.position[0]
        reason = str(error).split(":")[0]
        raise DataError(f"{file}, line {line}: malformed XML ({reason})") from None
    except OSError as error:
        raise DataError(f"{file}: cannot be read ({error.strerror or error})") from None
    node = tree.getroot()
    if node.tag != "annotation":
        raise DataError(f"{file}: not a VOC annotation (the root is <{node.tag}>)")
    size = None
    if node.find("size") is not None:
        values = [_number(file, node, f"size/{k}", "<size>") for k in ("width", "height")]
        if not all(abs(v) < 2**31 for v in values):  # NaN, infinite or absurd: no size
            raise DataError(f"{file}: <size> must be a width and height in pixels, got {values}")
        size = (int(values[0]), int(values[1]))
    objects = []
    for number, item in enumerate(node.findall("object"), start=1):
        name = (item.findtext("name") or "").strip()
        where = f"object {number} ({name or 'no name'})"
        if item.find("bndbox") is None or not name:
            raise DataError(f"{file}: {where} needs a <name> and a <bndbox>")
        xmin, ymin, xmax, ymax = (
            _number(file, item, f"bndbox/{k}", where) for k in ("xmin", "ymin", "xmax", "ymax")
        )
        objects.append((name, (xmin - 1.0, ymin - 1.0, xmax, ymax)))
    filename = (node.findtext("filename") or "").strip() or None
    return VocRecord(file, filename, size, objects)


def _number(file: Path, node: ElementTree.Element, path: str, where: str) -> float:
    text = node.findtext(path)
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        tag = path.split("/")[-1]
        raise DataError(f"{file}: {where}: <{tag}> must be a number, got {text!r}") from None


def class_list(root: Path, records: list[VocRecord], classes: Sequence[str] | None) -> list[str]:
    if classes is not None:
        return list(classes)
    names_file = find_names_file([root], NAMES_FILES)
    if names_file is not None:
        return read_names(names_file)
    return sorted({name for record in records for name, _ in record.objects})


def build(
    root: Path, records: list[VocRecord], classes: list[str], source: str | None = None
) -> DetectionData:
    """The data of ``records``: images found, boxes checked, classes looked up."""
    source = source or str(root)
    checks, skipped = BoxChecks(source), []
    position = {name: i for i, name in enumerate(classes)}
    images, targets = [], []
    for record in records:
        folders = [root / "JPEGImages", record.xml.parent, root / "images", root]
        image = find_image(record.filename, folders) if record.filename else None
        image = image or find_image_by_stem(record.xml.stem, folders)
        if image is None:
            wanted = record.filename or record.xml.stem
            why = f"image {wanted!r} not found in JPEGImages/, images/ or beside the XML"
            skipped.append((str(record.xml), why))
            continue
        size = readable_size(image, skipped)
        if size is None:
            continue
        if record.size is not None and record.size != size and record.size != (0, 0):
            checks.size_mismatch(str(record.xml), record.size, size)
        boxes, labels = [], []
        for number, (name, box) in enumerate(record.objects, start=1):
            where = f"{record.xml}: object {number}"
            if name not in position:
                checks.unknown_class(where, name, classes, box)
                continue
            clipped = checks.box(where, box, *size)
            if clipped is not None:
                boxes.append(clipped)
                labels.append(position[name])
        targets.append(DetectionTarget(np.asarray(boxes), np.asarray(labels), *size))
        images.append(str(image))
    return finish(images, targets, classes, source, checks, skipped)
