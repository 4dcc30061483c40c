"""Image similarity data: pairs whose columns hold image files, and folders of images to index.

A table's anchor and positive (and negative) columns hold images when every value of them ends
with an image extension (:data:`graft.data.images.IMAGE_EXTENSIONS`); their paths are relative
to the table's folder (to the working directory for a DataFrame or a ``datasets.Dataset``) and
are kept absolute, each checked to exist (a missing one is a DataError naming the row). A
table of images beside texts (an image query for a text document) would need an image-text
model, which graft does not have: it is refused in one line. An image's path is its id, as a
text is its own id in a table of texts.

A folder of images (searched recursively) is a corpus to index: each image's id is its path
relative to the folder, its "text" its absolute path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from graft.errors import DataError

if TYPE_CHECKING:
    import torch

#: Refused: a query by text of images (or of texts by an image).
CROSS_MODAL = (
    "searching images by text (or texts by an image) needs an image-text model, which graft "
    "does not have"
)


def is_image_path(value: object) -> bool:
    """Whether ``value`` names an image file by its extension."""
    from graft.data.images import IMAGE_EXTENSIONS  # graft.data imports torch: on use

    return isinstance(value, str | Path) and Path(str(value).strip()).suffix.lower() in (
        IMAGE_EXTENSIONS
    )


def image_columns(pairs: dict[str, list], columns: dict[str, str | None], source: str) -> bool:
    """Whether the pairs' columns hold images (all their values image files by extension);
    refused (DataError) when some do and some do not."""
    parts = [p for p in ("anchor", "positive", "negative") if columns.get(p) and pairs[p]]
    holds = {p: all(is_image_path(v) for v in pairs[p]) for p in parts}
    if all(holds.values()):
        return True
    if any(holds.values()):
        images = [columns[p] for p in parts if holds[p]]
        texts = [columns[p] for p in parts if not holds[p]]
        raise DataError(
            f"{source}: {', '.join(map(str, images))} holds images and "
            f"{', '.join(map(str, texts))} texts: {CROSS_MODAL}"
        )
    return False


def resolve_images(pairs: dict[str, list], columns: dict, source: str, first_line: int) -> None:
    """The image paths of ``pairs`` made absolute (relative to the table's folder), in place;
    a missing file raises a DataError naming the row and column."""
    base = Path(source).parent if first_line else Path.cwd()
    for part in ("anchor", "positive", "negative"):
        resolved = []
        for offset, value in enumerate(pairs[part]):
            path = Path(str(value).strip()).expanduser()
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                where = (
                    f"{source}:{first_line + offset}" if first_line else f"{source} row {offset}"
                )
                raise DataError(f"{where}: {columns[part]} {value!r}: no such image file")
            resolved.append(str(path.resolve()))
        pairs[part] = resolved


def pixels(preprocessing, paths: list[str]) -> torch.Tensor:
    """``float32[n, 3, H, W]``: the images at ``paths`` as the backbone reads them; an
    unreadable one raises a DataError naming it."""
    import torch

    from graft.data.images import UnreadableImage, open_rgb
    from graft.data.transforms import eval_transform

    transform = eval_transform(preprocessing)
    images = []
    for path in paths:
        try:
            images.append(transform(open_rgb(path)))
        except UnreadableImage as error:
            raise DataError(f"{path}: not an image graft can read ({error})") from None
    return torch.stack(images)


def image_folder(path: Path) -> dict[str, str]:
    """The images under the folder ``path`` (recursively, in path order) as id (the path
    relative to the folder) -> absolute path; DataError when it holds none."""
    found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(p))
    if not found:
        raise DataError(
            f"{path}: no corpus.jsonl and no images: a corpus is a BEIR folder, a JSONL, CSV or "
            "TSV file, or a folder of images"
        )
    return {p.relative_to(path).as_posix(): str(p.resolve()) for p in found}


def check_image_queries(queries: list[str], where: str) -> None:
    """Refuse (ConfigError, one line) a query that is not an existing image file: ``where``
    (an index, a list of images) is searched by images."""
    from graft.errors import ConfigError

    for query in queries:
        if not (is_image_path(query) and Path(str(query)).expanduser().is_file()):
            raise ConfigError(
                f"{str(query)[:80]!r} is not an image file: {where} holds images, searched by "
                f"an image's path; {CROSS_MODAL}"
            )
