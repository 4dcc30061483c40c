"""Tables as the Python ecosystem holds them: pandas DataFrames, Hugging Face ``datasets``
(a ``Dataset``, or a ``DatasetDict`` of splits) and Parquet files, read as CSV rows.

Each becomes the rows and columns :func:`graft.data.sources.read_table` gives for a CSV, so
column detection, task inference, skipped rows and every message are the CSV path's. A cell
reads as a CSV cell would: numbers as their digits (an integer stored as a float, as pandas does
in a column with gaps, as ``1`` not ``1.0``), None and NaN as empty (a missing label), a
``ClassLabel`` value as its class name (-1, the hub's "no label", as empty), and a list as its
labels joined by the label delimiter (``;`` unless another is given): a column of lists is a
multilabel column (:class:`LabelList`).

Rows are numbered from 0, as ``df.iloc[n]``, ``dataset[n]`` and ``pd.read_parquet(path).iloc[n]``
find them (a DataFrame whose index is not ``0..n-1`` names the index label too). In-memory
tables read image paths as given, relative ones from the current folder; a Parquet file's are
read from its folder and may not leave it, as a CSV's.

Images held in a column (PIL images, ``H x W (x C)`` uint8 arrays, encoded bytes, and the
``{"bytes", "path"}`` values of a ``datasets.Image`` column) are stored as files, because the
rest of graft (the feature cache keyed by content, transforms, report thumbnails) reads paths:
:func:`store_image` writes each once under :func:`image_store` named by the SHA-256 of its
bytes. Decoded pixels are written as PNG (lossless); encoded bytes in a format graft reads by
suffix (JPEG, PNG, ...) are kept as they are, so that they match the file they came from. A
value that is not an image is skipped like a broken image file, named by its row.

pandas, pyarrow and ``datasets`` are imported only when such an input is given.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
import struct
import sys
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from graft.data.images import MAX_IMAGE_PIXELS, UnreadableImage, open_rgb
from graft.errors import ConfigError, DataError

#: The pip command that installs what Parquet files and DataFrames need.
TABLES_EXTRA = "pip install 'graft[tables]'"
#: Formats whose encoded bytes are stored as they are, with the suffix graft reads them by.
KEPT_FORMATS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "PPM": ".ppm",
}
#: Image modes a PNG holds as they are; others are converted to RGB first.
PNG_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})
#: pandas' columns for a DataFrame's index in a Parquet file it wrote.
_PANDAS_INDEX = "__index_level_"


class LabelList(str):
    """A cell that held a list of labels, joined by ``delimiter``; ``parts`` are the labels."""

    parts: tuple[str, ...]
    delimiter: str

    def __new__(cls, parts: Sequence[str], delimiter: str) -> LabelList:
        cell = super().__new__(cls, delimiter.join(parts))
        cell.parts, cell.delimiter = tuple(parts), delimiter
        return cell


class StoredImage(str):
    """A cell that held an image, now the absolute path of its stored file (which may lie
    outside a Parquet file's folder: it is graft's own)."""


class UnusableImage(str):
    """A cell that held an image value which cannot be used; empty, with the ``reason``."""

    reason: str

    def __new__(cls, reason: str) -> UnusableImage:
        cell = super().__new__(cls, "")
        cell.reason = reason
        return cell


@dataclass(frozen=True)
class FrameOrigin:
    """Where the rows of an in-memory table came from, standing where a table's path stands
    in :mod:`graft.data.sources`: its name for messages, and the folder that relative image
    paths are read from (the current folder when the table was read).

    Attributes:
        name: ``DataFrame``, ``datasets.Dataset 'train'``, ...
        parent: the folder relative image paths are read from.
        index: the DataFrame's index labels, when they are not ``0..n-1``.
    """

    name: str
    parent: Path
    index: tuple | None = None
    suffix = ""

    def __str__(self) -> str:
        return self.name

    def where(self, number: int) -> str:
        """Row ``number`` (from 0) named for a message."""
        label = f" (index {self.index[number]!r})" if self.index is not None else ""
        return f"{self.name}, row {number}{label}"


# What an object is ------------------------------------------------------------------------------


def _instance(value: Any, module: str, name: str) -> bool:
    """Whether ``value`` is a ``module.name``, without importing ``module``: if it is not
    imported yet, nothing can be an instance of its classes."""
    loaded = sys.modules.get(module)
    kind = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(kind, type) and isinstance(value, kind)


def is_frame(value: Any) -> bool:
    """Whether ``value`` is a table held in memory: a pandas DataFrame or Series, a
    ``datasets.Dataset``, or splits of them (a ``DatasetDict`` or a dict)."""
    return (
        _instance(value, "pandas", "DataFrame")
        or _instance(value, "pandas", "Series")
        or _instance(value, "datasets", "Dataset")
        or is_split_mapping(value)
    )


def is_split_mapping(value: Any) -> bool:
    """Whether ``value`` holds named splits: a ``datasets.DatasetDict``, or a dict whose
    values are in-memory tables or paths."""
    if _instance(value, "datasets", "DatasetDict"):
        return True
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) for k in value)
        and all(is_frame(v) or isinstance(v, str | os.PathLike) for v in value.values())
    )


def split_parts(splits: Mapping, names: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """``{"train": ..., "val": ..., "test": ...}`` of ``splits`` (each None when absent), the
    keys of ``names`` found by any of their spellings (``validation`` for ``val``)."""
    found = {
        key: next((splits[n] for n in spellings if n in splits), None)
        for key, spellings in names.items()
    }
    if found["train"] is None:
        raise DataError(
            f"the splits {', '.join(map(repr, splits))} have no 'train' split; name the training "
            "data 'train' (and the others 'validation' and 'test')"
        )
    return found


def is_image_value(value: Any) -> bool:
    """Whether ``value`` is one image held in memory: a PIL image, an ``H x W`` or
    ``H x W x C`` array (C 1, 3 or 4), or a ``datasets.Image`` value with bytes."""
    if isinstance(value, np.ndarray):
        return value.ndim == 2 or (value.ndim == 3 and value.shape[-1] in (1, 3, 4))
    return isinstance(value, Image.Image) or (_image_record(value) and bool(value.get("bytes")))


def _image_record(value: Any) -> bool:
    """A ``datasets.Image`` value: a dict of ``bytes`` and ``path`` (either may be None)."""
    return isinstance(value, Mapping) and bool(value) and set(value) <= {"bytes", "path"}


def _image_cell(value: Any) -> bool:
    """Whether a cell holds an image to store (or a value that tries to be one)."""
    if isinstance(value, np.ndarray):
        return value.ndim >= 2
    if isinstance(value, list | tuple) and value and isinstance(value[0], list | tuple):
        return True  # nested lists: an array's pixels, as a datasets Array3D column holds them
    return isinstance(value, Image.Image | bytes | bytearray | memoryview) or _image_record(value)


# Reading ----------------------------------------------------------------------------------------


def read_frame(
    source: Any,
    *,
    name: str | None = None,
    label_delimiter: str | Mapping[str, str | None] | None = None,
) -> tuple[FrameOrigin, list[dict[str, str]], list[str]]:
    """The rows (cells as CSV text) and columns of a DataFrame, Series or ``datasets.Dataset``,
    and where they came from; ``label_delimiter`` joins list cells (one, or one per column)."""
    if is_split_mapping(source):
        raise DataError(
            f"{_kind(source)} holds the splits {', '.join(map(repr, source))}; give one of them "
            "(or pass it as the data of a fit, which reads train, validation and test)"
        )
    name = name or frame_name(source)
    if _instance(source, "datasets", "Dataset"):
        columns, values = arrow_columns(source.with_format("arrow")[:], name)
        index = None
    else:
        frame = source
        if frame.ndim == 1:  # a Series: one column
            frame = frame.to_frame("value" if frame.name is None else frame.name)
        columns = [str(c) for c in frame.columns]
        values = [frame.iloc[:, i].to_numpy() for i in range(len(columns))]
        default = frame.index.equals(sys.modules["pandas"].RangeIndex(len(frame)))
        index = None if default else tuple(frame.index)
    origin = FrameOrigin(name, Path.cwd(), index)
    return origin, table_rows(origin, columns, values, label_delimiter), columns


def frame_name(source: Any, split: str | None = None) -> str:
    """How messages name an in-memory table: its kind, and its split when it has one
    (``datasets.Dataset 'train'``)."""
    split = split or (
        getattr(source, "split", None) if _kind(source) == "datasets.Dataset" else None
    )
    return _kind(source) + (f" {str(split)!r}" if split else "")


def _kind(source: Any) -> str:
    if _instance(source, "datasets", "DatasetDict"):
        return "datasets.DatasetDict"
    if _instance(source, "datasets", "Dataset"):
        return "datasets.Dataset"
    return type(source).__name__


def read_parquet(
    path: Path, *, label_delimiter: str | Mapping[str, str | None] | None = None
) -> tuple[list[dict[str, str]], list[str]]:
    """The rows (cells as CSV text) and columns of a Parquet file, as
    :func:`graft.data.sources.read_table` gives a CSV's."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"{path}: reading Parquet needs pyarrow: {TABLES_EXTRA}") from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None
    table = table.drop_columns([c for c in table.column_names if c.startswith(_PANDAS_INDEX)])
    columns, values = arrow_columns(table, str(path))
    return table_rows(path, columns, values, label_delimiter), columns


