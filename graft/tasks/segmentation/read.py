"""Semantic segmentation data: images with a mask of class indices each, read and checked.

Folder layouts recognised (folder names matched without regard to case):

- an image folder (``images``, ``image``, ``imgs``, ``img``, ``JPEGImages``, ``PNGImages``)
  beside a mask folder (``masks``, ``mask``, ``labels``, ``annotations``, ``SegmentationClass``,
  ``PedMasks``, ``gt``, ``groundtruth``), or ``<name>/`` beside ``<name>_masks/``,
  ``<name>_mask/``, ``<name>_labels/`` or ``<name>_annotations/``;
- splits: ``train/``, ``val/`` (``valid/``, ``validation/``), ``test/`` each of that shape, or
  ``images/train`` beside ``masks/train`` and so on.

A mask belongs to the image of the same relative path and stem, or of that stem with one of
:data:`MASK_SUFFIXES` taken off (``FudanPed00001_mask.png`` is ``FudanPed00001.png``'s).
Masks are single-channel PNGs of class indices, palette PNGs (read as their indices, whatever
their colours), or RGB images coded by colour with a class file giving each class's colour.
A class file (``classes`` argument, or ``classes.csv``, ``class_dict.csv``, ``classes.txt``,
``labels.txt``, ``label_colors.txt``, ``classes.json`` beside the data) lists the classes in
index order: a name a line, or a name and ``r, g, b`` a line (``name,r,g,b`` or ``r g b name``;
a header line is allowed), or JSON ``{"name": [r, g, b], ...}`` or a list of names.

A COCO JSON file (polygons or RLE) is rendered to semantic masks on demand: background 0,
category k (in id order) k + 1, later instances painting over earlier ones, and crowd regions
the ignore index unless an instance covers them.

``binary=True`` reads instance-valued or 0/255 masks (Penn-Fudan's ``PedMasks``: 0 background,
k instance k) as two classes: every value above 0 is class 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from graft.data.annotations.checks import MAX_WARNINGS, image_size
from graft.data.annotations.coco import coco_files, coco_split_files, read_coco, split_of
from graft.data.annotations.target import DetectionTarget
from graft.data.images import UnreadableImage, is_image_file
from graft.errors import ConfigError, DataError

log = logging.getLogger("graft")

IMAGE_FOLDERS = ("images", "image", "imgs", "img", "jpegimages", "pngimages")
MASK_FOLDERS = (
    "masks",
    "mask",
    "labels",
    "annotations",
    "segmentationclass",
    "pedmasks",
    "gt",
    "groundtruth",
)
MASK_FOLDER_SUFFIXES = ("_masks", "_mask", "_labels", "_annotations")
MASK_SUFFIXES = ("_mask", "_masks", "_label", "_labels", "_seg", "_segmentation", "_gt", "_L")
CLASS_FILES = (
    "classes.csv",
    "class_dict.csv",
    "classes.txt",
    "labels.txt",
    "label_colors.txt",
    "classes.json",
)
SPLITS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
Color = tuple[int, int, int]


@dataclass
class SegmentationData:
    """Images and their masks.

    Attributes:
        images: absolute image paths.
        masks: per image, the mask file's path, or a picklable callable rendering the mask
            (COCO sources); read either with :meth:`load_mask`.
        classes: class names in index order (background first for binary and COCO data).
        ignore_index: the mask value that marks pixels to leave out of the loss and metrics.
        source: where the data came from, for messages.
        skipped: ``(file, reason)`` for images left out (unreadable, or without a mask).
        binary: read every mask value above 0 as class 1.
        colors: the colour of each class, for masks coded by colour (None: index masks).
        sizes: ``(height, width)`` of each image.
    """

    images: list[str]
    masks: list[str] | list[Callable[[], np.ndarray]]
    classes: list[str]
    ignore_index: int = 255
    source: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    binary: bool = False
    colors: list[Color] | None = None
    sizes: list[tuple[int, int]] = field(default_factory=list)
    #: What the inputs are (the data protocol's; picks the default backbone).
    modality: ClassVar[str] = "image"

    def __len__(self) -> int:
        return len(self.images)

    def load_mask(self, index: int) -> np.ndarray:
        """The mask of image ``index``: class indices ``[H, W]`` (uint8, or int64 beyond 255),
        the ignore index kept as it is."""
        mask = self.masks[index]
        values = mask() if callable(mask) else read_mask(mask, self.colors, self.binary)
        return _narrow(values, len(self.classes), self.ignore_index)

    def subset(self, indices: np.ndarray | list[int]) -> SegmentationData:
        indices = [int(i) for i in np.asarray(indices, dtype=np.int64).reshape(-1)]
        return SegmentationData(
            [self.images[i] for i in indices],
            [self.masks[i] for i in indices],  # type: ignore[misc]
            list(self.classes),
            self.ignore_index,
            self.source,
            list(self.skipped),
            self.binary,
            self.colors,
            [self.sizes[i] for i in indices] if self.sizes else [],
        )

    def content_hash(self) -> str:
        """SHA-256 over the classes, how masks are read, and every image's and mask's content."""
        digest = hashlib.sha256()
        settings = [self.classes, self.ignore_index, self.binary, self.colors]
        digest.update(json.dumps(settings).encode("utf-8"))
        for image, mask in zip(self.images, self.masks, strict=True):
            digest.update(hashlib.sha256(Path(image).read_bytes()).digest())
            key = mask.key() if isinstance(mask, CocoMask) else Path(mask).read_bytes()
            digest.update(hashlib.sha256(key).digest())
        return digest.hexdigest()


def _narrow(values: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    if max(num_classes - 1, ignore_index) <= 255 and values.dtype != np.uint8:
        return values.astype(np.uint8)
    return values if values.dtype == np.uint8 else values.astype(np.int64)


# Reading one mask ------------------------------------------------------------------------------


def read_mask(path: str | Path, colors: Sequence[Color] | None, binary: bool) -> np.ndarray:
    """The class values of one mask file ``[H, W]``, before any check against the classes.

    Raises:
        DataError: an RGB mask without class colours, or with a colour not among them.
        UnreadableImage: the file cannot be decoded.
    """
    try:
        with Image.open(path) as image:
            image.load()
            values = _mask_values(path, image, colors)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise UnreadableImage(str(error) or type(error).__name__) from None
    return (values > 0).astype(np.uint8) if binary else values


def _mask_values(path: str | Path, image: Image.Image, colors: Sequence[Color] | None):
    if image.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
        return np.asarray(image).astype(np.int64 if image.mode.startswith("I") else np.uint8)
    if image.mode == "LA":
        return np.asarray(image)[..., 0]
    rgb = np.asarray(image.convert("RGB"))
    if colors is None:
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
            return rgb[..., 0]  # grey values saved as RGB
        raise DataError(
            f"{path}: a colour mask, but no class colours are known; give a class file with "
            "a name and r, g, b per class (e.g. classes.csv: name,r,g,b)"
        )
    wide = rgb.astype(np.int64)
    packed = (wide[..., 0] << 16) | (wide[..., 1] << 8) | wide[..., 2]
    found, inverse = np.unique(packed, return_inverse=True)
    lookup = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(colors)}
    unknown = [int(v) for v in found if int(v) not in lookup]
    if unknown:
        shown = ", ".join(f"({v >> 16}, {(v >> 8) & 255}, {v & 255})" for v in unknown[:5])
        raise DataError(f"{path}: colour(s) {shown} are not in the class colours")
    return np.asarray([lookup[int(v)] for v in found], dtype=np.int64)[inverse].reshape(
        packed.shape
    )


# Class files -----------------------------------------------------------------------------------

_COLOR_FIRST = re.compile(r"^\s*(\d+)[\s,;]+(\d+)[\s,;]+(\d+)[\s,;]+(.+?)\s*$")
_NAME_FIRST = re.compile(r"^\s*(.+?)[\s,;]+(\d+)[\s,;]+(\d+)[\s,;]+(\d+)\s*$")


def read_class_file(path: str | Path) -> tuple[list[str], list[Color] | None]:
    """Class names in index order and, when the file gives them, each class's colour.

    Raises:
        DataError: the file cannot be read or parsed (naming the line), or repeats a name or
            a colour.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot be read as a class file ({error})") from None
    if path.suffix.lower() == ".json":
        names, colors = _json_classes(path, text)
    else:
        names, colors = _text_classes(path, text)
    if not names:
        raise DataError(f"{path}: holds no classes")
    for values, what in ((names, "class"), (colors or [], "colour")):
        repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if repeated is not None:
            raise DataError(f"{path}: the {what} {repeated!r} is listed twice")
    return names, colors


