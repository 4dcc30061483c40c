"""Unlabelled data of the same kind (``--unlabeled``): self-training with confident,
class-balanced pseudo-labels, kept only when it scores no lower than the labelled-only model.

The component of a fit that holds the unlabelled inputs (their labels, if any, are ignored) and
trains on them after the strategy's phases, when the backbone no longer changes:

1. the fitted backbone's features of the unlabelled inputs are computed once, through the
   feature cache: a plain view (FixMatch's *weak* view) and, for images, a *strong* one
   (RandAugment and random erasing, graft's ``strong`` preset);
2. for each of :data:`ROUNDS` rounds, the current head (the teacher) predicts the weak view,
   and :func:`balanced_pseudo_labels` keeps, of each class, its most
   confident predictions at or above :data:`THRESHOLD`, at most as many per class as the round
   allows (a share of ``|U| / C`` that grows round by round, the curriculum of Cascante-Bonilla
   et al., AAAI 2021), the same cap for every class so that a majority class cannot swallow
   the rest;
3. a new head (the student: the head's weights drawn afresh, seeded by the round) trains on
   the labelled examples and the pseudo-labelled ones, with noise (Noisy Student: Xie et al.,
   CVPR 2020): images through their strong view, so that the prediction of the strong view is
   trained towards the pseudo-label of the weak one (FixMatch's consistency: Sohn et al.,
   NeurIPS 2020, ``H(argmax q_weak, p_strong)``); texts through the head's dropout. The student
   is the next round's teacher.

Like the domain-adaptation guard, the fit keeps the semi-supervised head only when its
validation score (with few labels, its cross-validated score: :mod:`graft.fewshot.few_labels`)
is no lower than the labelled-only model's; ``metrics.json``'s ``semi_supervised`` says which
model was kept and why. Each round trains through the phase runner and graft's one engine.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from graft.adaptation.self_training import select_pseudo_labels
from graft.data import LabelledData, load_inputs
from graft.errors import ConfigError, DataError
from graft.fewshot.few_labels import LABELLED_ONLY, SEMI_SUPERVISED
from graft.tasks.capabilities import CachesFeatures, SingleLabel
from graft.training.phase import Phase
from graft.training.runner import Snapshot
from graft.training.sampling import EpochSampler

if TYPE_CHECKING:
    from graft.data import DataSplits
    from graft.features import FeatureCache
    from graft.training.runner import PhaseRunner

log = logging.getLogger("graft")

#: Rounds of self-training (teacher predicts, pseudo-labels chosen, a fresh student trains).
#: A fresh student each round, as Noisy Student does, rather than one that goes on from the
#: teacher's weights. The gain on sst2 (20 labelled sentences per class, 5,000 unlabelled) is
#: what ``bench/fewshot.py --cases semi-sst2`` measures; it is not recorded in bench/RESULTS.md
#: yet, so the number of rounds is a choice, not a measured optimum.
ROUNDS = 5
#: The confidence a prediction needs to become a pseudo-label.
THRESHOLD = 0.7
#: The share of ``|U| / C`` each class may contribute in the last round (round r of R allows
#: r/R of it): with a balanced unlabelled pool, the whole pool by the end.
FINAL_SHARE = 1.0
#: Each round trains the head for this many epochs of :data:`ROUND_BATCHES` batches (drawn
#: from seeded shuffles of the labelled and pseudo-labelled examples): 300 steps a round,
#: whether 40 examples or 5,000 take part.
ROUND_EPOCHS = 10
ROUND_BATCHES = 30


@dataclass
class SemiSupervised:
    """The unlabelled data of a fit and its self-training (see the module docstring).

    Attributes:
        items: the unlabelled inputs (image paths or texts).
        source: where they came from, for messages and the record.
        seed, batch_size, num_workers, lr: the fit's.
        rounds: what each round selected and trained (the record's ``rounds``).
        scores: the validation score of each arm, when there is validation data.
        trained: whether the semi-supervised head was trained (then :meth:`use` switches).
        kept: the arm the fit kept.
    """

    items: list[str]
    source: str
    modality: str
    seed: int
    batch_size: int
    lr: float
    num_workers: int | None = None
    rounds: list[dict] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    trained: bool = False
    kept: str = SEMI_SUPERVISED
    record: dict = field(default_factory=dict)
    _states: dict[str, Snapshot] = field(default_factory=dict)

    @classmethod
    def for_fit(cls, config: Any, unlabeled: Any, splits: DataSplits, columns: dict, task: Any):
        """The component of a fit of ``task`` with ``config`` given ``unlabeled`` data (None
        without); ``columns`` name a table's input column, as for the training data. Refused
        unless ``task`` has one class per input (:class:`~graft.tasks.capabilities.SingleLabel`)
        and its head trains on cached features."""
        if unlabeled is None:
            return None
        train = splits.train
        kind = getattr(train, "task", "several tasks")
        if not isinstance(task, SingleLabel):
            raise ConfigError(
                f"--unlabeled trains on pseudo-labels, one class per input; {train.source} "
                f"holds {kind} labels"
            )
        column = columns.get("text_column" if train.modality == "text" else "image_column")
        items, source = read_unlabeled(unlabeled, train.modality, column)
        return cls(
            items,
            source,
            train.modality,
            config.seed,
            config.batch_size,
            config.lr,
            config.num_workers,
        )

    # Training ----------------------------------------------------------------------------------

    def train(self, runner: PhaseRunner, cache: FeatureCache, val: Any = None) -> list[dict]:
        """Self-train the fitted head on the unlabelled data (the runner's backbone fixed);
        the history of its rounds. Both heads are kept for :meth:`decide` and :meth:`use`.
        ``val``: the whole validation split, which the two heads are compared on (the
        runner's loaders may validate each epoch on a sample of it,
        :func:`graft.training.schedule.epoch_validation`); None: the runner's."""
        task, networks = runner.modules.task, runner.networks
        if not isinstance(task, CachesFeatures):
            raise ConfigError(f"--unlabeled self-trains a head on cached features; not {task.kind}")
        features = self.features(runner, cache, val)
        head = networks["head"]
        self._states[LABELLED_ONLY] = Snapshot(networks)
        if features["val"] is not None:
            self.scores[LABELLED_ONLY] = _score(task, head, *features["val"])
        history = []
        for number in range(1, ROUNDS + 1):
            history += self._round(runner, number, features)
        self._states[SEMI_SUPERVISED] = Snapshot(networks)
        if features["val"] is not None:
            self.scores[SEMI_SUPERVISED] = _score(task, head, *features["val"])
        self.trained = True
        return history

    def features(self, runner: PhaseRunner, cache: FeatureCache, val: Any = None) -> dict:
        """The fitted backbone's cached features: labelled training examples (with their
        labels), the unlabelled data's weak and strong views (the same for texts), and the
        validation data (``val``, else the runner's; None without)."""
        loaders = runner.loaders
        backbone, labelled, workers = loaders.backbone, loaders.splits.train, loaders.workers
        unlabelled = LabelledData(self.items, None, [], backbone.modality, self.source)
        weak = cache.features(backbone, unlabelled, self.batch_size, workers)
        strong = weak
        if backbone.modality == "image":
            strong = cache.features(backbone, unlabelled, self.batch_size, workers, 1, "strong")
        val = loaders.splits.val if val is None else val
        return {
            "train": cache.features(backbone, labelled, self.batch_size, workers),
            "labels": torch.as_tensor(labelled.labels),
            "classes": len(labelled.classes),
            "weak": weak,
            "strong": strong,
            "val": None
            if val is None
            else (
                cache.features(backbone, val, self.batch_size, workers),
                torch.as_tensor(val.labels),
            ),
        }

    def _round(self, runner: PhaseRunner, number: int, features: dict) -> list[dict]:
        """One round: the teacher's balanced confident pseudo-labels of the weak view, then
        the student on the labelled examples and the strong view of the pseudo-labelled ones."""
        head, classes = runner.networks["head"], features["classes"]
        probabilities = torch.softmax(_logits(head, features["weak"]), dim=-1)
        cap = math.floor(FINAL_SHARE * number / ROUNDS * len(self.items) / classes)
        chosen = balanced_pseudo_labels(probabilities, cap)
        indices = torch.as_tensor(chosen.indices)
        x = torch.cat([features["train"], features["strong"][indices]])
        y = torch.cat([features["labels"], torch.as_tensor(chosen.labels)])
        self.rounds.append(
            {
                "round": number,
                "pseudo_labels": len(chosen),
                "per_class": chosen.class_counts().tolist(),
                "confident_per_class": chosen.confident.tolist(),
                "cap_per_class": cap,
            }
        )
        log.info("self-training round %d: %d pseudo-labels", number, len(chosen))
        torch.manual_seed(self.seed + number)  # the student: a new head
        for module in head.modules():
            if module is not head and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        phase = Phase(
            name=f"self_training_{number}",
            epochs=ROUND_EPOCHS,
            backbone_groups=0,
            head_lr=self.lr,
            keep_last=True,
        )
        loader = DataLoader(
            TensorDataset(x, y),
            batch_size=self.batch_size,
            sampler=EpochSampler(
                len(y), self.seed + number, length=ROUND_BATCHES * self.batch_size
            ),
            generator=torch.Generator().manual_seed(self.seed + number),
        )
        val = features["val"]
        val_loader = None if val is None else DataLoader(TensorDataset(*val), batch_size=512)
        return runner.train(phase, loaders=(loader, val_loader), module=runner.modules(phase))

    # The guard ---------------------------------------------------------------------------------

    def use(self, arm: str) -> None:
        """Load the head of ``arm`` (labelled-only or semi-supervised)."""
        self._states[arm].restore()

    def decide(self, cross_validation: dict | None = None) -> dict:
        """Keep the semi-supervised head only if it scores no lower than the labelled-only
        one: by cross-validation when given (few labels), else by validation score; with
        neither, unguarded. Loads the kept head; ``metrics.json``'s ``semi_supervised``."""
        if cross_validation is not None:
            arms = cross_validation["arms"]
            scores = {arm: arms[arm]["accuracy"]["mean"] for arm in arms}
            basis = f"{cross_validation['folds']}-fold cross-validated accuracy"
        elif self.scores:
            scores, basis = dict(self.scores), "validation score"
        else:
            scores, basis = {}, None
        if basis is None:
            self.kept = SEMI_SUPERVISED
            reason = "kept the semi-supervised model unguarded: no validation data and no estimate"
        else:
            ours, theirs = scores[SEMI_SUPERVISED], scores[LABELLED_ONLY]
            self.kept = SEMI_SUPERVISED if ours >= theirs else LABELLED_ONLY
            verb = "no lower than" if self.kept == SEMI_SUPERVISED else "lower than"
            reason = (
                f"kept the {self.kept} model: the semi-supervised {basis} {ours:.4f} is {verb} "
                f"the labelled-only {theirs:.4f}"
            )
        self.use(self.kept)
        log.info(reason)
        self.record = {
            "kept": self.kept,
            "reason": reason,
            "basis": basis,
            "scores": scores,
            "unlabeled": self.source,
            "unlabeled_items": len(self.items),
            "method": "self-training, class-balanced pseudo-labels"
            + (", weak-to-strong views" if self.modality == "image" else ", dropout noise"),
            "threshold": THRESHOLD,
            "rounds": self.rounds,
        }
        return self.record


def read_unlabeled(unlabeled: Any, modality: str, column: str | None) -> tuple[list[str], str]:
    """The items of ``--unlabeled`` data (labels ignored) and its name: a folder of images or
    texts (class subfolders, if any, are ignored), a table's input column, or in-memory data."""
    if isinstance(unlabeled, LabelledData):
        if unlabeled.modality != modality:
            raise DataError(
                f"--unlabeled {unlabeled.source} holds {unlabeled.modality} data, the training "
                f"data {modality}"
            )
        items, source = list(unlabeled.items), unlabeled.source
    else:
        source = str(unlabeled)
        if isinstance(unlabeled, str | os.PathLike) and not os.path.exists(unlabeled):
            raise DataError(f"--unlabeled {source}: no such file or folder")
        try:
            items = load_inputs([unlabeled], modality, column=column)
        except DataError as error:
            raise DataError(f"--unlabeled {source}: {error}") from None
    if len(items) < 2:
        raise DataError(f"--unlabeled {source}: needs at least 2 items, found {len(items)}")
    return items, source


@dataclass(frozen=True)
class PseudoLabels:
    """The unlabelled rows a round keeps (ascending), their predicted classes, and how many
    rows of each class were confident before the cap (``confident``, ``[C]``)."""

    indices: np.ndarray
    labels: np.ndarray
    confident: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def class_counts(self) -> np.ndarray:
        """Kept rows per class (``[C]``)."""
        return np.bincount(self.labels, minlength=len(self.confident))


def balanced_pseudo_labels(probabilities: torch.Tensor, cap: int) -> PseudoLabels:
    """The pseudo-labels of a round: of each class, its most confident predictions at or
    above :data:`THRESHOLD`, as many for every class (at most ``cap``, and no more than the
    class with the fewest confident predictions has: none while some class has none). The
    selection is domain adaptation's
    (:func:`graft.adaptation.self_training.select_pseudo_labels`) with that equal cap."""
    confidence, predicted = probabilities.max(dim=1)
    confident = torch.bincount(predicted[confidence >= THRESHOLD], minlength=probabilities.shape[1])
    fewest = min(cap, int(confident.min()))
    if fewest < 1:
        empty = np.zeros(0, dtype=np.int64)
        return PseudoLabels(empty, empty, confident.numpy())
    indices, labels = select_pseudo_labels(probabilities, THRESHOLD, per_class=fewest)
    return PseudoLabels(indices.numpy(), labels.numpy(), confident.numpy())


@torch.inference_mode()
def _logits(head: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    head.eval()
    return torch.cat([head(chunk) for chunk in features.split(4096)])


def _score(task: Any, head: torch.nn.Module, features: torch.Tensor, labels: torch.Tensor):
    """The task's validation score (``val_score``) of ``head`` on cached features."""
    _, metric = task.validation_metrics()
    return float(metric(_logits(head, features), task.prepare_targets(labels)))
