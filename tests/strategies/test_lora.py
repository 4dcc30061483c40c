"""LoRA trains only its adapters and the head, and a run saves and restores just those."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch.utils.data import DataLoader

import graft
from graft.backbones import create_backbone
from graft.backbones.lora import base_state, is_adapter_key
from graft.config import FitConfig
from graft.data import LabelledData, load_data
from graft.data.transforms import Collate, InputDataset
from graft.errors import ConfigError
from graft.heads import ClassificationHead
from graft.strategies.lora import Lora
from graft.tasks.classification.multiclass import MulticlassTask
from graft.training.distributed import EngineOptions
from graft.training.engine import run_phase
from graft.training.module import TransferModule
from tests.conftest import snapshot


def adapted(model: str, **options):
    backbone = create_backbone(model)
    config = FitConfig(strategy="lora", epochs=1, **options).validate().with_defaults()
    Lora().prepare(config, backbone)
    return backbone, config


def few(folder, per_class: int) -> LabelledData:
    data = load_data(folder)
    return data.subset([i for c in range(5) for i in np.flatnonzero(data.labels == c)[:per_class]])


def small_loader(backbone, folder, per_class: int, train: bool) -> DataLoader:
    data = few(folder, per_class)
    dataset = InputDataset(data.items, data.labels, backbone.preprocessing, train=train)
    return DataLoader(dataset, batch_size=5, collate_fn=Collate(backbone.preprocessing))


def lora_count(backbone) -> int:
    return sum(p.numel() for p in backbone.adapter_parameters())


def test_lora_trains_exactly_the_adapters_and_the_head(tiny_flowers, tmp_path):
    backbone, config = adapted("efficientnet_lite0")
    head = ClassificationHead(backbone.feature_dim, 5)
    head_phase, phase = Lora().phases(config, backbone)
    assert (head_phase.name, head_phase.train_backbone) == ("head", False)
    assert phase.adapters_only and phase.backbone_groups is None
    before = snapshot(backbone)
    module = TransferModule(head, phase, backbone, task=MulticlassTask(list("abcde")))
    head_count = sum(p.numel() for p in head.parameters())
    assert module.trained_parameters() == lora_count(backbone) + head_count
    optimised = {id(p) for group in module.optimizer_groups() for p in group["params"]}
    assert optimised == {id(p) for p in [*backbone.adapter_parameters(), *head.parameters()]}
    train_loader = small_loader(backbone, tiny_flowers / "train", 3, train=True)
    val_loader = small_loader(backbone, tiny_flowers / "val", 1, train=False)
    run_phase(module, train_loader, val_loader, tmp_path, 0, EngineOptions(progress=False))
    after = snapshot(backbone)
    for name, tensor in before.items():
        if ".lora_B." in name:
            assert not torch.equal(tensor, after[name]), f"{name} should have trained"
        elif not is_adapter_key(name):  # weights and BatchNorm statistics alike
            assert torch.equal(tensor, after[name]), f"{name} should be frozen"
    fresh = create_backbone("efficientnet_lite0").state_dict()
    assert base_state(after).keys() == fresh.keys()


def test_default_targets_of_both_backbone_kinds():
    image = create_backbone("efficientnet_lite0")
    assert image.lora_targets() == ["conv_pw", "conv_pwl"]
    text = create_backbone("minilm")
    assert text.lora_targets() == ["query", "key", "value", "dense"]
    fingerprint = image.fingerprint()
    Lora().prepare(FitConfig(strategy="lora").validate(), image)
    # at initialisation the adapters change nothing, so the feature cache is shared
    assert image.fingerprint() == image.fingerprint(base_only=True) == fingerprint
    adapted_names = {n for n, _ in image.named_modules() if n.endswith(".lora_A")}
    assert adapted_names and all(
        n.rsplit(".", 2)[-2] in {"conv_pw", "conv_pwl"} for n in adapted_names
    )
    Lora().prepare(FitConfig(strategy="lora", lora_rank=4).validate(), text)
    assert lora_count(text) == 6 * 4 * (4 * (384 + 384) + 2 * (384 + 1536))


def test_image_run_saves_only_adapters_and_head(tiny_flowers, tmp_path):
    model = graft.fit(
        few(tiny_flowers / "train", 4),
        few(tiny_flowers / "val", 2),
        strategy="lora",
        epochs=1,
        head_epochs=2,
        batch_size=8,
        out=tmp_path / "run",
        progress=False,
    )
    lora_rows = [row for row in model.history_ if row["phase"] == "lora"]
    head_count = sum(p.numel() for p in model.head_.parameters())
    assert lora_rows[0]["trained_parameters"] == lora_count(model.backbone_) + head_count
    images = few(tiny_flowers / "val", 1).items
    restored = graft.load(tmp_path / "run")
    assert np.array_equal(model.predict_proba(images), restored.predict_proba(images))
    with torch.no_grad():  # adapters that surely moved the features
        for name, param in model.backbone_.named_parameters():
            if ".lora_B." in name:
                param.normal_(0, 0.05)
    model.save(tmp_path / "saved")
    restored = graft.load(tmp_path / "saved")
    assert np.array_equal(model.predict_proba(images), restored.predict_proba(images))
    with safe_open(tmp_path / "saved" / "model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert all(k.startswith(("adapter.", "head.")) for k in keys)
    assert any(".lora_A." in k for k in keys)
    size = (tmp_path / "saved" / "model.safetensors").stat().st_size
    assert size < 4 * model.backbone_.num_parameters() / 10
    assert restored.backbone_.adapter == model.backbone_.adapter


@pytest.mark.slow
def test_text_run_saves_and_restores_its_adapters(sst2, tmp_path):
    with open(sst2["train"], newline="") as handle:
        rows = list(csv.DictReader(handle))[:80]
    with open(tmp_path / "train.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    model = graft.fit(
        tmp_path / "train.csv",
        strategy="lora",
        lora_rank=4,
        lora_targets="query,value",
        epochs=1,
        head_epochs=3,
        batch_size=16,
        out=tmp_path / "run",
        progress=False,
    )
    assert lora_count(model.backbone_) == 6 * 2 * 4 * (384 + 384)
    texts = ["a gripping, beautifully acted story", "tedious and far too long", "meh"]
    restored = graft.load(tmp_path / "run")
    assert restored.backbone_.adapter.targets == ("query", "value")
    assert np.array_equal(model.predict_proba(texts), restored.predict_proba(texts))
    with torch.no_grad():
        for name, param in model.backbone_.named_parameters():
            if ".lora_B." in name:
                param.normal_(0, 0.05)
    model.save(tmp_path / "saved")
    restored = graft.load(tmp_path / "saved")
    assert np.array_equal(model.predict_proba(texts), restored.predict_proba(texts))


def test_bad_lora_options_are_refused():
    with pytest.raises(ConfigError, match="--lora-rank configure --strategy lora, not fine-tune"):
        FitConfig(lora_rank=4).validate()
    with pytest.raises(ConfigError, match="--lora-rank must be a positive integer, got 0"):
        FitConfig(strategy="lora", lora_rank=0).validate()
    with pytest.raises(ConfigError, match="--lora-alpha must be positive"):
        FitConfig(strategy="lora", lora_alpha=-1.0).validate()
    with pytest.raises(ConfigError, match="--lora-targets must name modules"):
        FitConfig(strategy="lora", lora_targets=" , ").validate()
    with pytest.raises(
        ConfigError, match="'nope' matches no module of efficientnet_lite0.*conv_pw"
    ):
        adapted("efficientnet_lite0", lora_targets="conv_pw,nope")
    with pytest.raises(ConfigError, match="'bn1' names model.bn1, a BatchNormAct2d: LoRA adapts"):
        adapted("efficientnet_lite0", lora_targets="bn1")
    with pytest.raises(ConfigError, match="unknown option"):
        graft.GraftClassifier(lora_dropout=0.1)
