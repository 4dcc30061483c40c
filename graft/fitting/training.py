"""Training in a fit: the modules, loaders and engine of its phases, the strategy's phases
trained by :class:`graft.training.runner.PhaseRunner`, and the learning-rate range test.

Each function takes the estimator being fitted (``model``: its task, backbone and head) and
the configuration as the fit resolved it."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from graft.backbones.registry import SCRATCH_PREFIX
from graft.config import FitConfig
from graft.data import DataSplits
from graft.data.transforms import mixup_for
from graft.errors import ConfigError
from graft.features import FeatureCache
from graft.strategies import STRATEGIES
from graft.tasks.capabilities import (
    CachesFeatures,
    GuardsPretrained,
    SingleLabel,
    ValidatesWhole,
    plan,
    tunes,
)
from graft.tasks.capabilities import networks as task_networks
from graft.training.budget import STEP_PER_FORWARD, TimeBudget, forward_seconds, uncached_share
from graft.training.distributed import EngineOptions
from graft.training.loaders import FitLoaders
from graft.training.lr_finder import FALLBACK_LR, LRFinding, find_learning_rate
from graft.training.phase import Phase
from graft.training.runner import PRETRAINED, ModuleFactory, PhaseRunner
from graft.training.schedule import epoch_validation, follow_data

log = logging.getLogger("graft")


def check_run_options(config: FitConfig, out, train_size: int) -> None:
    """Refuse a logger without a run directory (or its package); warn of a batch larger than
    the data."""
    from graft.training.engine import require_logger

    if config.logger != "csv":
        require_logger(config.logger)
        if out is None:
            raise ConfigError(
                f"--logger {config.logger} writes into the run directory: give --out too"
            )
    if config.batch_size > train_size:
        log.warning(
            "--batch-size %d is larger than the %d training examples: every epoch is one "
            "batch of %d",
            config.batch_size,
            train_size,
            train_size,
        )


def engine_options(config: FitConfig) -> EngineOptions:
    """How the phases of a fit with ``config`` run (precision, devices, logger, ...)."""
    return EngineOptions(
        precision=config.precision,
        devices=config.devices,
        num_nodes=config.num_nodes,
        distributed=None if config.distributed == "none" else config.distributed,
        grad_clip=config.grad_clip,
        progress=config.progress,
        logger=config.logger,
    )


def fit_loaders(model: Any, config: FitConfig, splits: DataSplits, cache, timings) -> FitLoaders:
    """The data loaders of ``model``'s phases (cached features for head-only ones)."""
    return FitLoaders.for_fit(
        config, splits, model.backbone_, cache, timings, task=model.fitted_task_
    )


def module_factory(model: Any, config: FitConfig, splits: DataSplits) -> ModuleFactory:
    """What builds each phase's training module, with this fit's options."""
    class_weights = None
    if config.class_weights == "auto":
        class_weights = model.fitted_task_.class_weights(splits.train)
    mixup = None
    if isinstance(model.fitted_task_, SingleLabel):  # images: mixup and cutmix; audio: mixup
        modality = model.backbone_.modality
        mixup = mixup_for(config.augment, len(model.classes_), config.label_smoothing, modality)
    return ModuleFactory(
        model.fitted_task_,
        model.head_,
        model.backbone_,
        dict(
            label_smoothing=config.label_smoothing,
            weight_decay=config.weight_decay,
            class_weights=class_weights,
        ),
        mixup,
        from_scratch=model.backbone_.spec.startswith(SCRATCH_PREFIX),
    )


def range_test(
    model: Any, config: FitConfig, splits: DataSplits, cache: FeatureCache, timings: dict
) -> LRFinding:
    """The range test on the head over cached features (:mod:`graft.training.lr_finder`)."""
    loaders = fit_loaders(model, config, splits, cache, timings)
    phase = Phase(name="lr_find", epochs=1, backbone_groups=0, head_lr=FALLBACK_LR)
    module = module_factory(model, config, splits)(phase)
    train_loader = loaders.head_only()[0]
    return find_learning_rate(module, train_loader, engine_options(config), config.seed)


def guards_pretrained(model: Any) -> bool:
    """Whether the fit's kept model is compared with the untrained one on validation: its
    kind :class:`~graft.tasks.capabilities.GuardsPretrained`, or its head started from what
    the backbone knows (``head_started_``)."""
    return isinstance(model.fitted_task_, GuardsPretrained) or getattr(
        model, "head_started_", False
    )


def pretrained_score(model: Any, splits: DataSplits) -> float | None:
    """The untrained model's validation score (the task's headline metric) when its kind
    :class:`~graft.tasks.capabilities.GuardsPretrained` or its head started from what the
    backbone knows (``head_started_``), else None. Its whole validation metrics are kept as
    ``pretrained_val_metrics_``: the fit's validation metrics show them beside its own."""
    task = model.fitted_task_
    if not guards_pretrained(model) or splits.val is None:
        return None
    metrics = task.metrics(model._outputs(splits.val), splits.val)
    model.pretrained_val_metrics_ = metrics
    score = float(task.score(metrics))
    log.info("the pretrained model scores %.4f on validation (%s)", score, task.headline)
    return score


