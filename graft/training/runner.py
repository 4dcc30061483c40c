"""The phase runner: from a strategy's plan of phases to trained weights, in one place.

:class:`PhaseRunner` trains the phases one after the other through the engine
(:func:`graft.training.engine.run_phase`: checkpoints, resume, precision, devices), each with a
fresh LightningModule from :class:`ModuleFactory` and the loaders of
:class:`~graft.training.loaders.FitLoaders` (cached features for a head-only phase, raw inputs
when the backbone trains). It keeps the weights of the phase with the best validation score
(:class:`BestPhase`), so a fit never ends worse than a model it already had. A domain
adaptation (:class:`graft.adaptation.component.DomainAdaptation`), when handed one, trains the
phases that move the backbone in its own way (adapted, and guarded).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

from graft.tasks.capabilities import CachesFeatures
from graft.training.budget import OutOfTime, TimeBudget
from graft.training.distributed import EngineOptions, is_global_zero
from graft.training.engine import run_phase, training_callbacks
from graft.training.phase import Phase

if TYPE_CHECKING:
    from graft.training.loaders import FitLoaders
    from graft.training.module import TransferModule

log = logging.getLogger("graft")

#: Fewer validation examples than this cannot choose a head epoch: on 8 and 64 sst2 reviews
#: per class with minilm, keeping the epoch of lowest loss on the 4 or 26 held-out reviews
#: kept a head trained for 1 to 9 epochs (test accuracy 0.52-0.71), where the last of its 30
#: epochs reached 0.61-0.75 (bench/RESULTS.md, graft against its peers).
MIN_VAL_TO_CHOOSE_EPOCH = 50
#: The name :class:`BestPhase` gives the untrained model of a guarded fit.
PRETRAINED = "pretrained"


@dataclass
class ModuleFactory:
    """Builds the LightningModule of a phase: a fresh one (hence a fresh optimiser) each time.

    Attributes:
        task: the fitted task, whose training module it is (:meth:`Task.training_module`).
        head, backbone: the networks; the backbone goes in only for phases that train it.
        options: ``label_smoothing``, ``weight_decay`` and ``class_weights``.
        mixup: mixup/cutmix for phases that train the backbone (None: none).
        from_scratch: the backbone has random weights: its BatchNorm layers learn their
            statistics (a pretrained one keeps them, unless it ``adapts_batchnorm``).
    """

    task: Any
    head: nn.Module
    backbone: nn.Module
    options: dict[str, Any] = field(default_factory=dict)
    mixup: Callable | None = None
    from_scratch: bool = False

    def prepared(self, phase: Phase) -> Phase:
        """``phase`` as this backbone trains it."""
        adapts = getattr(self.backbone, "adapts_batchnorm", False)
        adapts = adapts and phase.train_backbone and not phase.adapters_only
        if self.from_scratch or adapts:  # no pretrained statistics to keep, or none that fit
            return dataclasses.replace(phase, batchnorm_statistics=True)
        return phase

    def __call__(self, phase: Phase) -> TransferModule:
        phase = self.prepared(phase)
        through = phase.train_backbone or not isinstance(self.task, CachesFeatures)
        backbone = self.backbone if through else None
        mixup = self.mixup if phase.train_backbone else None
        return self.task.training_module(self.head, phase, backbone, mixup=mixup, **self.options)


class PhaseAdapter(Protocol):
    """What the runner asks of a domain adaptation (:mod:`graft.adaptation.component`)."""

    def applies(self, phase: Phase) -> bool: ...

    def train_phase(self, runner: PhaseRunner, phase: Phase) -> tuple[list[dict], bool]: ...


class PhaseTrainer(Protocol):
    """Trains the phases of one kind other than ``transfer`` (``phase.kind``), as a strategy
    plans them (:meth:`graft.strategies.base.Strategy.trainers`: the contrastive phase of
    :mod:`graft.fewshot.contrastive`, a LightningModule of its own on batches of its own). It
    trains through :meth:`PhaseRunner.train` and returns the phase's history and whether its
    weights are kept whatever its score."""

    def train_phase(self, runner: PhaseRunner, phase: Phase) -> tuple[list[dict], bool]: ...


@dataclass
class PhaseRunner:
    """Trains a plan of phases and keeps the best one (see the module docstring).

    Attributes:
        networks: what training changes (backbone, head, a task's learned loss weights).
        modules: builds each phase's LightningModule.
        loaders: builds each phase's data loaders (None: each phase is handed its own).
        engine: precision, devices and what the Trainer shows.
        seed: seeds each phase's training.
        work_dir: where checkpoints and logs go (the run directory, or a temporary folder).
        resume: finished phases are loaded and an interrupted one continues.
        timings: per-phase seconds are added here.
        trainers: the trainers of phase kinds other than ``transfer``, by kind.
        budget: the fit's time limit (:mod:`graft.training.budget`): it may skip a later phase,
            cut its epochs or stop it early; a phase abandoned for time leaves the weights the
            fit had before it.
        epoch_estimate: an optimistic guess of a phase's epoch seconds (0: unknown), by which
            the budget skips a phase before it starts.
    """

    networks: dict[str, nn.Module]
    modules: ModuleFactory
    loaders: FitLoaders
    engine: EngineOptions
    seed: int
    work_dir: Path
    resume: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    epoch_choice: str | None = None
    trainers: dict[str, PhaseTrainer] = field(default_factory=dict)
    budget: TimeBudget | None = None
    epoch_estimate: Callable[[Phase], float] = lambda phase: 0.0

    def __post_init__(self) -> None:
        self.best = BestPhase(self.networks)

    def run(self, phases: list[Phase], adaptation: PhaseAdapter | None = None) -> list[dict]:
        """Train ``phases`` in order; the per-epoch history of all of them."""
        history = []
        for index, phase in enumerate(phases):
            start = time.perf_counter()
            if self.budget is not None:
                later = phases[index + 1 :]
                admitted = self.budget.admits(
                    phase.name,
                    phase.epochs,
                    (index, len(phases)),
                    self.epoch_estimate(phase),
                    lambda later=later: sum(self.epoch_estimate(p) for p in later),
                    sum(p.epochs for p in later),
                )
                if not admitted:
                    continue
            if phase.kind in self.trainers:
                rows, keep = self.trainers[phase.kind].train_phase(self, phase)
            elif adaptation is not None and adaptation.applies(phase):
                rows, keep = adaptation.train_phase(self, phase)
            else:
                rows, keep = self.train(phase), False
            history += rows
            if self.budget is not None:
                self.budget.finish_phase(len({row.get("epoch") for row in rows}))
            if rows or self.budget is None:
                self.best.update(phase.name, rows, keep=keep)
            else:  # abandoned for time: back to the weights before it
                self.best.rollback()
            self.timings[f"phase_{phase.name}"] = time.perf_counter() - start
        return history

    def train(
        self,
        phase: Phase,
        loaders: tuple | None = None,
        module: TransferModule | None = None,
    ) -> list[dict]:
        """Train one phase; its history. ``loaders`` and ``module`` replace the usual ones (an
        adapted phase's)."""
        own = self.loaders is None  # every phase brings its loaders (source-free adaptation)
        val = None if own else self.loaders.splits.val
        if not own and val is None and not phase.keep_last:  # few labels: every example trains
            phase = dataclasses.replace(phase, keep_last=True)
            self.epoch_choice = (
                "no validation data (few labels: every example trains): each phase trains all "
                "its epochs and keeps the last"
            )
        elif val is not None and not phase.train_backbone and len(val) < MIN_VAL_TO_CHOOSE_EPOCH:
            phase = dataclasses.replace(phase, keep_last=True)
            self.epoch_choice = (
                f"the {phase.name} phase kept its last epoch: {len(self.loaders.splits.val)} "
                f"validation examples are too few to choose one by (fewer than "
                f"{MIN_VAL_TO_CHOOSE_EPOCH})"
            )
            log.info(self.epoch_choice)
        if loaders is None:
            loaders = self.loaders.inputs() if phase.train_backbone else self.loaders.head_only()
        module = module or self.modules(phase)
        trained = module.trained_parameters()
        log.info("phase %s: training %s parameters", phase.name, f"{trained:,}")
        keeping_time = self.budget.callback(*loaders) if self.budget is not None else None
        try:
            with training_callbacks(*([keeping_time] if keeping_time is not None else [])):
                rows = run_phase(
                    module,
                    *loaders,
                    _phase_work_dir(self.work_dir, phase),
                    self.seed,
                    self.engine,
                    self.resume,
                )
        except OutOfTime as reason:
            self.budget.skip(str(reason))
            module.cpu().eval()
            return []
        for row in rows:
            row["trained_parameters"] = trained
        return rows


class BestPhase:
    """Keeps the weights of the phase with the best validation score (``val_score``: accuracy,
    micro-F1 or R² by task).

    A later phase that ends worse than an earlier one (fine-tuning a backbone on too little
    data can) is rolled back, so a fit never returns a model worse than one it already had.
    """

    def __init__(self, networks: dict[str, nn.Module]):
        self.networks = networks
        self.accuracy = -math.inf
        self.scores: dict[str, float] = {}
        self.name: str | None = None
        self.state: dict | None = None
        self.last_was_best = True

    def update(self, name: str, rows: list[dict], keep: bool = False) -> None:
        """Record a finished phase; ``keep`` keeps it whatever its score."""
        kept = next((row for row in rows if row.get("kept")), {})
        accuracy = kept.get("val_score", -math.inf)
        beats = accuracy > self.accuracy if self.name == PRETRAINED else accuracy >= self.accuracy
        self.last_was_best = keep or beats
        if self.last_was_best:
            self.accuracy, self.name = accuracy, name
            self.scores = {k: kept[k] for k in ("val_score", "val_acc") if k in kept}
            self.state = {
                key: {k: v.detach().clone() for k, v in net.state_dict().items()}
                for key, net in self.networks.items()
            }

    def rollback(self) -> None:
        """Load the best phase's weights (those the fit had before a phase it abandoned)."""
        if self.state is not None:
            for key, net in self.networks.items():
                net.load_state_dict(self.state[key])
        self.last_was_best = True

    def guard(self, score: float) -> None:
        """Start from the untrained model, ``score`` on validation (a kind that
        :class:`~graft.tasks.capabilities.GuardsPretrained`): a phase is kept only if it scores
        higher."""
        self.update(PRETRAINED, [{"val_score": score, "kept": True}])

    def restore(self) -> dict:
        """Load the best phase's weights if the last phase was worse; say which phase was kept."""
        if not self.last_was_best and self.state is not None:
            for key, net in self.networks.items():
                net.load_state_dict(self.state[key])
        if not self.last_was_best and self.name == PRETRAINED:
            log.warning(
                "no phase beat the pretrained model on validation (score %.4f): its weights "
                "are kept",
                self.accuracy,
            )
        elif not self.last_was_best and self.state is not None:
            log.info(
                "kept the %s phase (validation score %.4f): later phases did not improve it",
                self.name,
                self.accuracy,
            )
        return {"phase": self.name, **{k: round(v, 6) for k, v in self.scores.items()}}


class Snapshot:
    """The weights and train/eval modes of networks, to start a second training from exactly
    where the first one started (Lightning keeps each submodule's mode as it finds it)."""

    def __init__(self, networks: dict[str, nn.Module]):
        self.networks = networks
        self.states = {
            name: {key: value.detach().clone() for key, value in net.state_dict().items()}
            for name, net in networks.items()
        }
        self.modes = {
            name: [module.training for module in net.modules()] for name, net in networks.items()
        }

    def restore(self) -> None:
        for name, net in self.networks.items():
            net.load_state_dict(self.states[name])
            for module, training in zip(net.modules(), self.modes[name], strict=True):
                module.train(training)


def _phase_work_dir(work_dir: Path, phase: Phase) -> Path:
    """Where a phase checkpoints: the run directory, except for the extra processes of a
    distributed fit in a phase that is not distributed and that the first process has not
    finished yet (they train it alike, in a folder of their own)."""
    if is_global_zero() or phase.train_backbone:
        return work_dir
    if (work_dir / "checkpoints" / phase.name / "done.json").is_file():
        return work_dir
    return Path(tempfile.mkdtemp(prefix="graft-rank-"))
