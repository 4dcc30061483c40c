"""A labelled dataset as graft holds it: items (image paths or texts), labels and class names."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graft.backbones.base import Modality


@dataclass
class LabelledData:
    """Items with integer labels into ``classes``.

    Attributes:
        items: image file paths (absolute) or text strings.
        labels: index into ``classes`` for each item, or None for unlabelled inputs.
        classes: class names, in label order.
        modality: ``"image"`` or ``"text"``.
        source: where the data came from, for messages.
        skipped: ``(file or row, reason)`` for inputs left out because they could not be read.
    """

    items: list[str]
    labels: np.ndarray | None
    classes: list[str]
    modality: Modality
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, indices: np.ndarray | list[int]) -> LabelledData:
        indices = np.asarray(indices, dtype=np.int64)
        return LabelledData(
            items=[self.items[i] for i in indices],
            labels=None if self.labels is None else self.labels[indices],
            classes=list(self.classes),
            modality=self.modality,
            source=self.source,
            skipped=list(self.skipped),
        )

    def class_counts(self) -> dict[str, int]:
        counts = Counter(int(label) for label in self.labels) if self.labels is not None else {}
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def content_keys(self) -> list[bytes]:
        """A SHA-256 digest of each item's content (file bytes, or the text itself)."""
        if self.modality == "text":
            return [hashlib.sha256(text.encode("utf-8")).digest() for text in self.items]
        return [hashlib.sha256(Path(path).read_bytes()).digest() for path in self.items]

    def relabel(self, classes: list[str]) -> LabelledData:
        """The same data with labels re-indexed into ``classes`` (a model's class list).

        Raises:
            DataError: a label in this data is not in ``classes``.
        """
        from graft.errors import DataError

        if self.labels is None or self.classes == list(classes):
            return self
        position = {name: i for i, name in enumerate(classes)}
        unknown = sorted(set(self.classes[i] for i in self.labels) - set(position))
        if unknown:
            raise DataError(
                f"{self.source}: label(s) {', '.join(map(repr, unknown))} were never seen by "
                f"the model, which knows {', '.join(map(repr, classes))}"
            )
        labels = np.array([position[self.classes[i]] for i in self.labels], dtype=np.int64)
        return LabelledData(
            self.items, labels, list(classes), self.modality, self.source, self.skipped
        )


@dataclass
class DataSplits:
    """Train data with optional validation and test data (a ``train/val/test`` folder's)."""

    train: LabelledData
    val: LabelledData | None = None
    test: LabelledData | None = None