def train_phases(model: Any, config: FitConfig, splits, cache, timings, run, semi) -> None:
    """Train the strategy's phases of ``model``; keep the best (``history_``,
    ``kept_phase_``, ``epoch_choice_``; with ``semi``, self-training rounds follow).

    Args:
        run: ``(run_dir, resume, adaptation)``: the run directory (None: a scratch folder),
            whether to resume it, and the domain adaptation component (or None).
    """
    run_dir, resume, adaptation = run
    engine = engine_options(config)
    whole = guards_pretrained(model) or isinstance(model.fitted_task_, ValidatesWhole)
    each_epoch = splits if whole else epoch_validation(splits, config.seed)
    model.epoch_validation_ = None
    if each_epoch is not splits:  # said in summary.json and the report beside the kept epoch
        model.epoch_validation_ = {"examples": len(each_epoch.val), "of": len(splits.val)}
    loaders = fit_loaders(model, config, each_epoch, cache, timings)
    loaders.world_size = engine.world_size
    networks = {"backbone": model.backbone_, "head": model.head_}
    networks.update(task_networks(model.fitted_task_))
    phases = STRATEGIES[config.strategy]().phases(config, model.backbone_)
    phases = plan(model.fitted_task_, phases)  # as the task trains them
    if model.config.epochs is None:  # graft's default epochs: fewer on a large training set
        phases = follow_data(phases, len(splits.train), config.batch_size)
    if getattr(model, "few_labels_", None) is not None:  # every example trains: no choice
        phases = model.few_labels_.plan(phases)
    budget = getattr(model, "time_budget_", None)
    epoch_estimate = None
    if budget is not None:
        epoch_estimate = plan_budget(
            budget, model, config, splits, cache, timings, phases, each_epoch.val
        )
    with tempfile.TemporaryDirectory(prefix="graft-") as scratch:
        runner = PhaseRunner(
            networks,
            module_factory(model, config, splits),
            loaders,
            engine,
            config.seed,
            Path(run_dir or scratch),
            resume,
            timings,
            trainers=STRATEGIES[config.strategy]().trainers(config),
            budget=budget,
        )
        if epoch_estimate is not None:
            runner.epoch_estimate = epoch_estimate
        guarded = pretrained_score(model, splits)
        if guarded is not None:  # the pretrained model, kept when no phase beats it
            runner.best.guard(guarded)
        model.history_ = runner.run(phases, adaptation)
        model.kept_phase_ = runner.best.restore()
        if budget is not None:
            log.info(budget.summary_line())
        if guarded is not None:
            kept = model.kept_phase_["phase"] == PRETRAINED
            model.guard_ = {"pretrained_val_score": guarded, "kept_pretrained": kept}
            row = {"phase": PRETRAINED, "epoch": 0, "val_score": guarded, "kept": kept}
            model.history_.insert(0, row)
        if semi is not None:  # self-training on the unlabelled data, the backbone fixed
            model.history_ += semi.train(runner, cache, splits.val)
            model.semi_supervised_ = semi
    model.epoch_choice_ = runner.epoch_choice


def plan_budget(
    budget: TimeBudget,
    model: Any,
    config: FitConfig,
    splits,
    cache,
    timings,
    phases,
    checked_val: Any,
):
    """Measure a forward pass on a few training inputs, reserve the time of the final
    evaluation, and refuse (before training) a limit too short for the first phase
    (:mod:`graft.training.budget`); the guess of a phase's epoch seconds the runner skips a
    later phase by. ``checked_val``: the validation data read after each epoch (a sample of
    a large split, :func:`graft.training.schedule.epoch_validation`); the rest of the split
    first meets the backbone in the final evaluation."""
    task = model.fitted_task_
    cached = isinstance(task, CachesFeatures)
    budget.forward = (
        forward_seconds(model.backbone_, splits.train, config.batch_size) if cached else None
    )
    forward = budget.forward or 0.0
    train, val = len(splits.train), len(splits.val) if splits.val is not None else 0
    test = len(splits.test) if splits.test is not None else 0
    checked = len(checked_val) if checked_val is not None else 0
    frozen = STRATEGIES[config.strategy].frozen_backbone and cached
    if frozen:  # the phases cached the features they read: the rest of validation is new
        budget.reserve_end(val - checked)
    else:
        budget.reserve_end(val * (2 if tunes(task) else 1) + test)

    def epoch_estimate(phase: Phase) -> float:
        """An optimistic epoch: a forward and a backward pass no dearer than it (the forward
        pass as the features just computed measured it)."""
        budget.calibrate(timings.get("features", 0.0), cache.stats.misses)
        return (budget.forward or 0.0) * (2 * train + checked) if phase.train_backbone else 0.0

    first = phases[0]
    if first.train_backbone:
        needed = forward * (STEP_PER_FORWARD * train + checked)
    elif cached:  # the features the cache lacks
        parts = [splits.train] + ([checked_val] if checked_val is not None else [])
        share = uncached_share(cache, model.backbone_, parts) if forward else 0.0
        needed = share * forward * (train * max(1, config.views) + checked)
    else:
        needed = 0.0  # measured while the phase trains
    budget.refuse_if_short(needed)
    return epoch_estimate