def _json_classes(path: Path, text: str) -> tuple[list[str], list[Color] | None]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from None
    if isinstance(doc, list) and all(isinstance(name, str) for name in doc):
        return list(doc), None
    if isinstance(doc, list):
        doc = {str(d.get("name")): d.get("color") for d in doc if isinstance(d, dict)}
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected {{name: [r, g, b]}} or a list of names")
    colors = []
    for name, color in doc.items():
        if not _is_color(color):
            raise DataError(f"{path}: class {name!r}: the colour must be [r, g, b] in 0-255")
        colors.append(tuple(int(c) for c in color))
    return [str(name) for name in doc], colors


def _is_color(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(c, int) and 0 <= c <= 255 for c in value)
    )


def _text_classes(path: Path, text: str) -> tuple[list[str], list[Color] | None]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    lines = [(n, line) for n, line in lines if not line.lstrip().startswith("#")]
    parsed = []
    for number, line in lines:
        if match := _COLOR_FIRST.match(line):
            parsed.append((number, match.group(4), match.groups()[:3]))
        elif match := _NAME_FIRST.match(line):
            parsed.append((number, match.group(1), match.groups()[1:]))
        else:
            parsed.append((number, line.strip(), None))
    if not any(color for _, _, color in parsed):
        return [name for _, name, _ in parsed], None
    if parsed[0][2] is None:  # a header line such as name,r,g,b
        parsed = parsed[1:]
    names, colors = [], []
    for number, name, color in parsed:
        if color is None or max(int(c) for c in color) > 255:
            raise DataError(f"{path}, line {number}: expected a class name and r, g, b (0-255)")
        names.append(name.strip().strip(",;").strip().strip('"'))
        colors.append(tuple(int(c) for c in color))
    return names, colors