def arrow_columns(table: Any, name: str) -> tuple[list[str], list[list]]:
    """A pyarrow table's column names and values (Python objects), ``ClassLabel`` columns (a
    ``datasets`` table's, or a Parquet file's that ``datasets`` wrote) as class names."""
    columns = [str(c) for c in table.column_names]
    names = _class_names(table.schema.metadata or {})
    values = []
    for column, values_of in zip(columns, table.columns, strict=True):
        cells = values_of.to_pylist()
        if column in names:
            cells = _named_classes(name, column, cells, names[column])
        values.append(cells)
    return columns, values


def _class_names(metadata: Mapping[bytes, bytes]) -> dict[str, list[str]]:
    """Column -> class names of its ``ClassLabel`` (or list of them), from the features that
    ``datasets`` records in an Arrow schema."""
    try:
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
    except (KeyError, TypeError, ValueError):
        return {}
    found = {}
    for column, feature in features.items():
        if isinstance(feature, dict) and isinstance(feature.get("feature"), dict):
            feature = feature["feature"]  # a Sequence / List of ClassLabel
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
            found[column] = list(feature.get("names") or [])
    return found


def _named_classes(name: str, column: str, cells: list, classes: list[str]) -> list:
    def named(value: Any, row: int) -> Any:
        if isinstance(value, list):
            return [named(v, row) for v in value]
        if value is None or value == -1:  # the hub's "no label"
            return None
        if not 0 <= value < len(classes):
            raise DataError(
                f"{name}, row {row}: {value} in column {column!r} is not a class of its "
                f"ClassLabel, which has {len(classes)} names"
            )
        return classes[value]

    return [named(value, row) for row, value in enumerate(cells)]


