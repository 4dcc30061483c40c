"""Epochs that follow the data: the default epochs that train the backbone are cut on a large
training set, never below two, never when the user set them."""

from __future__ import annotations

import pytest

import graft
from graft.data import load_data
from graft.training import schedule
from graft.training.phase import Phase


@pytest.mark.parametrize(
    ("rows", "planned", "epochs"),
    [
        (14_041, 5, 3),  # CoNLL-2003's training set: 439 steps an epoch at batch 32
        (1_000, 5, 5),  # 32 steps an epoch: the kind's default
        (2_000, 3, 3),
        (16_000, 3, 2),
        (1_000_000, 3, 2),  # never below two
        (10, 3, 3),
    ],
)
def test_epochs_reach_the_target_steps_within_the_default(rows, planned, epochs):
    assert schedule.epochs_for_steps(rows, 32, planned) == epochs


def test_only_a_single_backbone_phase_is_cut():
    head = Phase(name="head", epochs=30, backbone_groups=0, head_lr=3e-3)
    tune = Phase(name="finetune", epochs=3, backbone_groups=None, head_lr=6e-4)
    cut = schedule.follow_data([head, tune], rows=100_000, batch_size=32)
    assert [p.epochs for p in cut] == [30, 2]
    gradual = [Phase(f"unfreeze{i}", epochs=2, backbone_groups=i, head_lr=6e-4) for i in (1, 2)]
    assert schedule.follow_data(gradual, rows=100_000, batch_size=32) == gradual


def fine_tune_epochs(model) -> int:
    return sum(1 for row in model.history_ if row.get("phase") == "finetune")


def test_a_fit_cuts_its_default_epochs_but_not_the_users(sst2, monkeypatch, tmp_path):
    data = load_data(sst2["train"]).subset(list(range(64)))
    monkeypatch.setattr(schedule, "TARGET_STEPS", 4)  # 4 steps an epoch at batch 16: 2 epochs
    options = dict(model="minilm", batch_size=16, head_epochs=2, progress=False, seed=0)
    default = graft.fit(data, cache_dir=tmp_path, **options)
    assert fine_tune_epochs(default) == 2
    told = graft.fit(data, cache_dir=tmp_path, epochs=3, **options)
    assert fine_tune_epochs(told) == 3
