"""Turning raw items into backbone input, with the preprocessing the backbone's weights expect:
images transformed to tensors, texts tokenised, audio files decoded to fixed-length waveforms
(:mod:`graft.data.audio`)."""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from graft.backbones.audio.preprocessing import AudioPreprocessing
from graft.backbones.base import ImagePreprocessing, Preprocessing, TextPreprocessing
from graft.data.audio import AudioDataset
from graft.data.images import open_rgb
from graft.options import AUGMENT_PRESETS

#: Image augmentation presets, built on timm's transforms (``--augment``):
#: none: the evaluation transform; light: random-resized crop (35-100% of the area) and
#: horizontal flip; strong: random-resized crop (8-100%), flip, RandAugment (m9) and random
#: erasing, plus mixup and cutmix in the training step (:func:`mixup_for`).
#: RandAugment's magnitude (9, with noise of std 0.5) is clipped at 9 rather than timm's 10:
#: at 10 its increasing posterize keeps 0 bits, a black image, which Pillow 12 and later
#: refuse with an error, so a strong-augmentation fit failed at random.
RAND_AUGMENT = "rand-m9-mstd0.5-inc1-mmax9"
__all__ = ["AUGMENT_PRESETS", "Collate", "InputDataset", "image_transform", "mixup_for"]


def image_transform(
    preprocessing: ImagePreprocessing, train: bool, augment: str = "light"
) -> Callable:
    """timm's eval transform (resize, centre crop, normalise), or an augmentation preset."""
    from timm.data import create_transform

    if not train or augment == "none":
        return eval_transform(preprocessing)
    options = _transform_options(preprocessing)
    if augment == "light":
        return create_transform(
            **options, is_training=True, scale=(0.35, 1.0), hflip=0.5, color_jitter=None
        )
    return create_transform(
        **options,
        is_training=True,
        scale=(0.08, 1.0),
        hflip=0.5,
        color_jitter=None,
        auto_augment=RAND_AUGMENT,
        re_prob=0.25,
    )


@functools.lru_cache(maxsize=16)
def eval_transform(preprocessing: ImagePreprocessing) -> Callable:
    """timm's eval transform of ``preprocessing``, built once per preprocessing (it holds no
    state): ``graft serve`` makes a dataset of each request's uploads, and rebuilding the
    transform each time took 3% of the model's thread in a py-spy profile of the server."""
    from timm.data import create_transform

    return create_transform(**_transform_options(preprocessing), is_training=False)


def _transform_options(preprocessing: ImagePreprocessing) -> dict[str, Any]:
    return dict(
        input_size=(3, *preprocessing.input_size),
        interpolation=preprocessing.interpolation,
        mean=preprocessing.mean,
        std=preprocessing.std,
        crop_pct=preprocessing.crop_pct,
    )


def mixup_for(augment: str, num_classes: int, label_smoothing: float, modality: str = "image"):
    """timm's mixup/cutmix for the ``strong`` preset (None for the others and for text).

    Audio gets mixup alone (Zhang et al. 2018, as AST and PANNs train), on the waveforms of a
    batch: ``x = lam * x_i + (1 - lam) * x_j`` and the targets alike, ``lam ~ Beta(0.2, 0.2)``;
    cutmix cuts rectangles out of images and has no waveform counterpart.
    """
    if augment != "strong" or modality not in ("image", "audio"):
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=0.2,
        cutmix_alpha=1.0 if modality == "image" else 0.0,
        label_smoothing=label_smoothing,
        num_classes=num_classes,
    )


class InputDataset(Dataset):
    """Items (and labels, when known) turned into backbone input one at a time.

    ``view`` > 0 gives a fixed augmented view of each image (the ``augment`` preset under a
    seed derived from the item and the view), so that cached views can be recomputed alike.
    Audio files become waveforms (:class:`graft.data.audio.AudioDataset`), cropped at random
    offsets when training with augmentation; they have no cached views.
    """

    def __init__(
        self,
        items: list[str],
        labels: np.ndarray | None,
        preprocessing: Preprocessing,
        train: bool = False,
        augment: str = "light",
        view: int = 0,
    ):
        self.items = items
        self.labels = labels
        self.view = view
        self.audio = None
        if isinstance(preprocessing, AudioPreprocessing):
            if view > 0:
                raise ValueError("audio has no cached augmented views")
            shifted = train and augment != "none"
            self.audio = AudioDataset(items, labels, preprocessing, train=shifted)
        self.transform = (
            image_transform(preprocessing, train or view > 0, augment)
            if isinstance(preprocessing, ImagePreprocessing)
            else None
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        if self.audio is not None:
            return self.audio[index]
        item = self.items[index]
        if self.transform is None:
            value = item
        elif self.view > 0:
            # a view of its own, the same every time: timm's transforms drawn under a seed
            value = seeded_view(self.transform, open_rgb(item), f"{item}#{self.view}")
        else:
            value = self.transform(open_rgb(item))
        label = -1 if self.labels is None else self.labels[index]  # a class, row or value
        return value, label


def longest_first(items: list) -> np.ndarray | None:
    """The order that batches texts longest first, as sentence-transformers encodes them: each
    batch is then padded to texts of about its own length instead of the longest of a random
    draw. None for fewer than two items or items that are not plain texts."""
    if len(items) < 2 or not all(isinstance(item, str) for item in items):
        return None
    return np.argsort([-len(item) for item in items], kind="stable")


def token_counts(texts: list[str], preprocessing: TextPreprocessing, cut: bool = True) -> list[int]:
    """The sub-tokens of each text as the backbone reads it (special tokens included), cut at
    its maximum length unless ``cut`` is False."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(preprocessing.tokenizer)
    encoded = tokenizer(
        [str(text) for text in texts],
        truncation=cut,
        max_length=preprocessing.max_length if cut else None,
        return_length=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return list(encoded["length"])


class Collate:
    """Batches images and waveforms by stacking and texts by tokenising with dynamic padding
    (picklable)."""

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
        targets = torch.as_tensor(np.asarray(labels))  # int64, or float32 for other tasks
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


def seeded_view(transform: Callable, image, key: str):
    """``transform(image)`` with Python's, NumPy's and torch's generators seeded from ``key``
    (timm's transforms draw from all three: RandAugment picks its ops with NumPy), then
    restored: the same view of the same image every time."""
    seed = zlib.crc32(key.encode())
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            return transform(image)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
