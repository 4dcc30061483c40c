"""Checks every detection reader applies: image sizes from headers, and boxes clipped to the image,
degenerate boxes and unknown classes skipped, each reported with its file and box."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from graft.data.annotations.target import (
    REPORT_KEYS,
    DetectionData,
    DetectionTarget,
    content_counts,
)
from graft.data.images import (
    DECODE_ERRORS,
    IMAGE_EXTENSIONS,
    UnreadableImage,
    check_declared_size,
)
from graft.errors import DataError

log = logging.getLogger("graft")

#: How far (in pixels) a box may reach past the image before clipping it counts as a problem:
#: normalised coordinates written with six decimals land a little outside on large images.
CLIP_TOLERANCE = 0.01
#: Warnings of one kind logged per read; the rest are counted in the report and summed up.
MAX_WARNINGS = 20
#: EXIF orientations under which the decoded image is the stored one turned a quarter.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image read from its header (no full decode), as
    :func:`~graft.data.images.open_rgb` will give it: EXIF rotations applied.

    Raises:
        UnreadableImage: the file is empty, not an image, or over the size limit.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("the file is empty")
        with Image.open(path) as image:
            width, height = image.size
            check_declared_size(width, height)
            if _orientation(image) in _QUARTER_TURNS:
                width, height = height, width
    except UnreadableImage:
        raise
    except (*DECODE_ERRORS, Warning) as error:
        raise UnreadableImage(str(error) or type(error).__name__) from None
    return width, height


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation in the header (1: upright). A PNG may keep its EXIF after the
    pixels, where asking would decode them all: only EXIF read with the header counts."""
    if image.format in ("JPEG", "MPO", "TIFF", "WEBP"):
        return int(image.getexif().get(0x0112, 1))
    if "exif" in image.info:
        exif = Image.Exif()
        exif.load(image.info["exif"])
        return int(exif.get(0x0112, 1))
    return 1


def find_image(name: str, folders: Iterable[Path]) -> Path | None:
    """The first existing file ``folder / name`` among ``folders``."""
    for folder in folders:
        candidate = folder / name
        if candidate.is_file():
            return candidate.resolve()
    return None


