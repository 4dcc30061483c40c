"""Words' features from the frozen encoder, computed once for a phase that trains the head alone.

A tagging head is a linear layer on each word's first sub-token: with the encoder frozen, its
input never changes, so the encoder runs once over the training and validation sentences
(shortest first, batched) and the head then trains for as many epochs as it needs on the kept
word features, at the cost of a linear layer per epoch. The features live in memory, one
``float32[words, hidden]`` tensor per sentence (about 300 MB for CoNLL-2003's 204,000
training words with a 384-wide encoder); batches of sentences of alike length (in an order of
the seed and the epoch only) pad them into the shape the training module reads
(:data:`graft.tasks.tagging.module.WORD_FEATURES`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset

from graft.features import to_device
from graft.tasks.tagging.batches import IGNORED, at_words
from graft.tasks.tagging.module import WORD_FEATURES
from graft.training.sampling import LengthGroupedBatches

if TYPE_CHECKING:
    from graft.training.loaders import FitLoaders


class WordFeatures(Dataset):
    """Sentences as their words' features and tag indices: ``(float[n, D], long[n])``."""

    def __init__(self, sentences: list[tuple[torch.Tensor, torch.Tensor]]):
        self.sentences = sentences

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sentences[index]


def collate_words(batch: list[tuple[torch.Tensor, torch.Tensor]]):
    """``({WORD_FEATURES: float[B, W, D]}, long[B, W])``, padding targets :data:`IGNORED`."""
    width = max(1, max(len(targets) for _, targets in batch))
    dim = batch[0][0].shape[-1]
    features = torch.zeros(len(batch), width, dim)
    targets = torch.full((len(batch), width), IGNORED, dtype=torch.long)
    for row, (values, tags) in enumerate(batch):
        features[row, : len(tags)] = values
        targets[row, : len(tags)] = tags
    return {WORD_FEATURES: features}, targets


@torch.inference_mode()
def word_features(backbone: Any, dataset: Dataset, collate: Any, batch_size: int, workers: int):
    """Each sentence of ``dataset`` (a :class:`graft.tasks.tagging.batches.TaggingDataset` with
    tags) as ``(features, targets)`` of its words, in the dataset's own order."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    was_training = backbone.training
    backbone.to(device).eval()
    found: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate, num_workers=workers)
    for inputs, targets in loader:
        hidden = backbone(to_device(inputs, device))
        words = at_words(hidden, inputs["word_position"].to(device)).float().cpu()
        counts = (inputs["offsets"][:, :, 0] >= 0).sum(dim=1)
        for row, index in enumerate(inputs["index"].tolist()):
            count = int(counts[row])
            found[index] = (words[row, :count].clone(), targets[row, :count].clone())
    backbone.cpu().train(was_training)
    return [found[index] for index in range(len(found))]


def word_feature_loaders(loaders: FitLoaders) -> tuple[DataLoader, DataLoader]:
    """The training (seeded order) and validation loaders of cached word features of a fit's
    training and validation sentences (see the module docstring)."""
    start = time.perf_counter()
    task, preprocessing, splits = loaders.task, loaders.backbone.preprocessing, loaders.splits
    collate, size = task.collate(preprocessing), loaders.batch_size * 2
    train, val = (
        WordFeatures(
            word_features(
                loaders.backbone, task.dataset(part, preprocessing), collate, size, loaders.workers
            )
        )
        for part in (splits.train, splits.val)
    )
    spent = time.perf_counter() - start
    loaders.timings["features"] = loaders.timings.get("features", 0.0) + spent
    lengths = [len(targets) for _, targets in train.sentences]
    batches = LengthGroupedBatches(lengths, loaders.batch_size, loaders.seed)
    return (
        DataLoader(train, batch_sampler=batches, collate_fn=collate_words),
        DataLoader(val, batch_size=loaders.batch_size * 2, collate_fn=collate_words),
    )
