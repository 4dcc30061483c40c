"""Contrastive pairs: balanced, valid, and a function of the seed."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import pytest

from graft.errors import ConfigError, DataError
from graft.fewshot.pairs import contrastive_pairs, pair_counts

LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])


def test_iterations_anchor_every_example_in_as_many_positive_as_negative_pairs():
    pairs = contrastive_pairs(LABELS, num_iterations=5, seed=3)
    assert len(pairs) == 2 * 5 * len(LABELS)
    assert pair_counts(pairs) == {"positive": 60, "negative": 60}
    anchored = Counter((i, target) for i, _, target in pairs)
    assert set(anchored.values()) == {5}  # each example: 5 positive and 5 negative pairs
    assert len(anchored) == 2 * len(LABELS)
    for i, j, target in pairs:
        assert i != j
        assert (LABELS[i] == LABELS[j]) == (target == 1.0)
    assert pairs[0::2] == [p for p in pairs if p[2] == 1.0]  # positive, negative, positive...


def test_iterations_draw_partners_from_the_whole_class():
    pairs = contrastive_pairs(LABELS, num_iterations=200, seed=0)
    partners_of_0 = {j for i, j, target in pairs if i == 0 and target == 1.0}
    negatives_of_0 = {j for i, j, target in pairs if i == 0 and target == 0.0}
    assert partners_of_0 == {1, 2, 3}
    assert negatives_of_0 == set(range(4, 12))


def test_pairs_are_a_function_of_the_seed():
    assert contrastive_pairs(LABELS, 4, seed=7) == contrastive_pairs(LABELS, 4, seed=7)
    assert contrastive_pairs(LABELS, 4, seed=7) != contrastive_pairs(LABELS, 4, seed=8)
    over = contrastive_pairs(LABELS, seed=1, strategy="oversampling")
    assert over == contrastive_pairs(list(LABELS), seed=1, strategy="oversampling")
    assert over != contrastive_pairs(LABELS, seed=2, strategy="oversampling")


def test_an_example_alone_in_its_class_is_its_own_positive():
    pairs = contrastive_pairs(np.array([0, 0, 1]), num_iterations=3, seed=0)
    assert {(i, j) for i, j, target in pairs if i == 2 and target == 1.0} == {(2, 2)}


def test_oversampling_takes_every_pair_once_and_repeats_the_rarer_kind():
    pairs = contrastive_pairs(LABELS, seed=0, strategy="oversampling")
    unordered = [frozenset((i, j)) for i, j, _ in pairs]
    positives = {frozenset(p) for p in combinations(range(12), 2) if LABELS[p[0]] == LABELS[p[1]]}
    negatives = {frozenset(p) for p in combinations(range(12), 2)} - positives
    assert len(positives) == 6 + 3 + 10 and len(negatives) == 47
    assert pair_counts(pairs) == {"positive": 47, "negative": 47}
    assert {u for u, (_, _, t) in zip(unordered, pairs, strict=True) if t == 1.0} == positives
    assert {u for u, (_, _, t) in zip(unordered, pairs, strict=True) if t == 0.0} == negatives
    negative_list = [u for u, (_, _, t) in zip(unordered, pairs, strict=True) if t == 0.0]
    assert len(set(negative_list)) == 47  # the majority kind appears exactly once
    positive_list = [u for u, (_, _, t) in zip(unordered, pairs, strict=True) if t == 1.0]
    assert positive_list[19:38] == positive_list[:19]  # repeated in the same shuffled order


def test_pairs_need_two_classes_and_valid_options():
    with pytest.raises(DataError, match="at least 2 classes"):
        contrastive_pairs(np.zeros(5, dtype=int))
    with pytest.raises(DataError, match="one class index per example"):
        contrastive_pairs(np.array([0.5, 1.0]))
    with pytest.raises(DataError, match="class with 2 examples"):
        contrastive_pairs(np.array([0, 1, 2]), strategy="oversampling")
    with pytest.raises(ConfigError, match="unknown pair strategy"):
        contrastive_pairs(LABELS, strategy="triplets")
    with pytest.raises(ConfigError, match="num_iterations"):
        contrastive_pairs(LABELS, num_iterations=0)
