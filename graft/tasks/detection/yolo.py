"""YOLO text labels: one ``.txt`` per image with a line ``class cx cy w h`` per object.

Coordinates are fractions of the image's width and height. A line ``class x1 y1 x2 y2 x3 y3
...`` (three points or more) is a YOLO segmentation polygon: its box is the polygon's extent
and the polygon is kept as the object's mask. The label file of ``.../images/<rest>.jpg`` is
``.../labels/<rest>.txt`` (the last ``images`` folder in the path becomes ``labels``); without
an ``images`` folder in the path it lies beside the image. An image without a label file, or
with an empty one, is a negative example.

Layouts: ``images/`` + ``labels/`` (any sub-folders, such as ``images/train``); ``train/images``
+ ``train/labels`` (and ``valid/``, ``test/``); a ``data.yaml`` (or ``dataset.yaml``) with
``path``, ``train``, ``val``, ``test`` (folders or ``.txt`` lists of images) and ``names``.
Class names come from ``data.yaml``'s ``names``, else ``classes.txt``, ``obj.names`` or
``classes.names`` beside the data or in ``labels/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graft.data.annotations.checks import (
    BoxChecks,
    find_names_file,
    finish,
    keep_masks_when_complete,
    make_target,
    read_names,
    readable_size,
)
from graft.data.annotations.target import DetectionData
from graft.data.images import is_image_file
from graft.errors import DataError

YAML_FILES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
NAMES_FILES = ("classes.txt", "obj.names", "classes.names")
SPLITS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def is_yolo(root: Path) -> bool:
    """Whether ``root`` (a folder or a YAML file) is laid out as YOLO data."""
    if root.is_file():
        return root.suffix.lower() in (".yaml", ".yml")
    if _yaml_file(root) is not None or (root / "labels").is_dir():
        return True
    return any((root / name / "labels").is_dir() for names in SPLITS.values() for name in names)


def read_yolo(source: str | Path, classes: Sequence[str] | None = None) -> DetectionData:
    """Read every image of a YOLO dataset (all its splits together).

    Raises:
        DataError: no class list, a malformed label line (naming the file and line), or no
            usable image.
    """
    root = Path(source).resolve()
    splits = _split_folders(root)
    folders = [f for fs in splits.values() for f in fs] if splits else _plain_folders(root)
    return _read(folders, _class_names(root, classes), str(root))


def read_yolo_splits(
    source: str | Path, classes: Sequence[str] | None = None
) -> dict[str, DetectionData] | None:
    """The ``train``/``val``/``test`` data of a YOLO layout that holds splits, else None."""
    root = Path(source).resolve()
    splits = _split_folders(root)
    if not splits or "train" not in splits:
        return None
    names = _class_names(root, classes)
    return {split: _read(folders, names, f"{root} ({split})") for split, folders in splits.items()}


def _yaml_file(root: Path) -> Path | None:
    if root.is_file():
        return root
    return next((root / name for name in YAML_FILES if (root / name).is_file()), None)


def _load_yaml(file: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise DataError(f"{file}{line}: malformed YAML ({problem})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{file}: cannot be read ({error})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{file}: expected a mapping with 'train', 'val' and 'names'")
    return doc


def _split_folders(root: Path) -> dict[str, list[Path]]:
    """Image folders (or ``.txt`` image lists) of each split the layout holds; empty if none."""
    file = _yaml_file(root)
    if file is not None:
        doc = _load_yaml(file)
        base = (file.parent / str(doc.get("path", ""))).resolve()
        found = {}
        for split in SPLITS:
            value = doc.get(split)
            if value:
                values = value if isinstance(value, list) else [value]
                found[split] = [_yaml_path(base, str(v)) for v in values]
        return found
    for layout in (lambda name: root / "images" / name, lambda name: root / name / "images"):
        found = {}
        for split, names in SPLITS.items():
            folder = next((layout(n) for n in names if layout(n).is_dir()), None)
            if folder is not None:
                found[split] = [folder]
        if found:
            return found
    return {}


def _yaml_path(base: Path, value: str) -> Path:
    """A split path of a data.yaml; ``../train/images`` written for a folder beside the YAML
    (as Roboflow exports write it) is taken as ``train/images`` when only that exists."""
    path = (base / value).resolve()
    if not path.exists() and value.startswith("../") and (base / value[3:]).exists():
        return (base / value[3:]).resolve()
    return path


def _plain_folders(root: Path) -> list[Path]:
    return [root / "images"] if (root / "images").is_dir() else [root]


def _class_names(root: Path, classes: Sequence[str] | None) -> list[str]:
    if classes is not None:
        return list(classes)
    file = _yaml_file(root)
    if file is not None:
        names = _load_yaml(file).get("names")
        if isinstance(names, dict):
            try:
                names = [names[i] for i in range(len(names))]
            except KeyError:
                raise DataError(f"{file}: 'names' must number its classes 0, 1, 2, ...") from None
        if isinstance(names, list) and names:
            return [str(name) for name in names]
    folder = root.parent if root.is_file() else root
    names_file = find_names_file([folder, folder / "labels"], NAMES_FILES)
    if names_file is None:
        raise DataError(
            f"{root}: no class names: add 'names' to data.yaml, or a classes.txt (one name a "
            "line, in class-id order), or give the classes"
        )
    return read_names(names_file)


def _image_files(folders: list[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        if folder.is_file() and folder.suffix.lower() == ".txt":  # a list of image paths
            lines = folder.read_text(encoding="utf-8").splitlines()
            files += [(folder.parent / line.strip()).resolve() for line in lines if line.strip()]
        elif folder.is_dir():
            found = (f for f in folder.rglob("*") if f.is_file() and is_image_file(f))
            files += sorted(p for p in found if not any(s.startswith(".") for s in p.parts))
        else:
            raise DataError(f"{folder}: no such image folder")
    return files


def label_path(image: Path) -> Path:
    """The label file of ``image`` (see the module)."""
    parts = image.parts
    if "images" in parts[:-1]:
        i = len(parts) - 2 - parts[:-1][::-1].index("images")
        return Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".txt")
    return image.with_suffix(".txt")


def _read(folders: list[Path], names: list[str], source: str) -> DetectionData:
    checks, skipped = BoxChecks(source), []
    images, targets = [], []
    for image in _image_files(folders):
        if not image.is_file():
            skipped.append((str(image), "image file not found"))
            continue
        size = readable_size(image, skipped)
        if size is None:
            continue
        label = label_path(image)
        objects = _read_label_file(label, size, names, checks) if label.is_file() else []
        targets.append(make_target(objects, size))
        images.append(str(image))
    keep_masks_when_complete(source, targets)
    return finish(images, targets, names, source, checks, skipped)


def _read_label_file(
    file: Path, size: tuple[int, int], names: list[str], checks: BoxChecks
) -> list[tuple[tuple[float, ...], int, list[list[float]] | None]]:
    """``(box, label, polygon mask or None)`` of each usable line of a label file."""
    width, height = size
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{file}: cannot be read ({error})") from None
    objects = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{file}, line {number}"
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = []
        odd_points = len(values) >= 7 and len(values) % 2 == 1
        if not (len(values) == 5 or odd_points) or not values[0].is_integer():
            raise DataError(f"{where}: expected 'class cx cy w h' (numbers), got {line.strip()!r}")
        label = int(values[0])
        mask = None
        if len(values) == 5:
            cx, cy, w, h = values[1:]
            box = ((cx - w / 2) * width, (cy - h / 2) * height)
            box += ((cx + w / 2) * width, (cy + h / 2) * height)
        else:
            xs = [v * width for v in values[1::2]]
            ys = [v * height for v in values[2::2]]
            box = (min(xs), min(ys), max(xs), max(ys))
            mask = [[c for point in zip(xs, ys, strict=True) for c in point]]
        if not 0 <= label < len(names):
            checks.unknown_class(where, label, names, box)
            continue
        clipped = checks.box(where, box, width, height)
        if clipped is not None:
            objects.append((clipped, label, mask))
    return objects