# Folder layouts --------------------------------------------------------------------------------


def _subfolders(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    return {d.name.lower(): d for d in sorted(root.iterdir()) if d.is_dir()}


def _holds_images(folder: Path) -> bool:
    return any(is_image_file(f) for f in folder.rglob("*") if f.is_file())


def find_pair(root: Path) -> tuple[Path, Path] | None:
    """The image folder and mask folder of ``root`` (see the module), or None."""
    children = _subfolders(root)
    image_dir = next((children[n] for n in IMAGE_FOLDERS if n in children), None)
    masks = [children[n] for n in MASK_FOLDERS if n in children]
    mask_dir = next((m for m in masks if _holds_images(m)), None)
    if image_dir is not None and mask_dir is not None:
        return image_dir, mask_dir
    for name, folder in children.items():
        for suffix in MASK_FOLDER_SUFFIXES:
            if name + suffix in children:
                return folder, children[name + suffix]
    return None


def find_split_pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """The image and mask folders of each split in ``root``; empty when it holds no splits."""
    found = {}
    children = _subfolders(root)
    for split, names in SPLITS.items():
        pair = next((p for n in names if n in children and (p := find_pair(children[n]))), None)
        if pair is not None:
            found[split] = pair
    if found:
        return found
    top = find_pair(root)
    if top is not None:
        images, masks = _subfolders(top[0]), _subfolders(top[1])
        for split, names in SPLITS.items():
            name = next((n for n in names if n in images and n in masks), None)
            if name is not None:
                found[split] = (images[name], masks[name])
    return found


def _stem_key(relative: Path) -> str:
    return relative.with_suffix("").as_posix()


def match_masks(
    image_dir: Path, mask_dir: Path
) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """``(image, mask)`` pairs by relative path and stem, and the images without a mask."""
    masks: dict[str, Path] = {}
    stripped: dict[str, Path] = {}
    for file in sorted(mask_dir.rglob("*")):
        if file.is_file() and is_image_file(file) and not file.name.startswith("."):
            key = _stem_key(file.relative_to(mask_dir))
            masks[key] = file
            for suffix in MASK_SUFFIXES:
                if key.endswith(suffix):
                    stripped.setdefault(key[: -len(suffix)], file)
    pairs, skipped, used = [], [], set()
    for image in sorted(image_dir.rglob("*")):
        if not image.is_file() or not is_image_file(image) or image.name.startswith("."):
            continue
        key = _stem_key(image.relative_to(image_dir))
        mask = masks.get(key) or stripped.get(key)
        if mask is None:
            skipped.append((str(image), f"no mask of the same name in {mask_dir}"))
            continue
        used.add(mask)
        pairs.append((image.resolve(), mask.resolve()))
    unused = len(set(masks.values()) - {m for m in used})
    if unused:
        log.warning("%s: %d mask(s) have no image of the same name; ignored", mask_dir, unused)
    return pairs, skipped


# Reading ---------------------------------------------------------------------------------------


def read_segmentation(
    source: str | Path,
    *,
    classes: Sequence[str] | str | Path | None = None,
    binary: bool = False,
    ignore_index: int = 255,
) -> SegmentationData:
    """Read segmentation data: an image folder with a mask folder (all splits together when
    it holds several), or a COCO JSON file (see the module for the layouts).

    ``classes``: the class names in index order, or a class file (names, or names with
    colours); None: a class file beside the data, else ``"0"``, ``"1"``, ... up to the largest
    mask value (binary: ``background``, ``foreground``; COCO: ``background`` then the
    categories). Every mask is decoded once here, to check it.

    Raises:
        DataError: no recognised layout; a mask whose size differs from its image's, or with
            values that are no class nor the ignore index (naming the file, both sizes, or the
            values); an unknown colour; no usable image.
        ConfigError: ``ignore_index`` is a class index, or ``binary`` with other than 2 classes.
    """
    path = _existing(source)
    if path.is_file():
        return _read_coco(path, classes, binary, ignore_index)
    pair = find_pair(path)
    pairs = [pair] if pair else list(find_split_pairs(path).values())
    if pairs:
        matched, skipped = [], []
        for images, masks in pairs:
            found, missing = match_masks(images, masks)
            matched += found
            skipped += missing
        names, colors = _class_setup([path, pairs[0][1]], classes, binary)
        return _read_pairs(matched, skipped, names, colors, binary, ignore_index, str(path))
    coco = _coco_file(path)
    if coco is not None:
        return _read_coco(coco, classes, binary, ignore_index)
    raise DataError(
        f"{path}: no segmentation data found: expected an image folder ({', '.join(IMAGE_FOLDERS)}"
        f") beside a mask folder ({', '.join(MASK_FOLDERS)}), train/ and val/ folders of that "
        "shape, or a COCO .json file"
    )


def read_segmentation_splits(
    source: str | Path,
    *,
    classes: Sequence[str] | str | Path | None = None,
    binary: bool = False,
    ignore_index: int = 255,
) -> tuple[SegmentationData, SegmentationData | None, SegmentationData | None]:
    """``(train, val, test)`` of a layout holding splits (``train/``+``val/`` folders,
    ``images/train``+``masks/train``, or COCO files named ``*train*``/``*val*``/``*test*``);
    otherwise all of ``source`` as train. Validation and test use the training classes."""
    path = _existing(source)
    options = dict(binary=binary, ignore_index=ignore_index)
    splits = find_split_pairs(path) if path.is_dir() else {}
    if "train" in splits:
        names, colors = _class_setup([path, splits["train"][1]], classes, binary)
        read = {}
        for split, (images, masks) in splits.items():
            matched, skipped = match_masks(images, masks)
            where = f"{path} ({split})"
            read[split] = _read_pairs(matched, skipped, names, colors, binary, ignore_index, where)
            names, colors = read["train"].classes, read["train"].colors
        return read["train"], read.get("val"), read.get("test")
    files = coco_split_files(path) if path.is_dir() and find_pair(path) is None else {}
    if "train" in files:
        train = _read_coco(files["train"], classes, **options)
        rest = {
            s: _read_coco(files[s], train.classes, **options) if s in files else None
            for s in ("val", "test")
        }
        return train, rest["val"], rest["test"]
    return read_segmentation(path, classes=classes, **options), None, None


def _existing(source: str | Path) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    path = path.resolve()
    if path.is_file() and path.suffix.lower() != ".json":
        raise DataError(f"{path}: not a folder of images and masks, nor a COCO .json file")
    return path


def _coco_file(folder: Path) -> Path | None:
    files = coco_files(folder)
    whole = [f for f in files if split_of(f) is None]
    return (whole or files or [None])[0]


def _class_setup(
    folders: list[Path], classes: Sequence[str] | str | Path | None, binary: bool
) -> tuple[list[str] | None, list[Color] | None]:
    """The class names (None: to infer from the masks) and colours, from ``classes`` or a
    class file in ``folders``."""
    colors = None
    if isinstance(classes, str | Path):
        names, colors = read_class_file(classes)
    elif classes is not None:
        names = [str(name) for name in classes]
    else:
        file = next((f / n for f in folders for n in CLASS_FILES if (f / n).is_file()), None)
        names, colors = read_class_file(file) if file is not None else (None, None)
        if binary:
            names = None
    if binary:
        if names is not None and len(names) != 2:
            raise ConfigError(f"binary masks have 2 classes, but {len(names)} are given: {names}")
        names = names or ["background", "foreground"]
    return names, colors


def _read_pairs(
    pairs: list[tuple[Path, Path]],
    skipped: list[tuple[str, str]],
    names: list[str] | None,
    colors: list[Color] | None,
    binary: bool,
    ignore_index: int,
    source: str,
) -> SegmentationData:
    """Decode every mask once, check it against its image and the classes, and keep the pairs."""

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda pair: _check_pair(pair, colors, binary), pairs))
    skipped = skipped + [found for kind, found in results if kind == "skip"]
    for where, why in skipped:
        log.warning("skipped %s: %s", where, why)
    kept = [
        (pair, found) for pair, (kind, found) in zip(pairs, results, strict=True) if kind == "ok"
    ]
    problems = [found for kind, found in results if kind == "problem"]
    uniques = [values for _, (_, values) in kept]
    if names is None:
        largest = max(
            (int(v.max()) for v in (u[u != ignore_index] for u in uniques) if v.size), default=0
        )
        names = [str(i) for i in range(largest + 1)]
    _check_ignore(names, ignore_index)
    for pair, (_, values) in kept:
        bad = values[(values >= len(names)) & (values != ignore_index)]
        if bad.size:
            shown = ", ".join(str(int(v)) for v in bad[:8]) + (", ..." if bad.size > 8 else "")
            problems.append(
                f"{pair[1]}: value(s) {shown} are not among the {len(names)} classes "
                f"(0-{len(names) - 1}) nor the ignore index {ignore_index}"
            )
    _raise_problems(problems)
    if not kept:
        raise DataError(f"{source}: no usable image with a mask ({len(skipped)} skipped)")
    _warn_if_only_ignore(source, uniques, ignore_index, binary)
    return SegmentationData(
        images=[str(pair[0]) for pair, _ in kept],
        masks=[str(pair[1]) for pair, _ in kept],
        classes=list(names),
        ignore_index=ignore_index,
        source=source,
        skipped=skipped,
        binary=binary,
        colors=colors,
        sizes=[size for _, (size, _) in kept],
    )


