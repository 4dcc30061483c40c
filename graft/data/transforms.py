"""Turning raw items into backbone input, with the preprocessing the backbone's weights expect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from graft.backbones.base import ImagePreprocessing, Preprocessing, TextPreprocessing
from graft.data.images import open_rgb


def image_transform(preprocessing: ImagePreprocessing, train: bool) -> Callable:
    """timm's eval transform (resize, centre crop, normalise), or a light training augmentation."""
    from timm.data import create_transform

    options: dict[str, Any] = dict(
        input_size=(3, *preprocessing.input_size),
        interpolation=preprocessing.interpolation,
        mean=preprocessing.mean,
        std=preprocessing.std,
        crop_pct=preprocessing.crop_pct,
    )
    if train:
        return create_transform(
            **options, is_training=True, scale=(0.35, 1.0), hflip=0.5, color_jitter=None
        )
    return create_transform(**options, is_training=False)


class InputDataset(Dataset):
    """Items (and labels, when known) turned into backbone input one at a time."""

    def __init__(
        self,
        items: list[str],
        labels: np.ndarray | None,
        preprocessing: Preprocessing,
        train: bool = False,
    ):
        self.items = items
        self.labels = labels
        self.transform = (
            image_transform(preprocessing, train)
            if isinstance(preprocessing, ImagePreprocessing)
            else None
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        value = self.transform(open_rgb(item)) if self.transform is not None else item
        label = -1 if self.labels is None else int(self.labels[index])
        return value, label


class Collate:
    """Batches images by stacking and texts by tokenising with dynamic padding (picklable)."""

    def __init__(self, preprocessing: Preprocessing):
        self.preprocessing = preprocessing
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.preprocessing.tokenizer)
        return self._tokenizer

    def __call__(self, batch: list[tuple[Any, int]]):
        values, labels = zip(*batch, strict=True)
        targets = torch.tensor(labels, dtype=torch.long)
        if isinstance(self.preprocessing, TextPreprocessing):
            encoded = self.tokenizer(
                list(values),
                padding=True,
                truncation=True,
                max_length=self.preprocessing.max_length,
                return_tensors="pt",
            )
            return dict(encoded), targets
        return torch.stack(values), targets

    def __getstate__(self):
        return {"preprocessing": self.preprocessing, "_tokenizer": None}
