"""Source-free adaptation: adapt a trained model to unlabelled target data without its source data.

Liang, Hu and Feng, "Do We Really Need to Access the Source Data? Source Hypothesis Transfer for
Unsupervised Domain Adaptation" (SHOT), ICML 2020. Users often cannot keep or share the data a
model was trained on; the trained model itself carries what the source taught. SHOT keeps the
source hypothesis (the head) fixed and trains the feature extractor on the target alone, so
that the target features fit that hypothesis:

    min_backbone  L_ent + L_div + beta * L_pseudo,

information maximisation (confident, diverse predictions) plus self-training on pseudo-labels
that the nearest class centroid of the current features gives every target item at the start
of each epoch (:mod:`graft.adaptation.pseudo_labels`). ``mcc`` and ``mcc+self-training`` are the
other methods that need no source data (:data:`graft.adaptation.catalogue.SOURCE_FREE`).

:class:`SourceFreeAdaptation` trains a fitted model in place through the one engine (a
:class:`~graft.training.runner.PhaseRunner` phase) and returns what it did; :func:`graft.adapt`
loads the run and writes the adapted one. No source item is read: the run's weights, task and
preprocessing are all it uses. No source validation data means no source-risk guard; instead,
the kept epoch is the one of best label-free target score (information maximisation), and the
original weights are kept when no epoch beats their score.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from graft.adaptation.catalogue import SOURCE_FREE, create_objective
from graft.adaptation.component import target_training_loader
from graft.adaptation.guard import kept_score
from graft.adaptation.module import TARGET_MONITOR, AdaptationModule
from graft.adaptation.pseudo_labels import EpochPseudoLabels
from graft.adaptation.target import (
    TargetDomain,
    domain_features,
    label_free_scores,
    load_target_items,
)
from graft.data.transforms import InputDataset
from graft.errors import ConfigError
from graft.tasks.capabilities import SingleLabel
from graft.training.phase import Phase

log = logging.getLogger("graft")

#: Epochs of source-free training when none are given.
DEFAULT_EPOCHS = 3


@dataclass
class SourceFreeAdaptation:
    """SHOT-style adaptation of a fitted model (see the module docstring).

    Attributes:
        method: one of :data:`~graft.adaptation.catalogue.SOURCE_FREE` (default
            ``self-training``: SHOT's information maximisation plus 0.3 times its clustered
            pseudo-labels).
        epochs: passes over the target data.
        weight: the objective's weight (its scale against the optimiser's rate).
        seed: seeds the data order, augmentation and pseudo-labels.
        batch_size, num_workers, progress: as for a fit (None: the run's).
    """

    method: str = SOURCE_FREE[0]
    epochs: int = DEFAULT_EPOCHS
    weight: float = 1.0
    seed: int | None = None
    batch_size: int | None = None
    num_workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.method not in SOURCE_FREE:
            raise ConfigError(
                f"--adapt {self.method} needs the source data; without it use one of "
                f"{', '.join(SOURCE_FREE)}"
            )
        if not (isinstance(self.epochs, int) and self.epochs > 0):
            raise ConfigError(f"--epochs must be a positive integer, got {self.epochs!r}")
        if not self.weight > 0:
            raise ConfigError(f"--adapt-weight must be positive, got {self.weight}")

    def adapt(self, model: Any, target: Any, target_test: Any = None, column: str | None = None):
        """Adapt ``model`` (a fitted :class:`graft.GraftEstimator`) in place to the unlabelled
        ``target`` (a folder, a table with ``column``, or in-memory data); ``target_test``:
        labelled target data, evaluated at the end. Sets the model's ``metrics_``,
        ``history_`` and ``summary_`` to this adaptation's and returns the model."""
        start = time.perf_counter()
        task, config = model.fitted_task_, model.config_
        if not isinstance(task, SingleLabel):
            raise ConfigError(
                f"source-free adaptation reads class probabilities: a {task.kind} run cannot"
            )
        seed = config.seed if self.seed is None else self.seed
        batch = self.batch_size or config.batch_size
        items = load_target_items(target, model.backbone_.modality, column)
        test = None
        if target_test is not None:
            test = task.read_labelled(target_test, {"image_column": column, "text_column": column})
        domain = TargetDomain(items, str(getattr(target, "source", target)), test)
        before = self._scores(model, domain, seed, batch)
        rows, kept = self._train(model, domain, seed, batch, before["im"])
        after = self._scores(model, domain, seed, batch)
        model.metrics_ = self._metrics(model, domain, before, after, kept)
        model.history_ = rows
        model.summary_ = {
            "source_free": {"run": str(getattr(model, "run_dir_", "")), "kept": kept},
            "seconds": {"total": round(time.perf_counter() - start, 3)},
        }
        if model.strategy_ == "feature-extract":  # its backbone trained now: save it whole
            model.config_ = config.resolved(strategy="full")
            model.strategy_ = "full"
        return model

    def _train(self, model, domain: TargetDomain, seed: int, batch: int, im_before: float):
        """One phase through the engine; (history, ``"adapted"`` or ``"original"``)."""
        from graft.training.runner import ModuleFactory, PhaseRunner, Snapshot

        networks = {"backbone": model.backbone_, "head": model.head_}
        original = Snapshot(networks)
        phase = self._phase(model)
        module = self._module(model, phase, domain, batch)
        with tempfile.TemporaryDirectory(prefix="graft-adapt-") as scratch:
            runner = PhaseRunner(
                networks,
                ModuleFactory(model.fitted_task_, model.head_, model.backbone_),
                None,  # no source loaders: the phase gets its own
                self._engine(model.config_),
                seed,
                Path(scratch),
            )
            rows = runner.train(phase, self._loaders(model, domain, seed, batch), module)
        if kept_score(rows, TARGET_MONITOR) < im_before:
            original.restore()
            log.info("source-free adaptation dropped: no epoch beat the original target score")
            for row in rows:
                row["kept"] = False
            return rows, "original"
        return rows, "adapted"

    def _phase(self, model) -> Phase:
        """Every backbone group (only LoRA's adapters when the run has them), at the backbone
        rate of the run's ``full`` phase; the head stays frozen."""
        from graft.strategies.base import backbone_phase

        phase = backbone_phase(model.config_, model.backbone_, "source-free", self.epochs)
        return dataclasses.replace(
            phase,
            head_lr=0.0,
            monitor=TARGET_MONITOR,
            adapters_only=model.backbone_.adapter is not None,
        )

    def _module(self, model, phase: Phase, domain: TargetDomain, batch: int) -> AdaptationModule:
        import torch

        backbone, head, task = model.backbone_, model.head_, model.fitted_task_
        options = self._options(model)
        labelled = DataLoader(
            InputDataset(domain.items, np.arange(len(domain.items)), backbone.preprocessing),
            batch_size=batch * 2,
            **options,
        )
        pseudo_labels = EpochPseudoLabels(labelled) if "self-training" in self.method else None
        torch.manual_seed(model.config_.seed)
        objective = create_objective(self.method, backbone.feature_dim, head.num_classes)
        return AdaptationModule(
            head,
            phase,
            backbone,
            objective=objective,
            adapt_weight=self.weight,
            source_free=True,
            pseudo_labels=pseudo_labels,
            task=task,
            label_smoothing=model.config_.label_smoothing,
            weight_decay=model.config_.weight_decay,
        )

    def _loaders(self, model, domain: TargetDomain, seed: int, batch: int) -> tuple:
        """Training: seeded, augmented target batches of ``(inputs, indices)``; validation: the
        target sample (label-free scores) and the labelled target data when given."""
        from graft.adaptation.component import DomainAdaptation

        preprocessing, options = model.backbone_.preprocessing, self._options(model)
        train = target_training_loader(
            domain.items,
            preprocessing,
            options,
            batch,
            seed,
            len(domain.items),
            model.config_.augment,
        )
        validation = DomainAdaptation(domain, self.method, self.weight, False, seed, batch)
        return train, validation.target_validation(preprocessing, options)

    def _options(self, model) -> dict:
        from graft.training.sampling import loader_workers, worker_options

        collate = model.fitted_task_.collate(model.backbone_.preprocessing)
        workers = loader_workers(self.num_workers or model.config_.num_workers)
        return dict(collate_fn=collate, **worker_options(workers))

    def _engine(self, config):
        from graft.training.distributed import EngineOptions

        return EngineOptions(
            precision=config.precision,
            grad_clip=config.grad_clip,
            progress=self.progress,
            logger=config.logger,
        )

    def _scores(self, model, domain: TargetDomain, seed: int, batch: int) -> dict[str, float]:
        """The label-free scores of the model's predictions on the target sample."""
        sample = domain.sample(seed)
        features = domain_features(model.backbone_.eval(), sample, batch)
        return label_free_scores(model.head_, features)

    def _metrics(self, model, domain: TargetDomain, before: dict, after: dict, kept: str) -> dict:
        record = {
            "method": self.method,
            "source_free": True,
            "weight": self.weight,
            "target": domain.source,
            "target_items": len(domain.items),
            "kept": kept,
            "domain_gap": None,  # no source data to measure it against
            "label_free_before": before,
            "label_free": after,
        }
        metrics = {"adaptation": record}
        if domain.test is not None:
            task = model.fitted_task_
            metrics["target_test"] = task.metrics(model._outputs(domain.test), domain.test)
        return metrics