def _check_pair(
    pair: tuple[Path, Path], colors: list[Color] | None, binary: bool
) -> tuple[str, Any]:
    """``("ok", ((height, width), mask values))``, ``("skip", (file, why))`` for an unreadable
    file, or ``("problem", message)`` for a mask that does not fit its image."""
    image, mask = pair
    try:
        width, height = image_size(image)
    except UnreadableImage as error:
        return "skip", (str(image), str(error))
    try:
        values = read_mask(mask, colors, binary)
    except UnreadableImage as error:
        return "skip", (str(mask), f"unreadable mask: {error}")
    except DataError as error:
        return "problem", str(error)
    if values.shape != (height, width):
        return "problem", (
            f"{mask}: the mask is {values.shape[1]}x{values.shape[0]} but its image "
            f"{image.name} is {width}x{height}"
        )
    return "ok", ((height, width), np.unique(values))


def _check_ignore(names: list[str], ignore_index: int) -> None:
    if 0 <= ignore_index < len(names):
        raise ConfigError(
            f"the ignore index {ignore_index} is also the index of class {names[ignore_index]!r}"
        )


def _raise_problems(problems: list[str]) -> None:
    if not problems:
        return
    for problem in problems[:MAX_WARNINGS]:
        log.warning("%s", problem)
    more = (
        f" (and {len(problems) - 1} more masks with problems, logged)" if len(problems) > 1 else ""
    )
    raise DataError(problems[0] + more)


