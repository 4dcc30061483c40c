"""Texts are batched so that each batch is padded to about its own texts' length instead of
the longest of a random draw: text classification trains in batches of alike length, and
validates and caches features longest first."""

from __future__ import annotations

import pytest
import torch

from graft.data import DataSplits, load_data
from graft.tasks.classification.multiclass import MulticlassTask
from graft.training.loaders import FitLoaders
from graft.training.sampling import EpochSampler, LengthGroupedBatches


@pytest.fixture(scope="module")
def minilm():
    from graft.backbones.registry import create_backbone

    return create_backbone("minilm")


def training_loader(data, backbone, sampler=None, val=None):
    task = MulticlassTask(list(data.classes))
    splits = DataSplits(data, val)
    loaders = FitLoaders(splits, backbone, None, task, 32, seed=0, sampler=sampler)
    train, val_loader = loaders.inputs()
    return train if val is None else (train, val_loader)


def test_text_batches_pad_to_a_third_of_a_random_draw(sst2, minilm):
    data = load_data(sst2["train"])
    loader = training_loader(data, minilm)
    assert isinstance(loader.batch_sampler, LengthGroupedBatches)
    batches = list(loader)
    assert sum(len(targets) for _, targets in batches) == len(data)  # every text once
    read = sum(inputs["attention_mask"].numel() for inputs, _ in batches)
    tokens = sum(int(inputs["attention_mask"].sum()) for inputs, _ in batches)
    assert read < 1.2 * tokens  # a random draw of 32 sst2 sentences pads to about 3x


def test_the_balanced_sampler_and_images_keep_their_own_order(sst2, tiny_flowers, minilm):
    texts = load_data(sst2["train"])
    balanced = training_loader(texts, minilm, sampler="balanced")
    assert balanced.batch_sampler.sampler.weights is not None  # classes drawn equally often

    from graft.backbones.registry import create_backbone

    images = load_data(tiny_flowers / "train")
    loader = training_loader(images, create_backbone("efficientnet_lite0"))
    assert isinstance(loader.batch_sampler.sampler, EpochSampler)  # a seeded shuffle
    assert loader.batch_sampler.sampler.weights is None


def test_validation_runs_longest_first_and_features_come_back_in_order(sst2, minilm):
    from graft.features import extract_features

    data = load_data(sst2["train"])
    val = data.subset(list(range(100)))
    _, loader = training_loader(data, minilm, val=val)
    lengths = [len(val.items[i]) for i in loader.sampler]
    assert sorted(loader.sampler) == list(range(100)) and lengths == sorted(lengths)[::-1]

    together = extract_features(minilm, val.subset(list(range(40))), batch_size=16)
    alone = torch.cat([extract_features(minilm, val.subset([i])) for i in range(0, 40, 7)])
    assert torch.allclose(together[::7], alone, atol=1e-5)
