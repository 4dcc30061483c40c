"""A labelled dataset as graft holds it: items (image paths or texts), labels and class names."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graft.backbones.base import Modality

#: What the labels are: one class per item, any number of labels per item, or a number.
Task = Literal["multiclass", "multilabel", "regression"]
TASKS = ("multiclass", "multilabel", "regression")


@dataclass
class LabelledData:
    """Items with their labels.

    Attributes:
        items: image file paths (absolute) or text strings.
        labels: by ``task``: multiclass, an index into ``classes`` per item (int64 ``[n]``);
            multilabel, a 0/1 row over ``classes`` per item (float32 ``[n, len(classes)]``);
            regression, the target value (float32 ``[n]``). None for unlabelled inputs.
        classes: class (or label) names, in label order; for regression, the target's name.
        modality: ``"image"`` or ``"text"``.
        source: where the data came from, for messages.
        skipped: ``(file or row, reason)`` for inputs left out because they could not be read.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        label_delimiter: what separates the labels of one item in a multilabel table.
    """

    items: list[str]
    labels: np.ndarray | None
    classes: list[str]
    modality: Modality
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    task: Task = "multiclass"
    label_delimiter: str | None = None
    _content_keys: list[bytes] | None = field(default=None, init=False, repr=False, compare=False)

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
            task=self.task,
            label_delimiter=self.label_delimiter,
        )

    def class_counts(self) -> dict[str, int]:
        """Examples per class (multilabel: per label); empty for regression."""
        if self.task == "regression":
            return {}
        if self.task == "multilabel" and self.labels is not None:
            totals = self.labels.sum(axis=0)
            return {name: int(totals[i]) for i, name in enumerate(self.classes)}
        counts = Counter(int(label) for label in self.labels) if self.labels is not None else {}
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def content_keys(self) -> list[bytes]:
        """A SHA-256 digest of each item's content (file bytes, or the text itself), read once
        per dataset and remembered."""
        if self._content_keys is None or len(self._content_keys) != len(self.items):
            if self.modality == "text":
                keys = [hashlib.sha256(text.encode("utf-8")).digest() for text in self.items]
            else:
                keys = [hashlib.sha256(Path(path).read_bytes()).digest() for path in self.items]
            self._content_keys = keys
        return self._content_keys

    def duplicates(self) -> dict:
        """Inputs that occur more than once (by content): how many extra copies, how many of
        the repeated inputs carry different labels, and a few of them."""
        groups: dict[bytes, list[int]] = {}
        for index, key in enumerate(self.content_keys()):
            groups.setdefault(key, []).append(index)
        repeated = [members for members in groups.values() if len(members) > 1]
        conflicting = [
            members
            for members in repeated
            if self.labels is not None
            and len({np.asarray(self.labels[i]).tobytes() for i in members}) > 1
        ]
        return {
            "extra_copies": sum(len(members) - 1 for members in repeated),
            "conflicting_labels": len(conflicting),
            "examples": [[self.items[i][:200] for i in members] for members in repeated[:5]],
        }

    def content_hash(self) -> str:
        """SHA-256 over every item's content and label, in order: equal exactly when the
        data are the same (recorded with a run, for reproducibility)."""
        digest = hashlib.sha256()
        digest.update("\x1f".join(self.classes).encode("utf-8"))
        for key in self.content_keys():
            digest.update(key)
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels).tobytes())
        return digest.hexdigest()

    def relabel(self, classes: list[str]) -> LabelledData:
        """The same data with labels re-indexed into ``classes`` (a model's class list).

        Raises:
            DataError: a label in this data is not in ``classes``.
        """
        from graft.errors import DataError

        if self.labels is None or self.classes == list(classes) or self.task == "regression":
            return self
        position = {name: i for i, name in enumerate(classes)}
        if self.task == "multilabel":
            used = [name for i, name in enumerate(self.classes) if self.labels[:, i].any()]
        else:
            used = [self.classes[i] for i in self.labels]
        unknown = sorted(set(used) - set(position))
        if unknown:
            raise DataError(
                f"{self.source}: label(s) {', '.join(map(repr, unknown))} were never seen by "
                f"the model, which knows {', '.join(map(repr, classes))}"
            )
        if self.task == "multilabel":
            labels = np.zeros((len(self), len(classes)), dtype=np.float32)
            for i, name in enumerate(self.classes):
                if name in position:
                    labels[:, position[name]] = self.labels[:, i]
        else:
            labels = np.array([position[self.classes[i]] for i in self.labels], dtype=np.int64)
        return LabelledData(
            self.items,
            labels,
            list(classes),
            self.modality,
            self.source,
            self.skipped,
            self.task,
            self.label_delimiter,
        )


@dataclass
class DataSplits:
    """Train data with optional validation and test data (a ``train/val/test`` folder's)."""

    train: LabelledData
    val: LabelledData | None = None
    test: LabelledData | None = None

    def parts(self) -> dict[str, Any]:
        """The splits present (not None nor empty), by name: ``train``, ``val``, ``test``."""
        return {n: part for n in ("train", "val", "test") if (part := getattr(self, n))}