def _check_distinct(name: str, columns: list[str]) -> None:
    seen = set()
    for column in columns:
        if column in seen:
            raise DataError(f"{name}: column {column!r} appears twice; columns need distinct names")
        seen.add(column)


def table_rows(
    origin: FrameOrigin | Path,
    columns: list[str],
    values: list[Sequence],
    label_delimiter: str | Mapping[str, str | None] | None = None,
) -> list[dict[str, str]]:
    """Rows of cells as CSV text from columns of values (see the module docstring); image
    values are stored (:func:`store_image`), several at a time."""
    if not columns:
        raise DataError(f"{origin}: the table is empty (no columns)")
    _check_distinct(str(origin), columns)
    count = len(values[0]) if values else 0
    cells: list[list[str]] = []
    images: list[tuple[int, int, Any]] = []
    for c, (column, column_values) in enumerate(zip(columns, values, strict=True)):
        delimiter = (
            label_delimiter.get(column) if isinstance(label_delimiter, Mapping) else label_delimiter
        )
        out = []
        for r, value in enumerate(column_values):
            if _image_cell(value):
                images.append((c, r, value))
                out.append("")
            else:
                out.append(cell_text(value, delimiter or ";"))
        cells.append(out)
    if images:
        with ThreadPoolExecutor(max_workers=4) as pool:
            stored = pool.map(lambda image: _stored_cell(image[2], columns[image[0]]), images)
            for (c, r, _), cell in zip(images, stored, strict=True):
                cells[c][r] = cell
    return [{column: cells[c][r] for c, column in enumerate(columns)} for r in range(count)]