def _warn_if_only_ignore(
    source: str, uniques: list[np.ndarray], ignore_index: int, binary: bool
) -> None:
    values = set().union(*(set(u.tolist()) for u in uniques)) if uniques else set()
    if not binary and ignore_index in values and values <= {0, ignore_index}:
        log.warning(
            "%s: the masks hold only 0 and %d, so every object pixel is ignored; if %d marks "
            "the objects, read them with binary=True",
            source,
            ignore_index,
            ignore_index,
        )


# COCO ------------------------------------------------------------------------------------------


class CocoMask:
    """One image's COCO instances rendered to a semantic mask on demand (picklable, so that
    loader workers can render it): category k is k + 1 (or 1 when binary), later instances
    paint over earlier ones, crowd regions are the ignore index where no instance covers them.
    """

    def __init__(self, target: DetectionTarget, ignore_index: int, binary: bool):
        self.target = target
        self.ignore_index = ignore_index
        self.binary = binary

    def __call__(self) -> np.ndarray:
        target = self.target
        top = max(int(target.labels.max(initial=0)) + 1, self.ignore_index)
        dtype = np.uint8 if top <= 255 else np.int64
        mask = np.zeros((target.height, target.width), dtype=dtype)
        if not len(target):
            return mask
        instances = target.decode_masks().astype(bool)
        for instance, crowd in zip(instances, target.iscrowd, strict=True):
            if crowd:
                mask[instance] = self.ignore_index
        for instance, label, crowd in zip(instances, target.labels, target.iscrowd, strict=True):
            if not crowd:
                mask[instance] = 1 if self.binary else label + 1
        return mask

    def key(self) -> bytes:
        """What the rendered mask depends on, for a content hash."""
        target = self.target
        parts = [target.width, target.height, target.labels.tolist(), target.iscrowd.tolist()]
        parts += [self.ignore_index, self.binary, target.masks]
        return json.dumps(parts, default=lambda v: v.decode("ascii")).encode("utf-8")


