"""Schedules that follow the data: fewer passes over a large training set, and a sample of a
large validation set after each epoch.

A kind's default number of epochs that train the backbone (fine-tune 3, tagging 5) is what a
small training set needs: a few hundred sentences give a few dozen optimiser steps an epoch.
On a large set each epoch holds hundreds of steps, and the last epochs buy nothing
(bench/RESULTS.md, "Epochs that follow the data size"): on the whole CoNLL-2003 training set
(439 steps an epoch at batch 32) 3 epochs reached the test F1 that 5 had (0.8737 against
0.8736), and on 16,000 sst2 sentences 2 epochs the accuracy of 3 (0.874 against 0.873) in 0.71x
the CPU time. When ``--epochs`` is not given, the phase that trains the backbone runs at
most as many epochs as reach :data:`TARGET_STEPS` optimiser steps, and never fewer than
:data:`LEAST_EPOCHS`; a phase whose epochs hold fewer steps keeps the kind's default.

A validation pass after every epoch costs about a third of an epoch over as many training
examples; a large validation set (graft holds out a fifth of a large training set) scores each
epoch more precisely than choosing among a few epochs needs. When the validation split holds
more than :data:`EPOCH_VALIDATION` examples, the validation after each epoch (which keeps the
best epoch and stops early) reads a seeded sample of that many, and the kept model is scored
on the whole split at the end, as always. Fits whose kept model is compared with the
pretrained one (:class:`~graft.tasks.capabilities.GuardsPretrained`, heads started from class
names) validate on the whole split, since the two scores must come from the same examples,
and so do kinds whose rows each label some of several tasks
(:class:`~graft.tasks.capabilities.ValidatesWhole`); the fit decides
(:func:`graft.fitting.training.train_phases`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np

from graft.training.phase import Phase

log = logging.getLogger("graft")

#: Optimiser steps of the backbone that the default epochs are cut down to, not below.
TARGET_STEPS = 1000
#: The fewest epochs a default schedule is cut to (one epoch leaves no epoch to choose).
LEAST_EPOCHS = 2
#: The most validation examples read after each epoch; a larger split is sampled to this.
EPOCH_VALIDATION = 1000


def epochs_for_steps(rows: int, batch_size: int, planned: int) -> int:
    """Epochs of a phase planned for ``planned`` epochs over ``rows`` training examples in
    batches of ``batch_size``: as many as reach :data:`TARGET_STEPS` steps, between
    :data:`LEAST_EPOCHS` and ``planned``."""
    steps = max(1, math.ceil(rows / batch_size))
    return min(planned, max(LEAST_EPOCHS, math.ceil(TARGET_STEPS / steps)))


def follow_data(phases: list[Phase], rows: int, batch_size: int) -> list[Phase]:
    """``phases`` with the one phase that trains the backbone cut to the epochs that reach
    :data:`TARGET_STEPS` steps (:func:`epochs_for_steps`); unchanged when several phases train
    it (gradual unfreezing plans its own steps) or none does."""
    training = [p for p in phases if p.train_backbone and p.kind == "transfer"]
    if len(training) != 1:
        return phases
    phase = training[0]
    epochs = epochs_for_steps(rows, batch_size, phase.epochs)
    if epochs == phase.epochs:
        return phases
    log.info(
        "%s: %d epochs instead of %d (%d training examples make %d steps an epoch; "
        "--epochs sets them)",
        phase.name,
        epochs,
        phase.epochs,
        rows,
        math.ceil(rows / batch_size),
    )
    return [dataclasses.replace(p, epochs=epochs) if p is phase else p for p in phases]


def epoch_validation(splits: Any, seed: int) -> Any:
    """``splits`` with a validation split of more than :data:`EPOCH_VALIDATION` examples
    cut to a sample of that many, drawn with ``seed`` and kept in the split's order: the data
    each epoch is validated on. ``splits`` itself where the split is that small already (or
    cannot be cut)."""
    val = splits.val
    if val is None or len(val) <= EPOCH_VALIDATION or not hasattr(val, "subset"):
        return splits
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(val), EPOCH_VALIDATION, replace=False))
    log.info(
        "validation after each epoch on %d of the %d validation examples (a seeded sample); "
        "the kept model is scored on all of them",
        EPOCH_VALIDATION,
        len(val),
    )
    return dataclasses.replace(splits, val=val.subset(chosen.tolist()))
