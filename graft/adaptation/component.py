"""Domain adaptation as one component of a fit: everything it adds, handed to the phase runner.

A fit with unlabelled target data (``--target-unlabeled``) builds a :class:`DomainAdaptation`.
It holds the target domain (:class:`~graft.adaptation.target.TargetDomain`) and measures the
gap between the domains before and after training. When an ``--adapt`` method is chosen, the
phase runner (:class:`graft.training.runner.PhaseRunner`) hands it the phases that train the
backbone: it trains each with source and target batches in step and the alignment loss
(:class:`~graft.adaptation.module.AdaptationModule`), keeps the epoch of best label-free target
score, and under the source-risk guard (:mod:`graft.adaptation.guard`) also trains the phase
source-only from the same weights and keeps the adapted weights only when they score no worse
on the source validation data. No adaptation code lives in the estimator.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from graft.adaptation.guard import SOURCE_ONLY_SUFFIX, guard_adaptation
from graft.adaptation.module import TARGET_MONITOR, AdaptationModule
from graft.adaptation.target import (
    TARGET_SAMPLE,
    TargetDomain,
    domain_features,
    domain_gap,
    label_free_scores,
    load_target_items,
    sample_items,
)
from graft.data import LabelledData
from graft.data.transforms import InputDataset
from graft.errors import ConfigError, DataError
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
        method: ``dann``, ``coral``, ``mmd`` (:data:`graft.adaptation.ADAPTATIONS`), or
            ``none``: train source-only and only measure.
        weight: of the alignment loss against the task loss.
        guard: the source-risk guard is on.
        seed, batch_size, num_workers: the fit's.
        decisions: the guard's decision for each adapted phase.
        gap_before: the proxy A-distance on the pretrained backbone's features.
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
        """The proxy A-distance between the domains on the pretrained backbone's features."""
        self.gap_before = domain_gap(*self.sampled_features(splits, backbone, cache), self.seed)

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
        decision = guard_adaptation(source_rows, adapted_rows)
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

    def _adapted(self, runner: PhaseRunner, phase: Phase) -> list[dict]:
        """One adapted training of ``phase``, keeping its epoch of best label-free score."""
        phase = dataclasses.replace(phase, monitor=TARGET_MONITOR)
        loaders = self.loaders(runner.loaders)
        return runner.train(phase, loaders=loaders, module=self.module(runner, phase))

    def module(self, runner: PhaseRunner, phase: Phase) -> AdaptationModule:
        """The phase's module: the task loss plus the alignment loss (mixup is left out: it
        would mix the source batch that the alignment compares with the target's)."""
        from graft.adaptation import create_adaptation

        factory = runner.modules
        phase = factory.prepared(phase)
        torch.manual_seed(self.seed)  # the discriminator's initialisation
        adaptation = create_adaptation(self.method, factory.backbone.feature_dim)
        return AdaptationModule(
            factory.head,
            phase,
            factory.backbone,
            adaptation=adaptation,
            adapt_weight=self.weight,
            task=factory.task,
            **factory.options,
        )

    def loaders(self, loaders: FitLoaders):
        """Training: source and target batches in step (the target's seeded shuffles drawn to
        the source's length); validation: source, unlabelled target sample, labelled target
        (when given), in :mod:`graft.adaptation.module`'s order."""
        from lightning.pytorch.utilities import CombinedLoader

        source_train, source_val = loaders.inputs()
        preprocessing, options = loaders.backbone.preprocessing, loaders.options()
        items = self.domain.items
        target_train = DataLoader(
            InputDataset(items, None, preprocessing, train=True, augment=loaders.augment),
            batch_size=self.batch_size,
            sampler=EpochSampler(len(items), self.seed + 1, length=len(loaders.splits.train)),
            generator=torch.Generator().manual_seed(self.seed + 1),
            **options,
        )
        evaluate = dict(batch_size=self.batch_size * 2, **options)
        sample = InputDataset(self.domain.sample(self.seed), None, preprocessing)
        val = [source_val, DataLoader(sample, **evaluate)]
        if self.domain.test is not None:
            test = InputDataset(self.domain.test.items, self.domain.test.labels, preprocessing)
            val.append(DataLoader(test, **evaluate))
        train = CombinedLoader({"source": source_train, "target": target_train}, mode="min_size")
        return train, val


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
    from graft.tasks.label_column import read_one

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
