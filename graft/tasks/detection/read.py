"""One entry point for detection data in any of the formats graft reads, told apart by layout.

A ``.json`` file is COCO; a ``.yaml`` file is a YOLO ``data.yaml``. A folder is VOC when it
holds XML annotations (``Annotations/*.xml`` or ``*.xml``), YOLO when it holds ``labels/``,
``<split>/labels`` or a ``data.yaml``, and COCO when it holds a COCO JSON file (itself or in
``annotations/``). Splits: COCO files named ``*train*``/``*val*``/``*test*`` (``instances_``
files preferred), YOLO ``images/train`` + ``images/val`` or ``train/images`` + ``valid/images``
or ``data.yaml``'s ``train``/``val``/``test``, VOC ``ImageSets/Main/{train,val,test}.txt``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from graft.data.annotations.coco import coco_files, coco_split_files, read_coco, split_of
from graft.data.annotations.target import DetectionData
from graft.errors import DataError
from graft.tasks.detection.voc import is_voc, read_voc, read_voc_splits
from graft.tasks.detection.yolo import is_yolo, read_yolo, read_yolo_splits

log = logging.getLogger("graft")

FORMATS = ("coco", "voc", "yolo")


def detection_format(source: str | Path) -> tuple[str, Path]:
    """The format of ``source`` (``"coco"``, ``"voc"`` or ``"yolo"``) and the file or folder to
    read (for a folder of COCO files, the one file that is not a split's).

    Raises:
        DataError: ``source`` does not exist or is none of the formats.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco", path
        if path.suffix.lower() in (".yaml", ".yml"):
            return "yolo", path
        raise DataError(f"{path}: not a COCO .json file nor a YOLO data.yaml")
    if is_voc(path):
        return "voc", path
    if is_yolo(path):
        return "yolo", path
    files = coco_files(path)
    whole = [f for f in files if split_of(f) is None]
    if len(whole) == 1 or len(files) == 1:
        return "coco", (whole or files)[0]
    if files:
        names = ", ".join(f.name for f in files)
        raise DataError(
            f"{path}: several COCO files ({names}); name one, or read the splits they hold"
        )
    raise DataError(
        f"{path}: no detection annotations found: expected a COCO .json file, a VOC folder "
        "(Annotations/*.xml), or YOLO images/ and labels/ folders"
    )


def read_detection(source: str | Path, *, classes: Sequence[str] | None = None) -> DetectionData:
    """Read COCO, VOC or YOLO detection data from a file or folder (all of its images).

    ``classes``: the class list to use (a model's, in label order); objects of other classes
    are skipped and counted. None: the classes the data declares.

    Raises:
        DataError: the format is not recognised, an annotation file is malformed, or no image
            is usable (one line naming the file, and the line, annotation or object).
    """
    kind, path = detection_format(source)
    reader = {"coco": read_coco, "voc": read_voc, "yolo": read_yolo}[kind]
    return reader(path, classes)


def read_detection_splits(
    source: str | Path, *, classes: Sequence[str] | None = None
) -> tuple[DetectionData, DetectionData | None, DetectionData | None]:
    """``(train, val, test)`` of a layout that holds splits (see the module); otherwise all of
    ``source`` as train and None for the others. Validation and test data use the training
    data's class list."""
    kind, path = detection_format_for_splits(source)
    if kind == "coco" and path.is_dir():
        files = coco_split_files(path)
        train = read_coco(files["train"], classes)
        rest = {
            s: read_coco(files[s], train.classes) if s in files else None for s in ("val", "test")
        }
        return train, rest["val"], rest["test"]
    splits = None
    if kind == "voc":
        splits = read_voc_splits(path, classes)
    elif kind == "yolo":
        splits = read_yolo_splits(path, classes)
    if splits is None:
        return read_detection(path, classes=classes), None, None
    return splits["train"], splits.get("val"), splits.get("test")


def detection_format_for_splits(source: str | Path) -> tuple[str, Path]:
    """Like :func:`detection_format`, but a folder of COCO split files is ``("coco", folder)``."""
    path = Path(source).expanduser()
    if path.is_dir() and not is_voc(path) and not is_yolo(path):
        if "train" in coco_split_files(path.resolve()):
            return "coco", path.resolve()
    return detection_format(path)


#: What a COCO file is, as messages say it.
COCO_FILE = "a COCO file is one JSON object with 'images', 'annotations' and 'categories' lists"
#: Keys whose presence makes a ``.json`` file nearly COCO.
_COCO_WORDS = ('"bbox"', '"image_id"', '"category_id"', '"file_name"', '"segmentation"')


def near_miss(data: object) -> str | None:
    """Why ``data``, which detection does not claim, is nearly COCO data: a ``.json`` file (or
    one in the folder ``data`` or its ``annotations/``) that holds COCO's keys but is not one
    JSON object with COCO's lists, with the line or the list it lacks; None otherwise."""
    if not isinstance(data, str | Path):
        return None
    path = Path(data).expanduser()
    if path.is_file():
        files = [path] if path.suffix.lower() == ".json" else []
    else:
        folders = [path, path / "annotations"]
        files = [f for where in folders if where.is_dir() for f in sorted(where.glob("*.json"))]
    for file in files:
        reason = _json_near_miss(file)
        if reason:
            return reason
    return None


def _json_near_miss(file: Path) -> str | None:
    try:
        text = file.read_text(encoding="utf-8-sig", errors="replace")
    except OSError:
        return None
    if not any(word in text[:65536] for word in _COCO_WORDS):
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        return f"{file}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})"
    if not isinstance(doc, dict):
        return f"{file}, line 1: a JSON {type(doc).__name__}, not an object; {COCO_FILE}"
    lacking = [key for key in ("images", "annotations") if not isinstance(doc.get(key), list)]
    if not lacking:
        return None
    keys = ", ".join(map(repr, doc)) or "none"
    return f"{file}: no {' or '.join(map(repr, lacking))} list (its keys: {keys}); {COCO_FILE}"
