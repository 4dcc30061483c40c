"""Domain adaptation as one component of a fit: everything it adds, handed to the phase runner.

A fit with unlabelled target data (``--target-unlabeled``) builds a :class:`DomainAdaptation`.
It holds the target domain (:class:`~graft.adaptation.target.TargetDomain`) and measures the
gap between the domains before and after training (``--adapt auto`` chooses its method from the
measurements before: :mod:`graft.adaptation.auto`). When an ``--adapt`` method is chosen, the
phase runner (:class:`graft.training.runner.PhaseRunner`) hands it the phases that train the
backbone: it trains each with source and target batches in step and the method's objective
(:mod:`graft.adaptation.catalogue`, :class:`~graft.adaptation.module.AdaptationModule`), keeps
the epoch of best label-free target score, and under the source-risk guard
(:mod:`graft.adaptation.guard`) also trains the phase source-only from the same weights and
keeps the adapted weights only when they score no worse on the source validation data. No
adaptation code lives in the estimator.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from graft.adaptation.guard import (
    SOURCE_ONLY_SUFFIX,
    guard_adaptation,
    kept_score,
    noise_tolerance,
)
from graft.adaptation.module import TARGET_MONITOR, AdaptationModule
from graft.adaptation.target import (
    TARGET_SAMPLE,
    TargetDomain,
    domain_features,
    domain_gap,
    label_free_scores,
    load_target_items,
    sample_indices,
    sample_items,
)
from graft.data import LabelledData
from graft.data.transforms import InputDataset
from graft.errors import ConfigError, DataError
from graft.tasks.capabilities import SingleLabel
from graft.training.runner import Snapshot
from graft.training.sampling import EpochSampler

if TYPE_CHECKING:
    from collections.abc import Callable

    from graft.backbones.base import Backbone
    from graft.data import DataSplits
    from graft.features import FeatureCache
    from graft.training.loaders import FitLoaders
    from graft.training.phase import Phase
    from graft.training.runner import PhaseRunner

log = logging.getLogger("graft")


@dataclass
class DomainAdaptation:
    """The target domain of a fit and how the fit adapts to it (see the module docstring).

    Attributes:
        domain: the unlabelled target items (and labelled target data to report on).
        method: a method of :data:`graft.adaptation.catalogue.OBJECTIVES`, ``auto`` (until
            :meth:`measure_before` chooses one), or ``none``: train source-only and only
            measure.
        weight: of the alignment loss against the task loss.
        guard: the source-risk guard is on.
        seed, batch_size, num_workers: the fit's.
        decisions: the guard's decision for each adapted phase.
        gap_before: the proxy A-distance on the pretrained backbone's features.
        auto: what ``--adapt auto`` measured, chose and why (None without ``auto``).
    """

    domain: TargetDomain
    method: str
    weight: float
    guard: bool
    seed: int
    batch_size: int
    num_workers: int = 0
    decisions: list[dict] = field(default_factory=list)
    gap_before: float | None = None
    auto: dict | None = None

    @classmethod
    def for_fit(
        cls, config: Any, target: Any, target_test: Any, splits: DataSplits, columns: dict
    ) -> DomainAdaptation | None:
        """The adaptation of a fit with ``config``, or None without target data; ``columns``
        name a table's input (and label) columns, as for the training data."""
        from graft.training.sampling import loader_workers

        domain = target_domain(config, target, target_test, splits, columns)
        if domain is None:
            return None
        check_method(config.adapt, splits.train.task)
        return cls(
            domain,
            config.adapt,
            config.adapt_weight,
            config.adapt_guard,
            config.seed,
            config.batch_size,
            loader_workers(config.num_workers),
        )

    # Measurements ------------------------------------------------------------------------------

    def sampled_features(
        self, splits: DataSplits, backbone: Backbone, cache: FeatureCache | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``backbone``'s features of the seeded samples of source training and target items
        that the domain gap compares, before training and after."""
        seed, batch, workers = self.seed, self.batch_size, self.num_workers
        source = sample_items(splits.train.items, TARGET_SAMPLE, seed)
        return (
            domain_features(backbone, source, batch, workers, cache),
            domain_features(backbone, self.domain.sample(seed), batch, workers, cache),
        )

    def measure_before(self, splits: DataSplits, backbone: Backbone, cache: FeatureCache) -> None:
        """The proxy A-distance between the domains on the pretrained backbone's features; with
        ``auto``, the method it chooses from them (:mod:`graft.adaptation.auto`)."""
        source, target = self.sampled_features(splits, backbone, cache)
        self.gap_before = domain_gap(source, target, self.seed)
        if self.method == "auto":
            self.choose(splits, source, target)

    def choose(self, splits: DataSplits, source: torch.Tensor, target: torch.Tensor) -> None:
        """Resolve ``auto`` to a method from the label-free measurements."""
        from graft.adaptation.auto import choose_method, measure

        train = splits.train
        labels = np.asarray(train.labels)[sample_indices(len(train), TARGET_SAMPLE, self.seed)]
        measured = measure(
            source, labels, target, self.gap_before, train.modality, train.task, len(train.classes)
        )
        self.method, reason = choose_method(measured)
        self.auto = {"chosen": self.method, "reason": reason, **measured.to_dict()}
        log.info("--adapt auto chose %s: %s", self.method, reason)

    def measure_after(
        self,
        splits: DataSplits,
        backbone: Backbone,
        head: torch.nn.Module,
        cache: FeatureCache | None,
        evaluate: Callable[[LabelledData], dict],
        timings: dict[str, float],
    ) -> dict[str, dict]:
        """``metrics.json``'s ``adaptation`` (the domain gap after training, the label-free
        scores of the target predictions, the guard's decisions) and, with labelled target
        data, ``target_test`` (``evaluate``'s metrics of it)."""
        start = time.perf_counter()
        source_features, target_features = self.sampled_features(splits, backbone, cache)
        record = {
            "method": self.method,
            "weight": self.weight,
            "target": self.domain.source,
            "target_items": len(self.domain.items),
            "domain_gap": {
                "measure": "proxy A-distance",
                "before": self.gap_before,
                "after": domain_gap(source_features, target_features, self.seed),
            },
            "label_free": label_free_scores(head, target_features),
        }
        if self.auto is not None:
            record["auto"] = self.auto
        if self.decisions:
            record["guard"] = self.decisions
        metrics = {"adaptation": record}
        if self.domain.test is not None:
            metrics["target_test"] = evaluate(self.domain.test)
        timings["target"] = time.perf_counter() - start
        return metrics

    # Training ----------------------------------------------------------------------------------

    def applies(self, phase: Phase) -> bool:
        """Whether ``phase`` adapts: it trains the backbone and a method is chosen."""
        return phase.train_backbone and self.method != "none"

    def train_phase(self, runner: PhaseRunner, phase: Phase) -> tuple[list[dict], bool]:
        """Train ``phase`` adapted (guarded: also source-only, keeping the better); its history
        and whether the adapted weights were kept."""
        if not self.guard:
            return self._adapted(runner, phase), True
        start = Snapshot(runner.networks)
        source_phase = dataclasses.replace(phase, name=f"{phase.name}{SOURCE_ONLY_SUFFIX}")
        source_rows = runner.train(source_phase)
        source_only = Snapshot(runner.networks)
        start.restore()
        adapted_rows = self._adapted(runner, phase)
        decision = guard_adaptation(source_rows, adapted_rows, self.tolerance(runner, source_rows))
        if decision.kept == "source-only":
            source_only.restore()
            for row in adapted_rows:  # the phase's kept epoch is the source-only one
                row["kept"] = False
        else:
            for row in source_rows:
                row["kept"] = False
        log.info("phase %s: %s", phase.name, decision.reason)
        self.decisions.append({"phase": phase.name, **decision.to_dict()})
        return source_rows + adapted_rows, decision.kept == "adapted"

    def tolerance(self, runner: PhaseRunner, source_rows: list[dict]) -> float:
        """What the guard lets the adapted model lose on the source validation data: the
        sampling noise of the source-only accuracy (:func:`noise_tolerance`), 0 for a score that
        is not an accuracy."""
        if not isinstance(runner.modules.task, SingleLabel):
            return 0.0
        return noise_tolerance(kept_score(source_rows), len(runner.loaders.splits.val))

    def _adapted(self, runner: PhaseRunner, phase: Phase) -> list[dict]:
        """One adapted training of ``phase``, keeping its epoch of best label-free score."""
        phase = dataclasses.replace(phase, monitor=TARGET_MONITOR)
        loaders = self.loaders(runner.loaders)
        return runner.train(phase, loaders=loaders, module=self.module(runner, phase))

    def module(self, runner: PhaseRunner, phase: Phase) -> AdaptationModule:
        """The phase's module: the task loss plus the method's objective (mixup is left out: it
        would mix the source batch that the objective compares with the target's)."""
        from graft.adaptation.catalogue import create_objective

        factory = runner.modules
        phase = factory.prepared(phase)
        torch.manual_seed(self.seed)  # the discriminator's initialisation
        classes = getattr(factory.head, "num_classes", 1)
        objective = create_objective(self.method, factory.backbone.feature_dim, classes)
        return AdaptationModule(
            factory.head,
            phase,
            factory.backbone,
            objective=objective,
            adapt_weight=self.weight,
            task=factory.task,
            **factory.options,
        )

    def loaders(self, loaders: FitLoaders):
        """Training: source and target batches in step (the target's seeded shuffles drawn to
        the source's length); validation: source, unlabelled target sample, labelled target
        (when given), in :mod:`graft.adaptation.module`'s order."""
        from lightning.pytorch.utilities import CombinedLoader

        # random source batches, as the target's: the alignment losses compare the two
        source_train, source_val = loaders.inputs(own_batches=False)
        preprocessing, options = loaders.backbone.preprocessing, loaders.options()
        target_train = target_training_loader(
            self.domain.items,
            preprocessing,
            options,
            self.batch_size,
            self.seed,
            len(loaders.splits.train),
            loaders.augment,
        )
        val = [source_val, *self.target_validation(preprocessing, options)]
        train = CombinedLoader({"source": source_train, "target": target_train}, mode="min_size")
        return train, val

    def target_validation(self, preprocessing: Any, options: dict) -> list[DataLoader]:
        """The validation loaders of the target: the unlabelled sample (the label-free scores)
        and, when given, the labelled target data (reported only)."""
        evaluate = dict(batch_size=self.batch_size * 2, **options)
        sample = InputDataset(self.domain.sample(self.seed), None, preprocessing)
        val = [DataLoader(sample, **evaluate)]
        if self.domain.test is not None:
            test = InputDataset(self.domain.test.items, self.domain.test.labels, preprocessing)
            val.append(DataLoader(test, **evaluate))
        return val


def target_training_loader(
    items: list[str],
    preprocessing: Any,
    options: dict,
    batch_size: int,
    seed: int,
    length: int,
    augment: str,
) -> DataLoader:
    """Batches of ``(inputs, indices)`` of the target ``items`` (augmented as the source's),
    ``length`` draws an epoch in a seeded order; the indices let pseudo-labels be looked up."""
    dataset = InputDataset(items, np.arange(len(items)), preprocessing, train=True, augment=augment)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(items), seed + 1, length=length),
        generator=torch.Generator().manual_seed(seed + 1),
        **options,
    )


