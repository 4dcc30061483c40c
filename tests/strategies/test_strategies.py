"""Each strategy trains exactly the parameters it claims, through the one engine."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import graft
from graft.backbones import create_backbone
from graft.config import FitConfig
from graft.data import load_data
from graft.data.transforms import Collate, InputDataset
from graft.errors import ConfigError
from graft.heads import ClassificationHead
from graft.strategies import STRATEGIES
from graft.tasks.classification.multiclass import MulticlassTask
from graft.training.distributed import EngineOptions
from graft.training.engine import run_phase
from graft.training.module import TransferModule
from tests.conftest import snapshot


def loaders(backbone, folder):
    def make(split, train):
        data = load_data(folder / split)
        dataset = InputDataset(data.items, data.labels, backbone.preprocessing, train=train)
        return DataLoader(
            dataset, batch_size=8, shuffle=train, collate_fn=Collate(backbone.preprocessing)
        )

    return make("train", True), make("val", False)


def backbone_phases(strategy: str, backbone, **options):
    config = FitConfig(**{"strategy": strategy, "epochs": 2, **options}).validate()
    config = config.with_defaults()
    return [p for p in STRATEGIES[strategy]().phases(config, backbone) if p.train_backbone]


@pytest.mark.parametrize(
    "strategy, options, trained_groups",
    [("partial", {"unfreeze": 2}, [2]), ("gradual", {}, [1, 2]), ("full", {}, [None])],
)
def test_only_the_claimed_groups_train(strategy, options, trained_groups, tiny_flowers, tmp_path):
    backbone = create_backbone("efficientnet_lite0")
    groups = backbone.parameter_groups()
    names = {id(p): n for n, p in backbone.named_parameters()}
    head = ClassificationHead(backbone.feature_dim, 5)
    phases = backbone_phases(strategy, backbone, **options)
    assert [p.backbone_groups for p in phases] == trained_groups
    train_loader, val_loader = loaders(backbone, tiny_flowers)
    for phase in phases:
        before = snapshot(backbone)
        module = TransferModule(head, phase, backbone, task=MulticlassTask(list("abcde")))
        count = len(groups) if phase.backbone_groups is None else phase.backbone_groups
        trained = {names[id(p)] for group in groups[len(groups) - count :] for p in group}
        expected = sum(p.numel() for g in groups[len(groups) - count :] for p in g)
        assert module.trained_parameters() == expected + sum(p.numel() for p in head.parameters())
        options = EngineOptions(progress=False)
        run_phase(module, train_loader, val_loader, tmp_path / phase.name, 0, options)
        after = snapshot(backbone)
        for name, tensor in before.items():
            if "running_" in name or "num_batches" in name:
                assert torch.equal(tensor, after[name]), f"BatchNorm statistics moved: {name}"
            elif name in trained:
                assert not torch.equal(tensor, after[name]), f"{name} should have trained"
            else:
                assert torch.equal(tensor, after[name]), f"{name} should be frozen"


def test_partial_on_a_transformer_trains_only_its_top_layers(tmp_path):
    backbone = create_backbone("minilm")
    (tmp_path / "t.csv").write_text(
        "text,label\n"
        + "".join(
            f"{t},{y}\n"
            for t, y in [
                ("a wonderful film", 1),
                ("dreadful and dull", 0),
                ("loved every minute", 1),
                ("a waste of time", 0),
                ("moving and funny", 1),
                ("boring plot", 0),
            ]
            * 4
        )
    )
    model = graft.fit(
        tmp_path / "t.csv", strategy="partial", unfreeze=1, epochs=1, head_epochs=2, progress=False
    )
    trained = model.backbone_
    for name, tensor in backbone.state_dict().items():
        changed = not torch.equal(tensor, trained.state_dict()[name])
        if "encoder.layer.5." not in name:
            assert not changed, f"{name} is outside the top group and must stay frozen"
    top = [row for row in model.history_ if row["phase"] == "top1"]
    layer = sum(p.numel() for p in backbone.model.encoder.layer[5].parameters())
    assert top and top[0]["trained_parameters"] == layer + 384 * 2 + 2


def test_layer_decay_lowers_the_rate_group_by_group():
    backbone = create_backbone("efficientnet_lite0")
    [phase] = backbone_phases("full", backbone, layer_decay=0.5, lr=1e-2, backbone_lr_mult=0.1)
    head = ClassificationHead(backbone.feature_dim, 3)
    module = TransferModule(head, phase, backbone, task=MulticlassTask(list("abc")))
    rates = [group["lr"] for group in module.optimizer_groups()]
    assert rates[0] == pytest.approx(1e-2)  # the random head, at lr
    assert rates[1] == pytest.approx(1e-3)  # the top backbone group, at lr x backbone_lr_mult
    assert rates[2:] == pytest.approx([1e-3 * 0.5**d for d in range(1, len(rates) - 1)])
    assert len(rates) == 1 + len(backbone.parameter_groups())


def test_gradual_unfreezes_one_group_per_step_with_fresh_phases():
    backbone = create_backbone("efficientnet_lite0")
    phases = backbone_phases("gradual", backbone, epochs=5, unfreeze_every=2)
    assert [(p.backbone_groups, p.epochs) for p in phases] == [(1, 2), (2, 2), (3, 1)]


def test_invalid_strategy_options_are_refused():
    backbone = create_backbone("efficientnet_lite0")
    with pytest.raises(ConfigError, match="--unfreeze 40 is more than the"):
        backbone_phases("partial", backbone, unfreeze=40)
    with pytest.raises(ConfigError, match="--layer-decay needs a strategy that trains"):
        FitConfig(strategy="feature-extract", layer_decay=0.8).validate()
    with pytest.raises(ConfigError, match="--layer-decay must be"):
        FitConfig(layer_decay=1.5).validate()
