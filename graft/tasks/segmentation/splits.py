"""The data of a segmentation fit: the training data with the validation and test data its
layout holds or the caller gave, all read alike (classes, colours, binary masks, ignore
index)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError

if TYPE_CHECKING:
    from graft.data import DataSplits
    from graft.tasks.segmentation.options import SegmentationOptions
    from graft.tasks.segmentation.read import SegmentationData


def read_fit_splits(
    data: Any, val: Any, test: Any, columns: dict, own: SegmentationOptions
) -> DataSplits:
    """The training data (and its validation and test splits when the layout has them),
    and ``val``/``test`` read with the training data's classes; ``own``: the fit's
    segmentation options. ConfigError for table columns, which segmentation data has none of."""
    from graft.data import DataSplits
    from graft.tasks.segmentation.read import SegmentationData, read_segmentation_splits

    given = [f"--{k.replace('_', '-')}" for k, v in columns.items() if v is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} name table columns; segmentation data has none")
    options = dict(binary=own.binary_masks, ignore_index=own.ignore_index)
    if isinstance(data, SegmentationData):
        train, found_val, found_test = data, None, None
    else:
        train, found_val, found_test = read_segmentation_splits(data, **options)
    parts = []
    for given_part, found in ((val, found_val), (test, found_test)):
        if given_part is not None and not isinstance(given_part, SegmentationData):
            given_part = read_like(given_part, train)
        parts.append(given_part if given_part is not None else found)
    return DataSplits(train, *parts)


def read_like(data: Any, like: Any) -> SegmentationData:
    """Segmentation data at ``data`` read as ``like`` (training data, or a fitted task) was:
    its classes (and colours, from the class file beside the data), binary or not, and its
    ignore index."""
    from graft.tasks.segmentation.read import read_segmentation

    options = dict(binary=like.binary, ignore_index=like.ignore_index)
    if like.colors:  # colour-coded masks: the class file beside the data gives the colours
        return read_segmentation(data, **options)
    return read_segmentation(data, classes=list(like.classes), **options)