def _read_coco(
    path: Path,
    classes: Sequence[str] | str | Path | None,
    binary: bool,
    ignore_index: int,
) -> SegmentationData:
    names, _ = _class_setup([], classes, binary) if classes is not None else (None, None)
    if names is not None and len(names) < 2:
        raise ConfigError(
            f"{path}: COCO masks have the background then the categories as classes; got {names}"
        )
    detection = read_coco(path, None if binary or names is None else names[1:])
    if not detection.has_masks:
        raise DataError(
            f"{path}: the annotations have no segmentation (polygons or RLE) to render masks from"
        )
    if names is None:
        if binary:
            single = detection.classes if len(detection.classes) == 1 else ["foreground"]
            names = ["background", *single]
        else:
            names = ["background", *detection.classes]
    _check_ignore(names, ignore_index)
    return SegmentationData(
        images=detection.images,
        masks=[CocoMask(t, ignore_index, binary) for t in detection.targets],
        classes=names,
        ignore_index=ignore_index,
        source=detection.source,
        skipped=detection.skipped,
        binary=binary,
        sizes=detection.sizes(),
    )


def near_miss(data: object) -> str | None:
    """Why ``data``, which segmentation does not claim, is nearly a segmentation folder: an
    image folder beside a mask folder that holds no image (itself, or in a split folder);
    None otherwise."""
    if not isinstance(data, str | Path) or not Path(data).is_dir():
        return None
    root = Path(data)
    children = _subfolders(root)
    splits = [children[n] for names in SPLITS.values() for n in names if n in children]
    for folder in (root, *splits):
        found = _subfolders(folder)
        images = next((found[n] for n in IMAGE_FOLDERS if n in found), None)
        masks = next((found[n] for n in MASK_FOLDERS if n in found), None)
        if images is None or masks is None or _holds_images(masks) or not _holds_images(images):
            continue
        return (
            f"{masks}: no mask image for the images of {images.name}/; a mask is an image of "
            f"class indices (or colours) named as its image ({images.name}/a.jpg -> "
            f"{masks.name}/a.png)"
        )
    return None
