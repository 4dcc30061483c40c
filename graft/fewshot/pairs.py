"""Positive and negative pairs of labelled examples, for contrastive fine-tuning as SetFit does.

SetFit (Tunstall et al., "Efficient Few-Shot Learning Without Prompts", 2022) fine-tunes a
sentence encoder on pairs of the few labelled examples: a pair of the same class has the
similarity target 1, a pair of different classes 0, and the cosine similarity of the two
embeddings is regressed on the target (:func:`graft.fewshot.losses.cosine_pair_loss`); a
logistic regression is then fitted on the new embeddings. With n examples, pairs multiply the
training signal from n to about n²/2, and balancing positives against negatives keeps the
encoder from learning that "different" is the answer to everything (with C classes only about
1/C of all pairs are positive).

Two recipes, both balanced (as many positive as negative pairs) and a function of the seed:

- ``iterations`` (the paper, and SetFit before 1.0 with ``num_iterations=20``): R rounds; in
  each, every example is the anchor of one positive pair (a partner drawn uniformly from the
  other examples of its class) and one negative pair (a partner drawn uniformly from the
  examples of the other classes): ``2 * R * n`` pairs.
- ``oversampling`` (SetFit 1.x's default): every unordered pair of distinct examples once,
  shuffled; the rarer kind (usually the positives) is repeated in its shuffled order until it
  matches the other: ``2 * max(positives, negatives)`` pairs, positive and negative alternating.

Unlike SetFit, an example is never paired with itself (the cosine loss and its gradient are zero
on such a pair, so it only thins the batch), except in ``iterations`` where an example that is
alone in its class has no other partner: its positive pair is then ``(i, i)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from graft.errors import ConfigError, DataError

PairStrategy = Literal["iterations", "oversampling"]
PAIR_STRATEGIES = ("iterations", "oversampling")

#: One training pair: the positions of its two examples and its similarity target (1.0 same
#: class, 0.0 different classes).
Pair = tuple[int, int, float]


def contrastive_pairs(
    labels: Sequence[int] | np.ndarray,
    num_iterations: int = 20,
    seed: int = 0,
    strategy: PairStrategy = "iterations",
) -> list[Pair]:
    """Balanced positive and negative pairs of the examples with these class ``labels``.

    Args:
        labels: one class index per example (multiclass).
        num_iterations: R, the rounds of the ``iterations`` recipe (each example anchors R
            positive and R negative pairs); unused by ``oversampling``.
        seed: the same seed and labels always give the same pairs, in the same order.
        strategy: ``iterations`` or ``oversampling`` (see the module docstring).

    Returns:
        ``(i, j, target)`` triples, positives and negatives alternating.

    Raises:
        DataError: fewer than two classes, or (``oversampling``) no class with two examples.
        ConfigError: an unknown strategy or ``num_iterations`` below 1.
    """
    labels = _class_labels(labels)
    if strategy not in PAIR_STRATEGIES:
        raise ConfigError(
            f"unknown pair strategy {strategy!r}; choose from {', '.join(PAIR_STRATEGIES)}"
        )
    rng = np.random.default_rng(seed)
    if strategy == "oversampling":
        return _oversampled_pairs(labels, rng)
    if num_iterations < 1:
        raise ConfigError(f"num_iterations must be at least 1, got {num_iterations}")
    return _iterated_pairs(labels, num_iterations, rng)


def _class_labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"contrastive pairs need one class index per example (integers, 1-D), got an "
            f"array of shape {labels.shape} and type {labels.dtype}"
        )
    if len(np.unique(labels)) < 2:
        raise DataError("contrastive pairs need examples of at least 2 classes")
    return labels


def _iterated_pairs(labels: np.ndarray, rounds: int, rng: np.random.Generator) -> list[Pair]:
    """R rounds of one positive and one negative pair anchored at every example."""
    n = len(labels)
    positions = np.arange(n)
    same = [np.flatnonzero((labels == labels[i]) & (positions != i)) for i in range(n)]
    same = [members if len(members) else np.array([i]) for i, members in enumerate(same)]
    other = [np.flatnonzero(labels != labels[i]) for i in range(n)]
    pairs: list[Pair] = []
    for _ in range(rounds):
        for anchor in rng.permutation(n):
            positive = same[anchor][rng.integers(len(same[anchor]))]
            negative = other[anchor][rng.integers(len(other[anchor]))]
            pairs.append((int(anchor), int(positive), 1.0))
            pairs.append((int(anchor), int(negative), 0.0))
    return pairs


def _oversampled_pairs(labels: np.ndarray, rng: np.random.Generator) -> list[Pair]:
    """Every pair of distinct examples once, the rarer kind repeated to match the other."""
    first, second = np.triu_indices(len(labels), k=1)
    order = rng.permutation(len(first))
    first, second = first[order], second[order]
    same = labels[first] == labels[second]
    positives = [(int(i), int(j), 1.0) for i, j in zip(first[same], second[same], strict=True)]
    negatives = [(int(i), int(j), 0.0) for i, j in zip(first[~same], second[~same], strict=True)]
    if not positives:
        raise DataError(
            "contrastive pairs need at least one class with 2 examples (every class has one)"
        )
    size = max(len(positives), len(negatives))
    pairs: list[Pair] = []
    for k in range(size):
        pairs.append(positives[k % len(positives)])
        pairs.append(negatives[k % len(negatives)])
    return pairs


def pair_counts(pairs: Sequence[Pair]) -> dict[str, int]:
    """How many positive and negative pairs ``pairs`` holds (for logs and records)."""
    positive = sum(1 for _, _, target in pairs if target > 0.5)
    return {"positive": positive, "negative": len(pairs) - positive}
