"""The data of a pre-training run: labelled as ``graft fit`` reads it, or unlabelled.

Unlabelled data are a folder of images (class folders optional: without them every image under
the folder counts), a folder of ``.txt`` files, a table's image or text column, or a ``.txt``
file with one text per line. A folder with a ``train/`` sub-folder pre-trains on that alone, so
its validation and test data stay unseen.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from graft.data import LabelledData, load_data, train_val_split
from graft.data.images import is_image_file
from graft.data.sources import (
    LABEL_COLUMNS,
    TABLE_SUFFIXES,
    _check_images,
    _class_files,
    _detect_input_column,
    _pick_column,
    _read_text_files,
    is_hidden,
    numbered_rows,
    read_table,
    row_input,
)
from graft.errors import ConfigError, DataError

log = logging.getLogger("graft")

#: Fewer items than this cannot be split into training data and a validation loss.
MIN_ITEMS = 10


def load_pretrain_data(
    source: str | Path,
    *,
    objective: str = "auto",
    text_column: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> tuple[LabelledData, str | None]:
    """Load ``source`` for pre-training; labels are read only for ``auto`` and ``supervised``.

    Returns:
        The data (``labels`` None when unlabelled) and, for unlabelled data, why no labels were
        read (for the message that refuses supervised pre-training).

    Raises:
        DataError: ``source`` does not exist, holds no usable image or text, or fewer than
            :data:`MIN_ITEMS`.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    path = path.resolve()
    wants_labels = objective in ("auto", "supervised")
    if path.is_dir():
        data, reason = _from_folder(path, wants_labels)
    elif path.suffix.lower() == ".txt":
        data, reason = _from_lines(path), "a text file has no labels"
    elif path.suffix.lower() in TABLE_SUFFIXES:
        columns = dict(text_column=text_column, image_column=image_column)
        data, reason = _from_table(path, wants_labels, label_column, **columns)
    else:
        raise DataError(
            f"{path}: not a folder, a table (.csv, .tsv, .jsonl) nor a text file (.txt, one "
            "text per line)"
        )
    if len(data) < MIN_ITEMS:
        raise DataError(
            f"{data.source}: {len(data)} usable item(s); pre-training needs at least {MIN_ITEMS}"
        )
    return data, reason


def _from_folder(root: Path, wants_labels: bool) -> tuple[LabelledData, str | None]:
    folder = root / "train" if (root / "train").is_dir() else root
    classes = [d for d in folder.iterdir() if d.is_dir() and not is_hidden(d)]
    reason = "the folder has no class folders"
    if classes and wants_labels:
        try:
            return load_data(folder), None
        except DataError as error:  # one class, say: then its files are unlabelled
            reason = str(error)
    elif classes:
        reason = "labels are not read for this objective"
    files = _class_files(folder)
    images = [str(f) for f in files if is_image_file(f)]
    if images:
        items, _, skipped = _check_images(images, [0] * len(images))
        modality = "image"
    else:
        texts = [str(f) for f in files if f.suffix.lower() == ".txt"]
        items, _, skipped = _read_text_files(texts, [0] * len(texts))
        modality = "text"
    if not items:
        raise DataError(
            f"{folder}: no images or .txt files to pre-train on (give a folder of images, with "
            "or without class folders, a table of texts or image paths, or a .txt file with "
            "one text per line)"
        )
    return LabelledData(items, None, [], modality, str(folder), skipped), reason


def _from_lines(path: Path) -> LabelledData:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
        log.warning("%s: not UTF-8, decoded as Latin-1", path)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: the file holds no text (one text per line)")
    return LabelledData(lines, None, [], "text", str(path))


def _from_table(
    path: Path,
    wants_labels: bool,
    label_column: str | None,
    text_column: str | None,
    image_column: str | None,
) -> tuple[LabelledData, str | None]:
    rows, columns = read_table(path)
    label = _pick_column(path, columns, label_column, LABEL_COLUMNS, "--label-column")
    if wants_labels and label is not None:
        data = load_data(
            path, text_column=text_column, image_column=image_column, label_column=label
        )
        return data, None
    reason = "no label column" if label is None else "labels are not read for this objective"
    labels = (label,) if label is not None else ()
    column, modality = _detect_input_column(path, rows, columns, labels, text_column, image_column)
    items, skipped = [], []
    for where, row in numbered_rows(path, rows):
        value, problem = row_input(path, row, column, modality)
        if problem is None:
            items.append(value)
        else:
            skipped.append((where, problem))
    for where, why in skipped:
        log.warning("skipped %s: %s", where, why)
    if modality == "image":
        items, _, unreadable = _check_images(items, [0] * len(items))
        skipped += unreadable
    return LabelledData(items, None, [], modality, str(path), skipped), reason


def resolve_objective(objective: str, data: LabelledData, reason: str | None = None) -> str:
    """The objective to train: ``auto`` picks supervised for labelled data, else simclr for
    images and mlm for text; an objective that cannot train on ``data`` is refused."""
    labelled = data.labels is not None
    unlabelled_objective = "simclr" if data.modality == "image" else "mlm"
    if objective == "auto":
        return "supervised" if labelled else unlabelled_objective
    if objective == "supervised" and not labelled:
        why = f" ({reason})" if reason else ""
        raise DataError(
            f"--objective supervised trains on labels, and {data.source} has none{why}: give "
            "class folders or a table with a label column (--label-column), or pre-train "
            f"without labels with --objective {unlabelled_objective}"
        )
    if objective == "simclr" and data.modality != "image":
        raise ConfigError(
            f"--objective simclr learns from augmented views of images, and {data.source} "
            "holds text: use --objective mlm"
        )
    if objective == "mlm" and data.modality != "text":
        raise ConfigError(
            f"--objective mlm predicts masked words of texts, and {data.source} holds images: "
            "use --objective simclr (or supervised, with labels)"
        )
    return objective


def split_for_pretraining(
    data: LabelledData, val_fraction: float, seed: int
) -> tuple[LabelledData, LabelledData]:
    """Training data and the held-out data whose loss is measured each epoch: stratified for
    labelled data (as ``graft fit`` splits), else a seeded random ``val_fraction`` with at
    least 2 items on each side (a contrastive loss needs two images to compare)."""
    if data.labels is not None:
        train, val = train_val_split(data, val_fraction, seed)
        return data.subset(train), data.subset(val)
    order = np.random.default_rng(seed).permutation(len(data))
    n_val = min(max(2, round(len(data) * val_fraction)), len(data) - 2)
    return data.subset(np.sort(order[n_val:])), data.subset(np.sort(order[:n_val]))
