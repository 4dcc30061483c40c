"""What the label-column kinds share for their inputs: the items of labelled data turned into
backbone inputs one at a time (:class:`graft.data.transforms.InputDataset`), batched by the
backbone's preprocessing, and a head that reads one pooled vector per input, so that a
head-only phase trains on cached features."""

from __future__ import annotations

from typing import Any

from graft.tasks.capabilities import CachesFeatures


class ItemInputs(CachesFeatures):
    """The datasets and batches of a kind whose labelled data holds ``items`` and ``labels``
    (class folders, tables): mixed into :class:`graft.tasks.base.Task` subclasses."""

    def items_of(self, data: Any) -> list:
        """The inputs of ``data`` (labelled data of this kind) in the order of its labels."""
        return data.items

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        """A torch Dataset of ``data`` (labelled data, or a list of items without labels)
        turned into backbone inputs: one item and its label (-1 without) at a time."""
        from graft.data.transforms import InputDataset

        if isinstance(data, list):
            return InputDataset(data, None, preprocessing)
        return InputDataset(
            self.items_of(data), data.labels, preprocessing, train=train, augment=augment
        )

    def collate(self, preprocessing: Any):
        """How a list of :meth:`dataset` items becomes a batch (picklable)."""
        from graft.data.transforms import Collate

        return Collate(preprocessing)
