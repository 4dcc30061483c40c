"""Stratified folds: disjoint, covering, balanced per class; fold summaries as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graft.errors import ConfigError, DataError
from graft.fewshot.cross_validation import stratified_folds, summarise_folds

LABELS = np.array([0] * 13 + [1] * 7 + [2] * 2 + [3] * 9)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_are_disjoint_cover_everything_and_train_on_the_rest(k):
    folds = stratified_folds(LABELS, k=k, seed=4)
    assert len(folds) == k
    validation = np.concatenate([val for _, val in folds])
    assert sorted(validation.tolist()) == list(range(len(LABELS)))  # each exactly once
    for train, val in folds:
        assert not set(train) & set(val)
        assert len(train) + len(val) == len(LABELS)
        assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_every_class_is_spread_evenly_over_the_folds():
    folds = stratified_folds(LABELS, k=5, seed=0)
    sizes = [len(val) for _, val in folds]
    assert max(sizes) - min(sizes) <= 1
    for label, total in enumerate(np.bincount(LABELS)):
        counts = [int((LABELS[val] == label).sum()) for _, val in folds]
        assert max(counts) - min(counts) <= 1 and sum(counts) == total


def test_a_class_smaller_than_k_lands_in_one_fold_per_example():
    folds = stratified_folds(LABELS, k=5, seed=0)
    holding = [f for f, (_, val) in enumerate(folds) if (LABELS[val] == 2).any()]
    assert len(holding) == 2  # class 2 has two examples: two folds validate on one each
    for f, (train, _) in enumerate(folds):
        assert (LABELS[train] == 2).sum() == (1 if f in holding else 2)


def test_folds_are_a_function_of_the_seed():
    first = stratified_folds(LABELS, 3, seed=1)
    again = stratified_folds(LABELS, 3, seed=1)
    other = stratified_folds(LABELS, 3, seed=2)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))


def test_fold_options_are_checked():
    with pytest.raises(ConfigError, match="at least 2 folds"):
        stratified_folds(LABELS, k=1)
    with pytest.raises(ConfigError, match="need at least 40 examples"):
        stratified_folds(LABELS, k=40)
    with pytest.raises(DataError, match="one class index per example"):
        stratified_folds(np.ones((4, 2), dtype=int), k=2)


def test_fold_scores_summarise_to_json():
    summary = summarise_folds([0.5, 0.75, 1.0])
    assert summary == {"folds": 3, "mean": 0.75, "std": 0.25, "per_fold": [0.5, 0.75, 1.0]}
    by_metric = summarise_folds(
        [{"accuracy": 0.5, "f1": 0.4}, {"accuracy": 0.7, "f1": np.float32(0.6)}]
    )
    assert by_metric["folds"] == 2
    assert by_metric["metrics"]["accuracy"]["mean"] == pytest.approx(0.6)
    assert by_metric["metrics"]["f1"]["std"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert json.loads(json.dumps(by_metric)) == by_metric
    assert summarise_folds([0.8])["std"] == 0.0
    with pytest.raises(ValueError, match="no fold scores"):
        summarise_folds([])
    with pytest.raises(ValueError, match="same metrics"):
        summarise_folds([{"accuracy": 0.5}, {"f1": 0.5}])