def check_method(method: str, task: str) -> None:
    """Refuse a method that reads class probabilities for a task without them (ConfigError)."""
    from graft.adaptation.catalogue import FEATURE_ONLY

    if method not in (*FEATURE_ONLY, "none", "auto") and task != "multiclass":
        raise ConfigError(
            f"--adapt {method} reads the class probabilities of a single-label classifier; "
            f"this data is {task}: use {', '.join(FEATURE_ONLY)} or auto"
        )


def target_domain(
    config: Any, target: Any, target_test: Any, splits: DataSplits, columns: dict
) -> TargetDomain | None:
    """The target domain of a fit, or None; ``--adapt`` needs one (see
    :meth:`DomainAdaptation.for_fit`)."""
    if target is None:
        if config.adapt != "none":
            raise ConfigError(
                f"--adapt {config.adapt} adapts to unlabelled target data: "
                "give it with --target-unlabeled TARGET"
            )
        if target_test is not None:
            raise ConfigError("--target-test needs --target-unlabeled TARGET too")
        return None
    from graft.data.sources import read_one

    train = splits.train
    column = columns.get("text_column" if train.modality == "text" else "image_column")
    items = load_target_items(target, train.modality, column)
    test = None
    if target_test is not None:
        test = read_one(target_test, columns, train.task, train.label_delimiter)
        if test.modality != train.modality:
            raise DataError(f"--target-test {test.source} holds {test.modality} data")
        test = test.relabel(train.classes)
    source = target.source if isinstance(target, LabelledData) else str(target)
    return TargetDomain(items, source, test)
