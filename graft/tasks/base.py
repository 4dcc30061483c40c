"""The task protocol: what a kind of task answers, whatever the rest of graft does with it.

A *task* is what the new head learns on the backbone's features: one class per input
(:mod:`graft.tasks.classification.multiclass`), any number of labels (:mod:`graft.tasks.classification.multilabel`), a number
(:mod:`graft.tasks.classification.regression`) or several of these at once (:mod:`graft.tasks.classification.multitask`).
Everything that depends on the kind of task goes through this one interface, so that the
estimator, the training module, the run directory, the command line, export, serving and the
report never ask which kind they hold:

- **labels**: how the task reads and splits its labelled data (:meth:`Task.read`,
  :meth:`Task.split`), what it learns from the training labels (:meth:`Task.from_training_data`)
  and which options it refuses (:meth:`Task.check_options`);
- **training**: the head's outputs (:meth:`Task.new_head`), the targets as the loss sees them
  (:meth:`Task.prepare_targets`), the loss, the validation score (:meth:`Task.validation_metrics`)
  and the Lightning module that trains it (:meth:`Task.training_module`);
- **answers**: outputs turned into predictions and probabilities, the ranked answers that
  ``graft predict`` and ``graft serve`` print, decision thresholds tuned after training;
- **metrics**: the task's metrics, its headline metric (:attr:`Task.headline`), the tables the
  command line prints and the sections the report draws;
- **record**: how the task writes itself into a run and reads itself back.

A fitted task holds its label space (classes, a multi-label model's thresholds, a regression
target's mean and standard deviation). Adding a kind of task is adding a module with a subclass
of :class:`Task` and one line in :data:`graft.tasks.TASK_CLASSES`.
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
    #: Whether :meth:`tune` adjusts anything (then the fit runs the model on validation data).
    tunes: bool = False
    #: Whether images may be mixed (mixup, cutmix: one class per input, soft targets).
    mixup: ClassVar[bool] = False
    #: Whether a head-only phase trains on cached backbone features (one vector per input,
    #: :mod:`graft.features`); a task whose head reads token, pixel or multi-scale features
    #: trains its head on the frozen backbone instead.
    caches_features: ClassVar[bool] = True

    # Labels ------------------------------------------------------------------------------------

    @classmethod
    def claims(cls, data: Any) -> bool:
        """Whether ``data`` (a path, or data in memory) holds this kind's data, told by its
        content, so that ``--task auto`` picks this kind. None claims by default: a label column
        or class folders are what is left (:func:`graft.tasks.read_task_data`)."""
        return False

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

    def plan(self, phases: list) -> list:
        """The strategy's phases (:class:`graft.training.phase.Phase`) as this kind trains
        them (a detector, which has no validation loss, keeps every epoch by its score); as
        planned by default."""
        return phases

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

    def announce(self) -> str:
        """What the fit logs once it knows the task."""
        return f"task: {self.kind}"

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

    @classmethod
    def build_backbone(cls, config: FitConfig, data: Any) -> Any:
        """The backbone of a fit with ``config`` on training ``data``: pooled features by
        default (:func:`graft.backbones.factory.build_backbone`); a dense task builds a
        multi-scale or token-level one."""
        from graft.backbones.factory import build_backbone

        return build_backbone(config, data)

    @classmethod
    def restore_backbone(cls, spec: str, pretrained: bool) -> Any:
        """The backbone a run of this kind names, with pretrained weights or without."""
        from graft.backbones.registry import create_backbone

        return create_backbone(spec, pretrained=pretrained)

    @abstractmethod
    def new_head(self, backbone: Any, dropout: float = 0.2) -> nn.Module:
        """An untrained head on ``backbone``'s features (seeded by the caller)."""

    def networks(self) -> dict[str, nn.Module]:
        """Modules besides the backbone and head that training changes (learned loss
        weights): kept with the best phase and saved with the run."""
        return {}

    def class_weights(self, train: Any) -> torch.Tensor:
        """The loss weights of ``--class-weights auto`` on training data ``train``: inverse
        class frequency (:func:`graft.training.imbalance.balanced_class_weights`)."""
        from graft.training.imbalance import balanced_class_weights

        return balanced_class_weights(train.labels, len(self.classes))

    def prepare_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets as the loss and the validation score see them (the identity here)."""
        return targets

    @abstractmethod
    def loss(
        self,
        outputs: torch.Tensor,
        targets: torch.Tensor,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """The mean loss of a batch, on prepared targets."""

    def validation_metrics(self) -> tuple[Any, Any]:
        """torchmetrics objects for ``val_acc`` (None where the task has no accuracy) and
        ``val_score`` (higher is better)."""
        return None, self.score_metric()

    @abstractmethod
    def score_metric(self) -> Any:
        """The torchmetrics object of the validation score."""

    def score_inputs(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple:
        """What the validation score takes from a batch (outputs, prepared targets)."""
        return outputs, targets

    def training_module(self, head: nn.Module, phase: Any, backbone: Any, **options: Any):
        """The LightningModule that trains ``head`` (on ``backbone`` when given) in ``phase``;
        ``options``: ``label_smoothing``, ``weight_decay``, ``class_weights``, ``mixup``."""
        from graft.training.module import TransferModule

        return TransferModule(head, phase, backbone, task=self, **options)

    # Batches -----------------------------------------------------------------------------------

    def items_of(self, data: Any) -> list:
        """The inputs of ``data`` (labelled data of this kind) in the order of its labels."""
        return data.items

    def read_inputs(self, inputs: list, modality: str, column: str | None = None) -> list:
        """Inputs to predict (files, folders, tables, texts) as the items :meth:`dataset`
        takes (:func:`graft.data.load_inputs` by default)."""
        from graft.data import load_inputs

        return load_inputs(inputs, modality, column=column)

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        """A torch Dataset of ``data`` (labelled data, or a list of items without labels)
        turned into backbone inputs: one item and its label (-1 without) at a time."""
        from graft.data.transforms import InputDataset

        if isinstance(data, list):
            return InputDataset(data, None, preprocessing)
        return InputDataset(
            self.items_of(data), data.labels, preprocessing, train=train, augment=augment
        )

    def collate(self, preprocessing: Any):
        """How a list of :meth:`dataset` items becomes a batch (picklable)."""
        from graft.data.transforms import Collate

        return Collate(preprocessing)

    def train_batches(
        self, data: Any, batch_size: int, seed: int, distributed: bool
    ) -> dict | None:
        """DataLoader options that batch the training ``data`` in this kind's own way (a
        ``batch_sampler`` whose order depends on the seed and the epoch only), or None: the
        usual seeded shuffle in batches of ``batch_size``."""
        return None

    def infer(self, backbone: Any, head: Any, inputs: Any) -> Any:
        """The head's outputs for a batch of inputs (in inference mode)."""
        return head(backbone(inputs))

    def model_inputs(self, batch: Any) -> Any:
        """The part of a :meth:`collate` batch that the network reads (what an export takes
        as its inputs): the whole batch by default; a task may carry more in its batches (a
        word's place among sub-tokens)."""
        return batch

    def infer_exported(self, engine: Any, inputs: Any) -> Any:
        """The outputs of a batch from an exported model (``graft predict --engine onnx``),
        which returns the logits of :meth:`model_inputs`: those logits by default."""
        return engine(inputs)

    def head_loaders(self, loaders: Any) -> tuple:
        """The training and validation loaders of a phase that trains the head alone on the
        frozen backbone (``loaders``: the fit's :class:`graft.training.loaders.FitLoaders`):
        cached features, or raw inputs through the frozen backbone when
        :attr:`caches_features` is False. A task whose head reads several vectors per input
        may cache them its own way."""
        return loaders.features() if self.caches_features else loaders.inputs()

    def join(self, chunks: list) -> Any:
        """Batches of outputs (float32, on the CPU) as one: tensors concatenated along the
        batch, dicts of them by task."""
        import torch

        if chunks and isinstance(chunks[0], dict):
            return {name: torch.cat([chunk[name] for chunk in chunks]) for name in chunks[0]}
        return torch.cat(chunks)

    # Answers -----------------------------------------------------------------------------------

    @abstractmethod
    def answers(self, outputs: torch.Tensor) -> Any:
        """Predictions from the head's outputs (class names, label lists, values)."""

    def configured(self, **options: Any) -> Task:
        """This task answering with ``graft predict``'s options for some kinds (a detector's
        ``score_threshold`` and ``draw``); refused for a kind that takes none."""
        given = [name for name, value in options.items() if value is not None]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{option} is not an option of a {self.kind} model")
        return self

    def draw_predictions(self, items: list, records: list[dict], folder: Any) -> list:
        """Draw each input with its answer into ``folder`` (``graft predict --draw``); refused
        for kinds whose answers are not drawn on the image."""
        raise ConfigError(f"--draw draws detected objects; a {self.kind} model has none")

    def write_predictions(
        self, items: list, outputs: Any, folder: Any, overlay: bool = False
    ) -> list[dict]:
        """Write each input's answer as files into ``folder`` (``graft predict --out``; with
        ``overlay``, the input with its answer blended too) and return its
        :meth:`prediction_records` records naming the files; refused for kinds whose answers
        are printed, not written as files."""
        raise ConfigError(
            f"--out writes answers as files (segmentation masks); a {self.kind} model prints "
            "its answers (--json keeps them)"
        )

    def probabilities(self, outputs: torch.Tensor) -> np.ndarray:
        """Probabilities from the head's outputs; refused for tasks that predict values."""
        raise ConfigError(f"a {self.kind} model predicts values, not probabilities: predict()")

    @abstractmethod
    def prediction_records(self, outputs: torch.Tensor, top_k: int) -> list[dict]:
        """Each input's answer as ``graft predict --json`` prints it (without the input)."""

    @abstractmethod
    def served_answers(self, outputs: torch.Tensor, top_k: int) -> list:
        """Each input's answer as ``graft serve`` returns it."""

    def prediction_text(self, record: dict) -> str | None:
        """How ``graft predict`` shows one :meth:`prediction_records` record in its table
        (None: as classes with their probabilities, or a value)."""
        return None

    def tune(self, outputs: Any, data: Any) -> None:
        """Adjust decision rules on validation outputs (multi-label thresholds); nothing here."""
        return None

    def export(self, model: Any, items: list, out: Any, format: str) -> dict | None:
        """Write the export of fitted ``model`` to the folder ``out`` (parity checked on
        ``items``) and return its ``export.json`` record, for a kind whose model is not one
        graph from inputs to logits (a detector's boxes); None: the default export
        (:func:`graft.export.exporter.export_model`)."""
        return None

    def exported_engine(self, folder: Any, format: str, run_dir: Any) -> Any:
        """The engine that answers with the export in ``folder`` for a kind that exports
        itself (:meth:`export`); None: the default (:func:`graft.export.engine.load_engine`)."""
        return None

    def check_exportable(self) -> None:
        """Refuse export (and the ONNX engines) for kinds that cannot be exported."""
        return None

    def check_servable(self) -> None:
        """Refuse ``graft serve`` for kinds it cannot answer."""
        return None

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

    @classmethod
    def metric_parts(cls, name: str, metrics: dict) -> list[tuple[str, dict]]:
        """``(title, metrics)`` of each part of one split's metrics (one, or one per task)."""
        return [(name, metrics)]

    @classmethod
    def report_sections(cls, metrics: dict, classes: Any, split: str, modality: str | None) -> list:
        """HTML sections of the report for one split's metrics (none by default)."""
        return []

    @classmethod
    def overview(cls, record: dict) -> list[tuple[str, str]]:
        """Rows the report's overview adds for this kind (its ``config.json`` ``task``)."""
        return []

    @classmethod
    def rank(cls, data: Any, models: list[str], **options: Any) -> Any:
        """``graft rank`` on data of this kind (:class:`graft.selection.ranking.Ranking`), for
        a kind that is not a label column's (those rank by :func:`graft.selection.ranking.rank`);
        ``options``: ``val``, ``by``, ``seed``, ``val_fraction``, ``batch_size``."""
        raise ConfigError(f"graft rank has no transferability score for {cls.kind} data")

    # Record ------------------------------------------------------------------------------------

    def record(self) -> dict:
        """What the run keeps of the task beyond its classes (``config.json``'s ``task``)."""
        return {"kind": self.kind}

    def labels_record(self) -> Any:
        """What ``labels.json`` holds: the class names."""
        return list(self.classes)

    def export_record(self) -> dict:
        """The ``task`` of ``export.json``."""
        return {"kind": self.kind}

    def summary(self, splits: DataSplits) -> dict:
        """Task-specific entries of ``summary.json`` (none by default)."""
        return {}

    def data_summary(self, splits: DataSplits, backbone: Any) -> dict:
        """The data part of ``summary.json`` (:func:`graft.data.summary.data_summary`)."""
        from graft.data.summary import data_summary

        return data_summary(splits, backbone, self.kind)

    @classmethod
    @abstractmethod
    def from_record(cls, record: dict, labels: Any) -> Task:
        """The task as a run recorded it (``record`` from :meth:`record`, ``labels`` from
        :meth:`labels_record`)."""
