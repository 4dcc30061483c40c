"""The task protocol: the core that every kind of task implements.

A *task* is what the new head learns on the backbone's features: one class per input
(:mod:`graft.tasks.classification.multiclass`), any number of labels, a number, several of
these at once (:mod:`graft.tasks.classification`), objects in images
(:mod:`graft.tasks.detection`), a class per pixel (:mod:`graft.tasks.segmentation`), a tag per
word (:mod:`graft.tasks.tagging`). The estimator, the training module, the run directory, the
command line, export, serving and the report go through :class:`Task` and never ask which
kind they hold. Its core, which every kind implements (25 methods):

- **data**: how the kind reads and splits its labelled data (:meth:`Task.read_splits`,
  :meth:`Task.split`, :meth:`Task.check_splits`, :meth:`Task.read_labelled`,
  :meth:`Task.relabel`), what it learns from the training labels
  (:meth:`Task.from_training_data`), which options it refuses and which defaults it fills in
  (:meth:`Task.check_options`, :meth:`Task.defaults`);
- **model and training**: its head on the backbone (:meth:`Task.new_head`) and the Lightning
  module that trains it (:meth:`Task.training_module`); its datasets and batches
  (:meth:`Task.items_of`, :meth:`Task.dataset`, :meth:`Task.collate`,
  :meth:`Task.read_inputs`) and its outputs (:meth:`Task.infer`);
- **answers**: outputs turned into predictions (:meth:`Task.answers`,
  :meth:`Task.probabilities`) and the records ``graft predict`` prints;
- **metrics**: its metrics, its headline figure (:attr:`Task.headline`, :meth:`Task.score`),
  its label space in words, the tables the command line prints;
- **record**: how it writes itself into a run and reads itself back.

What only some kinds have is a small separate protocol of :mod:`graft.tasks.capabilities`,
which a kind lists among its bases and the engine asks for by capability, doing its default
otherwise: data told by its content, a backbone of its own, the loss and score the engine's
training module asks for, phases planned or batches drawn its own way, modules besides the
head, outputs joined its own way, one class per input, cached features, class weights, tuned
thresholds, predict options, answers shown, drawn, written or served, an export of its own or
a graph export with more than logits, commands refused, report sections, ranking, and what a
fit logs and summarises of it.

A fitted task holds its label space (classes, a multi-label model's thresholds, a regression
target's mean and standard deviation). A kind is a package of :mod:`graft.tasks` with a
subclass of :class:`Task`, found by the registry (:mod:`graft.tasks`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from graft.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from graft.config import FitConfig
    from graft.data import DataSplits


def check_companions(splits: DataSplits) -> None:
    """Validation and test data, when given, must hold examples of the training data's
    modality (DataError naming them otherwise)."""
    train = splits.train
    for name in ("val", "test"):
        part = getattr(splits, name)
        if part is None:
            continue
        if not len(part):
            raise DataError(f"the {name} data {part.source} holds no examples")
        if part.modality != train.modality:
            raise DataError(
                f"{part.source} holds {part.modality} data but the training data "
                f"{train.source} holds {train.modality}"
            )


def check_same_classes(splits: DataSplits) -> None:
    """Validation and test data, when given, must name the training data's classes in the same
    order (DataError naming both otherwise): a kind whose readers find the classes in each
    file (a mask palette, a COCO category list) checks it here."""
    train = splits.train
    for part in (splits.val, splits.test):
        if part is not None and list(part.classes) != list(train.classes):
            raise DataError(
                f"{part.source} has the classes {part.classes}; the training data "
                f"{train.source} has {train.classes}"
            )


def check_classes(data: Any, classes: list[str]) -> None:
    """Data read for a fitted task (evaluation, a later split) must name its ``classes`` in
    the same order: a kind whose readers find the classes in each file checks it here."""
    if list(data.classes) != list(classes):
        raise DataError(f"{data.source} has the classes {data.classes}, not {classes}")


@dataclass
class MetricsTable:
    """A table of metrics, for the command line (rich) and the report (HTML) to draw alike.

    Attributes:
        title: what the table shows, with its headline figures.
        columns: the column headers.
        rows: one list of cells (text) per row.
        left: the columns aligned left (names); the others are numbers, aligned right.
    """

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    left: tuple[str, ...] = ()


class Task(ABC):
    """A kind of task, fitted to its label space (see the module docstring).

    Class attributes:
        kind: the task's name in runs and options (``"multiclass"``).
        headline: the metric :meth:`graft.GraftEstimator.score` returns and the transfer
            gain compares (higher is better).
        split_kind: how a validation split is drawn when none is given (recorded in the run).
    """

    kind: ClassVar[str]
    headline: ClassVar[str]
    split_kind: ClassVar[str] = "random"
    #: The formats of this kind's data, as the message for data of no kind lists them
    #: (``"CoNLL columns or JSON Lines of tokens and tags or text and spans (tagging)"``);
    #: empty for a kind that reads another kind's formats.
    formats: ClassVar[str] = ""

    # Data --------------------------------------------------------------------------------------

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """The training data (and validation and test data when given) of a fit of this kind."""
        raise NotImplementedError(f"{cls.kind} reads its data with read_task_data")

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        """Refuse options that this kind of task cannot take (ConfigError)."""
        for given, refusal in (
            (config.class_weights == "auto", "--class-weights auto weighs classes"),
            (config.sampler == "balanced", "--sampler balanced draws classes evenly"),
        ):
            if given:
                raise ConfigError(f"{refusal}; this data is {cls.kind}")

    def defaults(self, config: FitConfig) -> FitConfig:
        """``config`` with this kind's defaults for the options left at None ("graft's default
        for this data": ``epochs``, ``backbone_lr_mult``); unchanged by default."""
        return config

    @classmethod
    def split(cls, data: Any, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training and validation parts of ``data`` when no validation data
        is given: a seeded random ``val_fraction`` (classification tasks stratify)."""
        from graft.data import random_split

        return random_split(data, val_fraction, seed)

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        """Check that validation and test data suit the training data, and index their labels
        into its classes."""
        return splits

    @classmethod
    @abstractmethod
    def from_training_data(cls, train: Any, config: FitConfig) -> Task:
        """The task fitted to the label space of the training data (after the split)."""

    @abstractmethod
    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> Any:
        """Labelled data to evaluate on (a path, or in-memory data), read as this task reads
        its labels and re-indexed into its classes."""

    def relabel(self, data: Any) -> Any:
        """``data`` (validation, test) with its labels indexed into this task's classes."""
        return data.relabel(self.classes)

    # Training ----------------------------------------------------------------------------------

    @property
    @abstractmethod
    def classes(self) -> Any:
        """The label names, in the order of the head's outputs (per task for several)."""

    @abstractmethod
    def new_head(self, backbone: Any, dropout: float = 0.2) -> nn.Module:
        """An untrained head on ``backbone``'s features (seeded by the caller)."""

    def training_module(self, head: nn.Module, phase: Any, backbone: Any, **options: Any):
        """The LightningModule that trains ``head`` (on ``backbone`` when given) in ``phase``;
        ``options``: ``label_smoothing``, ``weight_decay``, ``class_weights``, ``mixup``. By
        default the engine's :class:`~graft.training.module.TransferModule`, which asks the
        task for its loss and validation score (:class:`~graft.tasks.capabilities.HeadLoss`)."""
        from graft.training.module import TransferModule

        return TransferModule(head, phase, backbone, task=self, **options)

    # Batches -----------------------------------------------------------------------------------

    @abstractmethod
    def items_of(self, data: Any) -> list:
        """The inputs of ``data`` (labelled data of this kind) in the order of its labels."""

    @abstractmethod
    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        """A torch Dataset of ``data`` (labelled data, or a list of items without labels)
        turned into backbone inputs: one item and its label (-1 without) at a time."""

    @abstractmethod
    def collate(self, preprocessing: Any):
        """How a list of :meth:`dataset` items becomes a batch (picklable)."""

    def read_inputs(self, inputs: list, modality: str, column: str | None = None) -> list:
        """Inputs to predict (files, folders, tables, texts) as the items :meth:`dataset`
        takes (:func:`graft.data.load_inputs` by default)."""
        from graft.data import load_inputs

        return load_inputs(inputs, modality, column=column)

    def infer(self, backbone: Any, head: Any, inputs: Any) -> Any:
        """The head's outputs for a batch of inputs (in inference mode)."""
        return head(backbone(inputs))

    # Answers -----------------------------------------------------------------------------------

    @abstractmethod
    def answers(self, outputs: torch.Tensor) -> Any:
        """Predictions from the head's outputs (class names, label lists, values)."""

    def probabilities(self, outputs: torch.Tensor) -> np.ndarray:
        """Probabilities from the head's outputs; refused for tasks that predict values."""
        raise ConfigError(f"a {self.kind} model predicts values, not probabilities: predict()")

    @abstractmethod
    def prediction_records(self, outputs: torch.Tensor, top_k: int) -> list[dict]:
        """Each input's answer as ``graft predict --json`` prints it (without the input)."""

    # Metrics -----------------------------------------------------------------------------------

    @abstractmethod
    def metrics(self, outputs: Any, data: Any) -> dict:
        """The task's metrics of the head's ``outputs`` on labelled ``data``."""

    def score(self, metrics: dict) -> Any:
        """The headline figure of :meth:`metrics`' result."""
        return metrics[self.headline]

    @abstractmethod
    def describe(self) -> str:
        """The label space in a few words ("5 classes")."""

    @classmethod
    @abstractmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        """Tables of ``metrics`` (one split's) for the command line to print."""

    # Record ------------------------------------------------------------------------------------

    def record(self) -> dict:
        """What the run keeps of the task beyond its classes (``config.json``'s ``task``)."""
        return {"kind": self.kind}

    @classmethod
    @abstractmethod
    def from_record(cls, record: dict, labels: Any) -> Task:
        """The task as a run recorded it (``record`` from :meth:`record`, ``labels`` from
        ``labels.json``: :func:`~graft.tasks.capabilities.labels_record`)."""
