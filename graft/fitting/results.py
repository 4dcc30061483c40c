"""The end of a fit: the task's decision rules tuned and the metrics of every split, the
cross-validated estimate of a fit with few labels, the from-scratch baseline, the summary and
the run's report.

Each function takes the estimator being fitted (``model``) and fills its ``metrics_`` or
returns what goes there."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from graft.data import DataSplits
from graft.features import FeatureCache
from graft.fewshot.few_labels import LABELLED_ONLY, kept_estimate
from graft.fitting.inputs import FitData
from graft.selection.baseline import fit_scratch_baseline
from graft.strategies import STRATEGIES
from graft.tasks.capabilities import CachesFeatures, GuardsPretrained, tunes
from graft.tasks.capabilities import summary as task_summary

log = logging.getLogger("graft")


def evaluate_splits(model: Any, config, splits: DataSplits, cache, timings, adaptation) -> None:
    """Tune the task's decision rules on validation data; the metrics of every split
    (``model.metrics_``), and with ``adaptation`` the domain gap after training."""
    task = model.fitted_task_
    frozen = STRATEGIES[config.strategy].frozen_backbone and isinstance(task, CachesFeatures)
    frozen = cache if frozen else None
    if tunes(task):
        task.tune(model._outputs(splits.val, frozen), splits.val)
    model.metrics_ = {
        name: task.metrics(model._outputs(part, frozen), part)
        for name, part in (("val", splits.val), ("test", splits.test))
        if part is not None
    }
    if hasattr(model, "guard_"):  # the pretrained model's score, and whether it was kept
        model.metrics_["guard"] = model.guard_
    pretrained = getattr(model, "pretrained_val_metrics_", None)
    if isinstance(task, GuardsPretrained) and pretrained is not None and "val" in model.metrics_:
        model.metrics_["val"]["pretrained"] = pretrained  # before and after, on the same data
    if adaptation is not None:
        model.metrics_.update(
            adaptation.measure_after(
                splits,
                model.backbone_,
                model.head_,
                frozen,
                lambda data: task.metrics(model._outputs(data, frozen), data),
                timings,
            )
        )


def cross_validated(model: Any, splits: DataSplits, inputs: FitData, semi, timings) -> dict | None:
    """With few labels, the k-fold cross-validated estimate (``metrics.json``'s
    ``cross_validation``); with unlabelled data, the guard's choice between the
    semi-supervised and the labelled-only model (by that estimate, or by validation)."""
    few = getattr(model, "few_labels_", None)
    record = None
    if few is not None and few.folds:
        record = few.cross_validate(splits.train, lambda part: fit_fold(model, part, inputs))
        timings["cross_validation"] = record["seconds"]
    if semi is not None:
        semi.decide(record)
    if record is None:
        return None
    return kept_estimate(record, semi.kept if semi is not None else LABELLED_ONLY)


def fit_fold(model: Any, train: Any, inputs: FitData) -> Any:
    """The fit of one cross-validation fold: ``model``'s settings as resolved, on ``train``
    (with the same unlabelled data), without an estimate of its own."""
    settings = {**model.config_.to_dict(), "cv_folds": 0, "progress": False, "time_limit": None}
    fold = type(model)(**settings)
    data = FitData(train, columns=inputs.columns, unlabeled=inputs.unlabeled)
    fold._fit(data, None, False, False)
    return fold


def scratch_baseline(model: Any, splits: DataSplits, timings: dict[str, float]) -> dict:
    """Train the from-scratch control (:mod:`graft.selection.baseline`); its gain record."""
    start = time.perf_counter()
    transfer = fit_scratch_baseline(model, splits, type(model))
    timings["baseline"] = time.perf_counter() - start
    if transfer["verdict"] == "negative transfer":
        log.warning(
            "negative transfer: %s from scratch scores higher than pretrained %s",
            model.model_,
            model.model_,
        )
    return transfer


def fit_summary(model: Any, splits: DataSplits, cache: FeatureCache, timings: dict) -> dict:
    """``summary.json`` of a fit: the data, the task's own part, the feature cache, timings,
    the kept phase and what the fit chose (few labels, learning rate, strategy, epochs)."""
    stats = cache.stats
    summary = task_summary(model.fitted_task_, splits, model.backbone_)
    summary["feature_cache"] = {"hits": stats.hits, "misses": stats.misses}
    summary["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    summary["kept_phase"] = model.kept_phase_
    if getattr(model, "few_labels_", None) is not None:
        summary["few_labels"] = model.split_
    for key in ("cross_validation", "semi_supervised"):
        if key in model.metrics_:
            summary[key] = model.metrics_[key]
    if hasattr(model, "lr_finding_"):
        summary["lr_finder"] = model.lr_finding_.to_dict()
    if hasattr(model, "advice_"):
        summary["advice"] = model.advice_.to_dict()
    if model.epoch_choice_:
        summary["epoch_choice"] = model.epoch_choice_
    if getattr(model, "epoch_validation_", None):  # the kept epoch's scores are the sample's
        summary["epoch_validation"] = model.epoch_validation_
    for key in ("transfer", "adaptation", "guard"):
        if key in model.metrics_:
            summary[key] = model.metrics_[key]
    if getattr(model, "time_budget_", None) is not None:
        summary["time_limit"] = model.time_budget_.record()
    return summary


def write_report(run_dir: Path) -> None:
    """The run's ``report.html``; the saved model stands even when the report cannot be drawn."""
    from graft.report.page import write_report as write_page

    try:
        write_page(run_dir)
    except Exception as error:  # noqa: BLE001  (a plot failing must not fail a finished fit)
        log.warning(
            "report.html not written (%s); rebuild it with: graft report %s", error, run_dir
        )