def cell_text(value: Any, delimiter: str = ";") -> str:
    """A cell as CSV text: None and NaN empty, integral numbers as integers, a list of labels
    joined by ``delimiter`` (a :class:`LabelList`)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return ""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return str(int(value)) if math.isfinite(value) and float(value).is_integer() else str(value)
    if isinstance(value, list | tuple | np.ndarray):
        parts = [cell_text(v, delimiter).strip() for v in value]
        return LabelList([p for p in parts if p], delimiter)
    return str(value)


def _stored_cell(value: Any, column: str) -> str:
    """The stored image's path for a cell, or an :class:`UnusableImage` saying why not."""
    if isinstance(value, Mapping) and not value.get("bytes"):
        return cell_text(value.get("path"))  # a datasets.Image value that names a file
    try:
        return StoredImage(store_image(value))
    except UnreadableImage as error:
        return UnusableImage(f"unreadable image in column {column!r}: {error}")


# Storing images --------------------------------------------------------------------------------


def image_store() -> Path:
    """Where in-memory images are stored: ``images/`` under the feature cache's root
    (``$GRAFT_CACHE_DIR``, else ``~/.cache/graft``)."""
    from graft.features import default_cache_dir

    return default_cache_dir() / "images"


def store_image(value: Any) -> str:
    """The absolute path of a file holding the image ``value`` (see the module docstring),
    written once: ``<store>/<sha[:2]>/<sha><suffix>``, atomically, never rewritten.

    Raises:
        UnreadableImage: ``value`` is not an image, does not decode, or is over the size limit.
    """
    if isinstance(value, Mapping):
        value = value["bytes"]
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        suffix = _kept_suffix(data)
        if suffix is None:
            data, suffix = _png(_decoded(data)), ".png"
    else:
        data, suffix = _png(_pixels(value)), ".png"
    digest = hashlib.sha256(data).hexdigest()
    target = image_store() / digest[:2] / f"{digest}{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{digest}.{uuid.uuid4().hex}.tmp{suffix}")
        temporary.write_bytes(data)
        try:
            open_rgb(temporary)  # decodes as every image file graft reads must
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
    return str(target.resolve())


def _kept_suffix(data: bytes) -> str | None:
    """The suffix of encoded bytes in a format graft reads as they are (None: re-encode)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return KEPT_FORMATS.get(image.format or "")
    except (OSError, SyntaxError, ValueError, EOFError, struct.error):
        raise UnreadableImage("the bytes are not an image that PIL can identify") from None


def _decoded(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise UnreadableImage(str(error) or type(error).__name__) from None


def _pixels(value: Any) -> Image.Image:
    """A PIL image of ``value`` (a PIL image, or an array of uint8 pixels), upright."""
    if isinstance(value, Image.Image):
        try:
            value.load()
            return ImageOps.exif_transpose(value)
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
            raise UnreadableImage(str(error) or type(error).__name__) from None
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise UnreadableImage(
            f"an array of shape {array.shape} is not an image (H x W, H x W x 3 or H x W x 4)"
        )
    if array.dtype == np.uint16 and array.ndim == 2:
        return Image.fromarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255:
        raise UnreadableImage(
            f"an array of {array.dtype} pixels; give uint8 values from 0 to 255 (or a PIL image)"
        )
    return Image.fromarray(array.astype(np.uint8))


def _png(image: Image.Image) -> bytes:
    """``image`` encoded losslessly as PNG (fast compression), without its metadata."""
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise UnreadableImage(
            f"{image.width}x{image.height} pixels is over the limit of {MAX_IMAGE_PIXELS:,}"
        )
    if image.mode not in PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