def find_image_by_stem(stem: str, folders: Iterable[Path]) -> Path | None:
    """The first existing image file named ``stem`` plus an image extension in ``folders``."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for candidate in sorted(folder.glob(f"{_escape(stem)}.*")):
            if candidate.suffix.lower() in IMAGE_EXTENSIONS and candidate.is_file():
                return candidate.resolve()
    return None


def _escape(stem: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in stem)


class BoxChecks:
    """Validates boxes one at a time and counts what it did, for :attr:`DetectionData.report`.

    Boxes reaching outside the image are clipped (counted); boxes with no area inside it, and
    objects of a class not in the class list, are skipped (counted); each is logged as a
    warning naming where it is (up to :data:`MAX_WARNINGS` of a kind, then a summary).
    """

    def __init__(self, source: str):
        self.source = source
        self.counts: Counter[str] = Counter({key: 0 for key in REPORT_KEYS})
        self._warned: Counter[str] = Counter()

    def warn(self, kind: str, message: str) -> None:
        """Count one ``kind`` of problem and log ``message`` for the first few."""
        self.counts[kind] += 1
        self._warned[kind] += 1
        if self._warned[kind] <= MAX_WARNINGS:
            log.warning("%s", message)

    def box(
        self, where: str, box: Sequence[float], width: int, height: int
    ) -> tuple[float, float, float, float] | None:
        """``box`` (x1, y1, x2, y2) clipped to a ``width`` x ``height`` image, or None (and a
        warning) when nothing of it is left."""
        x1, y1, x2, y2 = (float(v) for v in box)
        shown = _box_text(box)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            self.warn("degenerate_boxes_skipped", f"{where}: box {shown} is not finite; skipped")
            return None
        clipped = (
            min(max(x1, 0.0), width),
            min(max(y1, 0.0), height),
            min(max(x2, 0.0), width),
            min(max(y2, 0.0), height),
        )
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            self.warn(
                "degenerate_boxes_skipped",
                f"{where}: box {shown} has no area inside the {width}x{height} image; skipped",
            )
            return None
        moved = max(abs(a - b) for a, b in zip(clipped, (x1, y1, x2, y2), strict=True))
        if moved > CLIP_TOLERANCE:
            self.warn(
                "boxes_clipped",
                f"{where}: box {shown} reaches outside the {width}x{height} image; clipped",
            )
        return clipped

    def unknown_class(
        self, where: str, value: object, known: Sequence[str], box: Sequence[float] | None = None
    ) -> None:
        shown = ", ".join(map(repr, known[:10])) + (", ..." if len(known) > 10 else "")
        at = f" (box {_box_text(box)})" if box is not None else ""
        self.warn(
            "unknown_class_skipped",
            f"{where}: class {value!r}{at} is not in the class list ({shown}); skipped",
        )

    def size_mismatch(self, where: str, stated: tuple[int, int], actual: tuple[int, int]) -> None:
        self.warn(
            "size_mismatches",
            f"{where}: the annotation says {stated[0]}x{stated[1]} but the image is "
            f"{actual[0]}x{actual[1]}; boxes are checked against the image",
        )

    def report(self) -> dict[str, int]:
        """The counts, after logging how many warnings of each kind were not shown."""
        for kind, count in self._warned.items():
            if count > MAX_WARNINGS:
                log.warning(
                    "%s: %d more of %s not shown (%d in all)",
                    self.source,
                    count - MAX_WARNINGS,
                    kind.replace("_", " "),
                    count,
                )
        return {key: int(self.counts[key]) for key in REPORT_KEYS}


def _box_text(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in box) + "]"


def readable_size(path: Path, skipped: list[tuple[str, str]]) -> tuple[int, int] | None:
    """:func:`image_size` of ``path``, or None with the file and why added to ``skipped``."""
    try:
        return image_size(path)
    except UnreadableImage as error:
        skipped.append((str(path), str(error)))
        return None


def finish(
    images: list[str],
    targets: list[DetectionTarget],
    classes: list[str],
    source: str,
    checks: BoxChecks,
    skipped: list[tuple[str, str]],
) -> DetectionData:
    """The data a reader found, with the skipped images logged and the report filled in.

    Raises:
        DataError: no image could be used.
    """
    for where, why in skipped:
        log.warning("skipped %s: %s", where, why)
    checks.counts["images_skipped"] += len(skipped)
    report = checks.report()
    report.update(content_counts(targets))
    if not images:
        first = f"; the first skipped: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"{source}: no usable images found ({len(skipped)} skipped{first})")
    return DetectionData(images, targets, list(classes), source, list(skipped), report)


def find_names_file(folders: Iterable[Path], names: Sequence[str]) -> Path | None:
    """The first file called one of ``names`` in ``folders`` (a class list beside the data)."""
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def read_names(path: Path) -> list[str]:
    """Class names, one a line (blank lines and ``#`` comments left out), in order.

    Raises:
        DataError: the file cannot be read, holds no name, or names a class twice.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot be read as a list of class names ({error})") from None
    names: list[str] = []
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if name in names:
            raise DataError(f"{path}, line {number}: class {name!r} is listed twice")
        names.append(name)
    if not names:
        raise DataError(f"{path}: holds no class names")
    return names


def make_target(objects: Sequence[tuple], size: tuple[int, int]) -> DetectionTarget:
    """A target from ``(box, label, mask or None[, iscrowd])`` tuples and the image's
    ``(width, height)``; a negative image gets an empty mask list."""
    width, height = size
    if not objects:
        return DetectionTarget(np.zeros((0, 4)), np.zeros(0), width, height, masks=[])
    columns = list(zip(*objects, strict=True))
    crowd = columns[3] if len(columns) > 3 else None
    boxes, labels, masks = columns[:3]
    return DetectionTarget(np.asarray(boxes), np.asarray(labels), width, height, list(masks), crowd)


def keep_masks_when_complete(source: str, targets: list[DetectionTarget]) -> None:
    """Keep the masks only when every object has one (a model learns masks for all or none)."""
    masks = [m for t in targets for m in (t.masks or [])]
    missing = sum(m is None for m in masks)
    if missing == 0 and masks:
        return
    if 0 < missing < len(masks):
        log.warning(
            "%s: %d of %d objects have no mask; masks are left out", source, missing, len(masks)
        )
    for target in targets:
        target.masks = None
