"""Schedules that follow the data: the default epochs that train the backbone are cut on a large
training set, never below two, never when the user set them; a large validation split is
sampled for the validation after each epoch, and scored whole at the end."""

from __future__ import annotations

import numpy as np
import pytest

import graft
from graft.data import DataSplits, load_data
from graft.training import schedule
from graft.training.loaders import FitLoaders
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


def test_a_large_validation_split_is_sampled_the_same_way_for_a_seed(sst2):
    val = load_data(sst2["test"])
    assert len(val) > 100
    split = DataSplits(load_data(sst2["train"]).subset(list(range(8))), val)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schedule, "EPOCH_VALIDATION", 100)
        sampled = schedule.epoch_validation(split, seed=0)
        again = schedule.epoch_validation(split, seed=0)
        other = schedule.epoch_validation(split, seed=1)
        small = DataSplits(split.train, val.subset(list(range(100))))
        assert schedule.epoch_validation(small, seed=0) is small
    assert len(sampled.val) == 100 and sampled.train is split.train
    assert list(sampled.val.items) == list(again.val.items) != list(other.val.items)
    position = {item: i for i, item in enumerate(val.items)}
    order = [position[item] for item in sampled.val.items]
    assert order == sorted(order)  # the split's order is kept
    assert schedule.epoch_validation(DataSplits(split.train), seed=0).val is None


def test_each_epoch_validates_on_the_sample_and_the_kept_model_on_all(
    sst2, monkeypatch, tmp_path, caplog
):
    data = load_data(sst2["train"]).subset(list(range(48)))
    val = load_data(sst2["test"]).subset(list(range(40)))
    monkeypatch.setattr(schedule, "EPOCH_VALIDATION", 16)
    seen = []
    inputs = FitLoaders.inputs

    def spy(self, *args, **kwargs):
        seen.append(len(self.splits.val))
        return inputs(self, *args, **kwargs)

    monkeypatch.setattr(FitLoaders, "inputs", spy)
    options = dict(model="minilm", batch_size=16, head_epochs=1, epochs=1, seed=0)
    with caplog.at_level("INFO", logger="graft"):
        model = graft.fit(data, val, cache_dir=tmp_path, progress=False, **options)
    assert seen == [16]
    assert "on 16 of the 40 validation examples" in caplog.text
    assert np.asarray(model.metrics_["val"]["confusion_matrix"]).sum() == 40
    assert model.summary_["epoch_validation"] == {"examples": 16, "of": 40}
    seen.clear()  # a head started from the class names is compared with the untrained model
    guarded = graft.fit(
        data, val, cache_dir=tmp_path, progress=False, head_init="labels", **options
    )
    assert seen == [40] and "epoch_validation" not in guarded.summary_
