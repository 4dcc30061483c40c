"""Stratified k-fold cross-validation for datasets too small to hold a validation split out.

With 8 examples per class, a 20% hold-out validates on 2 sentences a class and trains on the
rest; k folds instead train on (k-1)/k of the examples k times and score every example exactly
once, so a choice (of epochs, learning rate, strategy) is judged on all the data.

How the examples are dealt (a function of the labels and the seed):

- each class's examples are shuffled with the seed and dealt to the folds one at a time,
  round-robin; the next class continues from the fold where the previous one stopped, so fold
  sizes differ by at most one and each class's count differs by at most one between folds;
- a class with fewer examples than k lands in as many folds as it has examples (one each) and
  is absent from the validation part of the others, which train on all of it. A class with a
  single example is therefore missing from the training part of the one fold that validates on
  it: that fold scores it as a class its model never saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graft.errors import ConfigError, DataError

Fold = tuple[np.ndarray, np.ndarray]


def stratified_folds(labels: Sequence[int] | np.ndarray, k: int = 5, seed: int = 0) -> list[Fold]:
    """``k`` (train indices, validation indices) pairs, stratified by class.

    The validation parts are disjoint and together hold every example exactly once; each
    fold's train part is the complement of its validation part. Indices are sorted.

    Raises:
        ConfigError: ``k`` below 2 or above the number of examples.
        DataError: labels that are not one class index per example.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"stratified folds need one class index per example (integers, 1-D), got an array "
            f"of shape {labels.shape} and type {labels.dtype}"
        )
    if k < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {k}")
    if k > len(labels):
        raise ConfigError(f"{k} folds need at least {k} examples; the data has {len(labels)}")
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    cursor = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        assignment[members] = (cursor + np.arange(len(members))) % k
        cursor = (cursor + len(members)) % k
    everything = np.arange(len(labels))
    return [(everything[assignment != fold], everything[assignment == fold]) for fold in range(k)]


def summarise_folds(scores: Sequence[float] | Sequence[Mapping[str, float]]) -> dict:
    """The mean, standard deviation and per-fold values of fold scores, as plain JSON types.

    ``scores`` holds one number per fold, or one ``{metric: value}`` mapping per fold (every
    fold with the same metrics). The standard deviation is the sample one (``ddof=1``: the
    spread of a fold's score around the mean), 0.0 for a single fold.

    Returns:
        ``{"folds": k, "mean": m, "std": s, "per_fold": [...]}`` for numbers, or
        ``{"folds": k, "metrics": {name: {"mean": m, "std": s, "per_fold": [...]}}}`` for
        mappings.

    Raises:
        ValueError: no scores, or folds that report different metrics.
    """
    if len(scores) == 0:
        raise ValueError("no fold scores to summarise")
    if not isinstance(scores[0], Mapping):
        return {"folds": len(scores), **_summary([float(s) for s in scores])}
    names = list(scores[0])
    if any(set(fold) != set(names) for fold in scores):
        raise ValueError("every fold must report the same metrics")
    return {
        "folds": len(scores),
        "metrics": {name: _summary([float(fold[name]) for fold in scores]) for name in names},
    }


def _summary(values: list[float]) -> dict:
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": spread, "per_fold": values}
