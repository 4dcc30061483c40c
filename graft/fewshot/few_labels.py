"""Few labels: every example trains, with a fixed recipe, and k-fold cross-validation gives the
estimate.

With a handful of labelled examples and no validation data, the usual seeded 20% split costs
the model a fifth of its data and buys little: a validation set of a few examples cannot choose
an epoch or a phase (its best epoch is noise, see
:data:`graft.training.runner.MIN_VAL_TO_CHOOSE_EPOCH`), and its accuracy moves by a whole
example's share. Below :data:`FEW_LABELS_PER_CLASS` labelled examples per class (the median
over classes), a multiclass fit without validation data therefore

- trains on every labelled example (no split; ``split_`` records why);
- follows a fixed recipe instead of choosing by validation: every phase trains the epochs its
  strategy plans (the head: 30 at ``--lr``) and keeps the last (:meth:`FewLabels.plan`). On
  sst2 with MiniLM's frozen features a head trained on every example and kept at its last
  epoch scored 1.7 and 2.0 points above the same head validated on a 20% hold-out, at 8 and
  64 sentences per class (bench/RESULTS.md, the comparison with SetFit);
- estimates its score by stratified k-fold cross-validation (``--cv-folds``, default 5;
  :mod:`graft.fewshot.cross_validation`): the same recipe trains on k-1 folds and is scored on
  the held-out one, k times, so every example is scored once by a model that never saw it.
  ``metrics.json`` holds the folds' mean, standard deviation and per-fold values under
  ``cross_validation``. The folds train on (k-1)/k of the examples, so the estimate is of a
  model trained on slightly less data than the one saved: if anything, pessimistic.

Cross-validation repeats the fit k times; with a frozen backbone the folds reuse its cached
features (seconds), with a backbone that trains (``contrastive``, ``fine-tune``) each fold
trains it again. ``--cv-folds 0`` skips the estimate.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from graft.fewshot.cross_validation import stratified_folds, summarise_folds
from graft.tasks.capabilities import SingleLabel

if TYPE_CHECKING:
    from graft.data import LabelledData
    from graft.training.phase import Phase

log = logging.getLogger("graft")

#: Below this median of labelled examples per class, with no validation data, the fit trains
#: on every example and cross-validates (see the module docstring). Measured with a head on
#: frozen features (bench/few_labels_threshold.py, 5 seeds, test accuracy of every example
#: minus the 20% hold-out): sst2 +1.3, +1.9, +0.8, +0.5 points and flowers +1.7, +1.2, +0.1,
#: +1.2 at 25, 50, 100 and 200 a class. The gain is clear below 100 and small above; above,
#: the hold-out also chooses the epochs and phases of fine-tuning, which the fixed recipe
#: cannot, and cross-validating a fine-tuned backbone costs K more fine-tunings.
FEW_LABELS_PER_CLASS = 100
#: The metrics each fold reports (the task's headline first).
FOLD_METRICS = ("accuracy", "macro_f1")

#: The arms of a fit with unlabelled data that the folds score.
LABELLED_ONLY, SEMI_SUPERVISED = "labelled-only", "semi-supervised"


@dataclass
class FewLabels:
    """The few-labels regime of one fit (see the module docstring).

    Attributes:
        examples: labelled examples, all of which train.
        median_per_class: the median over classes of the labelled examples.
        folds: k of the cross-validation estimate (0: none).
        seed: seeds the folds.
    """

    examples: int
    median_per_class: float
    folds: int
    seed: int

    @classmethod
    def for_fit(cls, config: Any, kind: type, train: LabelledData, adapting: bool):
        """The regime of a fit with ``config`` on ``train`` (of the task class ``kind``) when
        no validation data was given, or None: for a kind of one class per input
        (:class:`~graft.tasks.capabilities.SingleLabel`) below :data:`FEW_LABELS_PER_CLASS`
        per class, unless the fit adapts to a target domain (whose guard judges on source
        validation data)."""
        if not issubclass(kind, SingleLabel) or adapting or train.labels is None:
            return None
        counts = np.bincount(train.labels, minlength=len(train.classes))
        median = float(np.median(counts[counts > 0]))
        if median >= FEW_LABELS_PER_CLASS:
            return None
        folds = config.cv_folds
        if folds and counts[counts > 0].min() < 2:
            log.warning(
                "no cross-validation estimate: a class with a single labelled example cannot "
                "be both trained on and held out"
            )
            folds = 0
        return cls(len(train), median, min(folds, len(train)), config.seed)

    def reason(self) -> str:
        return (
            f"few labels: {self.examples} labelled examples (median {self.median_per_class:g} "
            f"per class, fewer than {FEW_LABELS_PER_CLASS}) and no validation data: every "
            "example trains with a fixed recipe"
            + (
                f"; the estimate is {self.folds}-fold cross-validation"
                if self.folds
                else "; no estimate (--cv-folds 0)"
            )
        )

    def split_record(self) -> dict:
        """What the run records in place of a validation split (``split_``)."""
        return {
            "kind": "none",
            "reason": self.reason(),
            "few_labels_per_class": FEW_LABELS_PER_CLASS,
            "cv_folds": self.folds,
            "seed": self.seed,
        }

    def plan(self, phases: list[Phase]) -> list[Phase]:
        """The strategy's phases as the few-labels recipe trains them: each trains all its
        epochs and keeps the last (there is no validation data to choose by)."""
        return [dataclasses.replace(phase, keep_last=True) for phase in phases]

    def cross_validate(self, train: LabelledData, fit_fold: Callable[[LabelledData], Any]) -> dict:
        """The k-fold estimate: ``fit_fold`` fits the recipe on each fold's training part (a
        fitted estimator, trained without a further estimate), which is scored on the held-out
        part; with unlabelled data, both the labelled-only and the semi-supervised model of
        each fold are scored. ``metrics.json``'s ``cross_validation`` before the choice of
        model (:func:`kept_estimate`)."""
        start = time.perf_counter()
        scores: dict[str, list[dict]] = {}
        held_out = []
        for number, (fold_train, fold_val) in enumerate(
            stratified_folds(train.labels, self.folds, self.seed), start=1
        ):
            log.info("cross-validation fold %d of %d", number, self.folds)
            model = fit_fold(train.subset(fold_train))
            held = train.subset(fold_val)
            held_out.append(len(held))
            for arm, metrics in fold_scores(model, held).items():
                scores.setdefault(arm, []).append(metrics)
        return {
            "folds": self.folds,
            "seed": self.seed,
            "stratified": True,
            "held_out": held_out,
            "arms": {arm: summarise_folds(values)["metrics"] for arm, values in scores.items()},
            "seconds": round(time.perf_counter() - start, 3),
        }


def fold_scores(model: Any, held_out: LabelledData) -> dict[str, dict[str, float]]:
    """The fold metrics of a fitted fold model on its held-out part: of the labelled-only
    model, and with unlabelled data of the semi-supervised one too."""
    semi = getattr(model, "semi_supervised_", None)
    arms = [LABELLED_ONLY] if semi is None or not semi.trained else [LABELLED_ONLY, SEMI_SUPERVISED]
    found = {}
    for arm in arms:
        if semi is not None and semi.trained:
            semi.use(arm)
        metrics = model.fitted_task_.metrics(model._outputs(held_out), held_out)
        found[arm] = {name: float(metrics[name]) for name in FOLD_METRICS}
    return found


def kept_estimate(record: dict, kept: str = LABELLED_ONLY) -> dict:
    """``record`` with the estimate of the ``kept`` model's arm on top (``metrics``, the
    headline ``accuracy`` mean and std) and the arm named."""
    metrics = record["arms"][kept]
    return {
        "model": kept,
        "accuracy": metrics["accuracy"]["mean"],
        "accuracy_std": metrics["accuracy"]["std"],
        "metrics": metrics,
        **record,
    }
