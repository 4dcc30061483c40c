"""Class imbalance: loss weights, the balanced sampler, and a fit that uses both."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import graft
from graft.heads import ClassificationHead
from graft.tasks.classification.multiclass import MulticlassTask
from graft.training.imbalance import balanced_class_weights, balanced_sampler
from graft.training.module import TransferModule
from graft.training.phase import Phase


def test_weights_are_inverse_frequency():
    weights = balanced_class_weights(np.array([0, 0, 0, 1, 2, 2]), num_classes=4)
    # n / (k * n_c) with n = 6 examples and k = 3 classes present
    assert weights.tolist() == pytest.approx([6 / 9, 6 / 3, 6 / 6, 0.0])


def test_balanced_sampler_draws_classes_equally_often():
    labels = np.array([0] * 900 + [1] * 100)
    sampler = balanced_sampler(labels, seed=0)
    drawn = labels[list(sampler)]
    assert len(drawn) == 1000
    assert 0.44 < drawn.mean() < 0.56  # about half from the class holding 10% of the data


def test_the_loss_uses_the_weights():
    head = ClassificationHead(4, 2, dropout=0.0)
    phase = Phase(name="head", epochs=1, backbone_groups=0, head_lr=1e-3)
    weights = torch.tensor([0.25, 4.0])
    task = MulticlassTask(["a", "b"])
    module = TransferModule(head, phase, class_weights=weights, label_smoothing=0.0, task=task)
    features, targets = torch.randn(6, 4), torch.tensor([0, 0, 0, 0, 0, 1])
    module.log = lambda *args, **kwargs: None
    loss = module.training_step((features, targets), 0)
    assert torch.allclose(loss, F.cross_entropy(head(features), targets, weight=weights))


def test_fit_with_class_weights_and_balanced_sampler(tiny_flowers, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_flowers, data)
    for photo in sorted((data / "train" / "roses").iterdir())[2:]:
        photo.unlink()  # roses: 2 training photos against 8 for every other class
    model = graft.fit(
        data,
        strategy="feature-extract",
        class_weights="auto",
        sampler="balanced",
        epochs=5,
        out=tmp_path / "run",
        progress=False,
    )
    assert model.summary_["class_counts"]["train"]["roses"] == 2
    recall = {c: v["recall"] for c, v in model.metrics_["val"]["per_class"].items()}
    assert set(recall) == set(model.classes_)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert saved["class_weights"] == "auto" and saved["sampler"] == "balanced"


@pytest.mark.parametrize(
    "option", [{"class_weights": "inverse"}, {"sampler": "random"}, {"grad_clip": 0.0}]
)
def test_bad_imbalance_options(option):
    with pytest.raises(graft.ConfigError):
        graft.GraftClassifier(**option)
