"""What only some kinds of task have: small protocols a kind implements when it has them.

The core every kind implements is :class:`graft.tasks.base.Task`. The rest is here, one
small mixin per capability, which a kind's class lists among its bases when it has it; the
engine asks for a capability with ``isinstance`` (``issubclass`` for a kind's class), or calls
the functions below, which do the engine's default where a kind has no such capability:

- :class:`ClaimsData`: data told by its content (``--task auto``), and the line that breaks
  data that is nearly the kind's;
- :class:`BuildsBackbone`: a backbone of the kind's own (multi-scale, token-level) instead
  of pooled features;
- :class:`HeadLoss`: the loss, prepared targets and validation score that the engine's
  training module asks for (a kind whose module computes them itself has no need of it);
- :class:`PlansPhases`, :class:`BatchesTraining`, :class:`HeadLoaders`: the strategy's phases,
  the training batches and a head-only phase's loaders, the kind's own way;
- :class:`HoldsNetworks`: modules besides the backbone and head that training changes;
- :class:`SeveralTasks`: several tasks on one backbone, each a task of its own;
- :class:`SingleLabel`: exactly one class per input (few labels, semi-supervised learning,
  source-free adaptation; images and sounds may be mixed by mixup and cutmix);
- :class:`CachesFeatures`: a head-only phase trains on cached backbone features, one vector
  per input (:mod:`graft.features`);
- :class:`ClassWeighted`: ``--class-weights auto`` weighs the loss by class;
- :class:`Tuned`: decision rules tuned on validation outputs after training;
- :class:`JoinsOutputs`: outputs that are no tensor batched along their first dimension;
- :class:`PredictOptions`: ``graft predict`` options of the kind (a detector's threshold);
- :class:`PredictionText`, :class:`DrawsPredictions`, :class:`WritesPredictions`: answers
  shown in ``graft predict``'s table the kind's own way, drawn on the inputs, or written as
  files;
- :class:`Served`: answers ``graft serve`` returns;
- :class:`ExportedGraph`: a one-graph export whose inputs or outputs are more than a batch
  and its logits, or whose ``export.json`` keeps more than the kind;
- :class:`ExportsItself`: an export (and its engine) of the kind's own, for a model that is
  not one graph from inputs to logits;
- :class:`Refused`: commands refused for the kind's models (export, serve);
- :class:`Reported`: report sections and overview rows, and metrics in several parts;
- :class:`Ranks`: ``graft rank`` scores of the kind's own;
- :class:`GuardsPretrained`: the untrained model is a model already, kept when no phase beats
  it on validation (similarity: the pretrained encoder);
- :class:`Searches`: a model that embeds, indexes and searches (similarity);
- :class:`EvaluatesPretrained`: a pretrained model scored as it is by ``graft evaluate``
  (transcription);
- :class:`Summarised`: what a fit logs of the task and writes into ``summary.json``.

This module imports neither torch nor any kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from graft.errors import ConfigError

# Data and model ------------------------------------------------------------------------------


class ClaimsData(ABC):
    """A kind that tells its data by content (``--task auto``): files of its own formats. A
    kind without it reads a label column or class folders, what is left when no kind claims
    the data (:func:`graft.tasks.read_task_data`)."""

    @classmethod
    @abstractmethod
    def claims(cls, data: Any) -> bool:
        """Whether ``data`` (a path, or data in memory) holds this kind's data."""

    @classmethod
    def near_miss(cls, data: Any) -> str | None:
        """Why ``data``, which this kind does not claim, is nearly its data: one line naming the
        file and the line (or record) that breaks the format and what was expected; None when
        it is not nearly this kind's data (the default)."""
        return None


def claims(kind: type, data: Any) -> bool:
    """Whether ``kind`` (a task class) claims ``data`` by its content."""
    return issubclass(kind, ClaimsData) and kind.claims(data)


def near_miss(kind: type, data: Any) -> str | None:
    """Why ``data`` is nearly ``kind``'s data (a task class), or None."""
    return kind.near_miss(data) if issubclass(kind, ClaimsData) else None


class BuildsBackbone(ABC):
    """A kind whose model stands on a backbone of its own (multi-scale, token-level); a kind
    without it stands on pooled features, one vector per input
    (:func:`graft.backbones.factory.build_backbone`)."""

    @classmethod
    @abstractmethod
    def build_backbone(cls, config: Any, data: Any) -> Any:
        """The backbone of a fit with ``config`` on training ``data``."""

    @classmethod
    @abstractmethod
    def restore_backbone(cls, spec: str, pretrained: bool) -> Any:
        """The backbone a run of this kind names, with pretrained weights or without."""


def build_backbone(kind: type, config: Any, data: Any) -> Any:
    """The backbone of a fit of ``kind`` (a task class) with ``config`` on training ``data``."""
    if issubclass(kind, BuildsBackbone):
        return kind.build_backbone(config, data)
    from graft.backbones.factory import build_backbone as pooled

    return pooled(config, data)


def restore_backbone(kind: type, spec: str, pretrained: bool) -> Any:
    """The backbone ``spec`` of a run of ``kind`` (a task class), pretrained or not."""
    if issubclass(kind, BuildsBackbone):
        return kind.restore_backbone(spec, pretrained)
    from graft.backbones.registry import create_backbone

    return create_backbone(spec, pretrained=pretrained)


# Training ------------------------------------------------------------------------------------


class SeveralTasks(ABC):
    """A kind that holds several tasks on one backbone (several label columns): its
    ``tasks`` maps each task's name to its task, and its metrics, answers and probabilities
    are each task's, by name."""

    tasks: dict[str, Any]

    @abstractmethod
    def labels_record(self) -> Any:
        """What ``labels.json`` holds: each task's class names, by task."""


def labels_record(task: Any) -> Any:
    """What ``labels.json`` holds of ``task``: its class names by default."""
    return task.labels_record() if isinstance(task, SeveralTasks) else list(task.classes)


class SingleLabel:
    """A kind whose inputs have exactly one class each (multiclass): what few-labels
    training, semi-supervised learning and source-free adaptation need, and what lets images
    and sounds be mixed (mixup, cutmix: soft targets of two classes)."""


class CachesFeatures:
    """A kind whose head reads one vector per input, so that a head-only phase trains on
    cached backbone features (:mod:`graft.features`); a kind without it trains its head on
    the frozen backbone (token, pixel or multi-scale features)."""


class ClassWeighted(ABC):
    """A kind whose loss can weigh classes (``--class-weights auto``)."""

    @abstractmethod
    def class_weights(self, train: Any) -> Any:
        """The loss weights (a torch tensor) of ``--class-weights auto`` on training data
        ``train``."""


class Tuned(ABC):
    """A kind that tunes decision rules on validation outputs after training (multi-label
    thresholds)."""

    #: Whether :meth:`tune` adjusts anything (then the fit runs the model on validation data).
    tunes: bool = True

    @abstractmethod
    def tune(self, outputs: Any, data: Any) -> None:
        """Adjust decision rules on the validation ``outputs`` of labelled ``data``."""


def tunes(task: Any) -> bool:
    """Whether the fit tunes ``task`` on validation outputs."""
    return isinstance(task, Tuned) and task.tunes


class GuardsPretrained:
    """A kind whose untrained model (the pretrained backbone under its starting head) is a
    model already (similarity: the pretrained encoder under an identity head): the fit scores
    it on validation once before training (the task's headline metric, as ``val_score``
    scores an epoch) and keeps its weights, saying so, when no phase scores higher."""


class ValidatesWhole:
    """A kind whose validation split is read whole after every epoch, never as a sample of
    its rows (:func:`graft.training.schedule.epoch_validation`): several tasks on one table,
    whose rows each label some of them, so that a sample of rows could leave a task with
    too few labels to score."""


class StartsHead(ABC):
    """A kind whose new head can start from what the backbone knows rather than at random
    (multiclass text, ``--head-init labels``: the zero-shot classifier of the class names).
    When it does, the untrained model is a model already and the fit guards it as it guards
    a :class:`GuardsPretrained` kind's."""

    @abstractmethod
    def start_head(self, head: Any, backbone: Any, config: Any) -> bool:
        """Set the new ``head``'s weights when ``config`` asks for it; whether it did."""


def start_head(task: Any, head: Any, backbone: Any, config: Any) -> bool:
    """Whether ``task`` started ``head`` from what ``backbone`` knows (:class:`StartsHead`)."""
    return isinstance(task, StartsHead) and task.start_head(head, backbone, config)


class EvaluatesPretrained(ABC):
    """A kind whose pretrained models are models already (transcription: a speech-to-text
    model): ``graft evaluate MODEL DATA --task KIND`` scores one as it is, by the name a
    fit's ``--model`` takes."""

    @classmethod
    @abstractmethod
    def evaluate_pretrained(cls, model: str, data: Any) -> tuple[Any, dict]:
        """The task (as a fit records it) and its metrics of the pretrained ``model`` on
        labelled ``data``."""


class Searches(ABC):
    """A kind whose models embed and search (similarity): ``graft index``, ``graft search``
    and ``graft evaluate`` on retrieval data open a pretrained model through
    :meth:`open_model` and a run's through :meth:`searcher` (``graft.load(RUN).search``)."""

    @classmethod
    @abstractmethod
    def open_model(cls, source: Any) -> Any:
        """The model of a run directory, or the pretrained model a model string names: it has
        ``embed``, ``index(corpus, out)``, ``search(queries, index, top_k)`` and
        ``evaluate(data)``."""

    @abstractmethod
    def searcher(self, predictor: Any) -> Any:
        """The model of a fitted (or loaded) estimator of this kind, with the methods of
        :meth:`open_model`'s."""

    @classmethod
    @abstractmethod
    def holds_run(cls, path: Any) -> bool:
        """Whether ``path`` is a run directory of this kind."""


def searcher_of(predictor: Any) -> Any:
    """The model that searches of a fitted estimator whose kind :class:`Searches`; refused
    (ConfigError) for any other kind."""
    task = predictor.fitted_task_
    if not isinstance(task, Searches):
        raise ConfigError(f"a {task.kind} model does not search; --task similarity does")
    return task.searcher(predictor)


class Recommends(ABC):
    """A kind whose models recommend items to users (recommendation): ``graft recommend`` and
    ``graft.load(RUN).recommend`` reach it through :meth:`recommender`."""

    @abstractmethod
    def recommender(self, predictor: Any) -> Any:
        """The model of a fitted (or loaded) estimator of this kind: it has ``recommend(user,
        liked, top_k)`` and ``similar(item, top_k)``."""


def recommender_of(predictor: Any) -> Any:
    """The recommender of a fitted estimator whose kind :class:`Recommends`; refused
    (ConfigError) for any other kind."""
    task = predictor.fitted_task_
    if not isinstance(task, Recommends):
        raise ConfigError(f"a {task.kind} model does not recommend; --task recommendation does")
    return task.recommender(predictor)


class HeadLoss(ABC):
    """What the engine's training module (:class:`graft.training.module.TransferModule`) asks
    of a kind it trains: the loss on the model's outputs, the targets as the loss sees them and
    the validation score. A kind whose module computes its losses and score itself (a
    detector's) has no need of it."""

    @abstractmethod
    def loss(
        self,
        outputs: Any,
        targets: Any,
        class_weights: Any = None,
        label_smoothing: float = 0.0,
    ) -> Any:
        """The mean loss of a batch (a torch tensor), on prepared targets."""

    @abstractmethod
    def score_metric(self) -> Any:
        """The torchmetrics object of the validation score."""

    def validation_metrics(self) -> tuple[Any, Any]:
        """torchmetrics objects for ``val_acc`` (None where the task has no accuracy) and
        ``val_score`` (higher is better)."""
        return None, self.score_metric()

    def prepare_targets(self, targets: Any) -> Any:
        """Targets as the loss and the validation score see them (the identity here)."""
        return targets

    def score_inputs(self, outputs: Any, targets: Any) -> tuple:
        """What the validation score takes from a batch (outputs, prepared targets)."""
        return outputs, targets


class PlansPhases(ABC):
    """A kind that trains the strategy's phases its own way (a detector, which has no
    validation loss, keeps every epoch by its score)."""

    @abstractmethod
    def plan(self, phases: list) -> list:
        """The strategy's phases (:class:`graft.training.phase.Phase`) as this kind trains
        them."""


def plan(task: Any, phases: list) -> list:
    """The strategy's ``phases`` as ``task`` trains them (as planned by default)."""
    return task.plan(phases) if isinstance(task, PlansPhases) else phases


class HoldsNetworks(ABC):
    """A kind whose training changes modules besides the backbone and head (learned loss
    weights of several tasks)."""

    @abstractmethod
    def networks(self) -> dict[str, Any]:
        """Those modules by name: kept with the best phase and saved with the run."""


def networks(task: Any) -> dict[str, Any]:
    """``task``'s modules besides the backbone and head that training changes (none by
    default)."""
    return task.networks() if isinstance(task, HoldsNetworks) else {}


class BatchesTraining(ABC):
    """A kind that batches its training data its own way (images of alike sizes together,
    sentences of alike lengths)."""

    @abstractmethod
    def train_batches(
        self, data: Any, batch_size: int, seed: int, distributed: bool, preprocessing: Any
    ) -> dict | None:
        """DataLoader options that batch the training ``data`` (a ``batch_sampler`` whose
        order depends on the seed and the epoch only), or None for the usual shuffle;
        ``preprocessing`` is the backbone's (a text backbone's tokenizer)."""

    def validation_order(self, data: Any) -> list[int] | None:
        """The order to validate ``data`` in when it matters for speed (texts longest first,
        where the validation metrics do not depend on the order), or None: as it is."""
        return None


def validation_order(task: Any, data: Any, distributed: bool) -> dict:
    """DataLoader options for ``task``'s validation ``data``: its own order, if it has one
    (:meth:`BatchesTraining.validation_order`); across processes, Lightning's."""
    if distributed or not isinstance(task, BatchesTraining):
        return {}
    order = task.validation_order(data)
    return {} if order is None else {"sampler": order}


def train_batches(
    task: Any, data: Any, batch_size: int, seed: int, distributed: bool, preprocessing: Any
):
    """``task``'s DataLoader options for its training ``data`` (``preprocessing``: the
    backbone's), or None: the usual seeded shuffle in batches of ``batch_size``."""
    if isinstance(task, BatchesTraining):
        return task.train_batches(data, batch_size, seed, distributed, preprocessing)
    return None


class HeadLoaders(ABC):
    """A kind whose head-only phase reads its own loaders (several cached vectors per
    input: a word's features)."""

    @abstractmethod
    def head_loaders(self, loaders: Any) -> tuple:
        """The training and validation loaders of a phase that trains the head alone on the
        frozen backbone (``loaders``: the fit's :class:`graft.training.loaders.FitLoaders`)."""


def head_loaders(task: Any, loaders: Any) -> tuple:
    """The loaders of ``task``'s head-only phase: its own, cached features for a kind that
    :class:`CachesFeatures`, raw inputs through the frozen backbone otherwise."""
    if isinstance(task, HeadLoaders):
        return task.head_loaders(loaders)
    return loaders.features() if isinstance(task, CachesFeatures) else loaders.inputs()


# Answers -------------------------------------------------------------------------------------


class PredictOptions(ABC):
    """A kind that answers with ``graft predict`` options of its own (a detector's
    ``score_threshold`` and ``draw``)."""

    @abstractmethod
    def configured(self, **options: Any) -> Any:
        """This task answering with ``options`` (None: not given)."""


def configured(task: Any, **options: Any) -> Any:
    """``task`` answering with ``graft predict``'s ``options``; an option given to a kind that
    takes none is refused (ConfigError naming it)."""
    if isinstance(task, PredictOptions):
        return task.configured(**options)
    refuse_options(task.kind, options)
    return task


def refuse_options(kind: str, options: dict) -> None:
    """Refuse the first of ``options`` given (not None) to a ``kind`` of model that takes
    none of them (ConfigError naming it)."""
    given = [name for name, value in options.items() if value is not None]
    if given:
        option = "--" + given[0].replace("_", "-")
        raise ConfigError(f"{option} is not an option of a {kind} model")


class DrawsPredictions(ABC):
    """A kind whose answers are drawn on the image (``graft predict --draw``)."""

    @abstractmethod
    def draw_predictions(self, items: list, records: list[dict], folder: Any) -> list:
        """Draw each input with its answer (its prediction record) into ``folder``; the files
        written."""


def draw_predictions(task: Any, items: list, records: list[dict], folder: Any) -> list:
    """``task``'s drawings of its answers into ``folder``; refused for a kind whose answers
    are not drawn."""
    if not isinstance(task, DrawsPredictions):
        raise ConfigError(f"--draw draws detected objects; a {task.kind} model has none")
    return task.draw_predictions(items, records, folder)


class WritesPredictions(ABC):
    """A kind whose answers are written as files (``graft predict --out``: masks)."""

    @abstractmethod
    def write_predictions(
        self, items: list, outputs: Any, folder: Any, overlay: bool = False
    ) -> list[dict]:
        """Write each input's answer as files into ``folder`` (with ``overlay``, the input
        with its answer blended too); its prediction records naming the files."""


def check_writes(task: Any) -> WritesPredictions:
    """``task``, when its answers are written as files; refused otherwise."""
    if not isinstance(task, WritesPredictions):
        raise ConfigError(
            f"--out writes answers as files (segmentation masks); a {task.kind} model prints "
            "its answers (--json keeps them)"
        )
    return task


class JoinsOutputs(ABC):
    """A kind whose outputs are no tensor (nor dict of tensors) batched along their first
    dimension (a list per image, padded word outputs)."""

    @abstractmethod
    def join(self, chunks: list) -> Any:
        """Batches of outputs (on the CPU) as one, in input order."""


def join(task: Any, chunks: list) -> Any:
    """Batches of ``task``'s outputs (float32, on the CPU) as one: its own way, or tensors
    concatenated along the batch, dicts of them by task."""
    if isinstance(task, JoinsOutputs):
        return task.join(chunks)
    import torch

    if chunks and isinstance(chunks[0], dict):
        return {name: torch.cat([chunk[name] for chunk in chunks]) for name in chunks[0]}
    return torch.cat(chunks)


class PredictionText(ABC):
    """A kind that shows its answers in ``graft predict``'s table its own way (boxes,
    entities, masks)."""

    @abstractmethod
    def prediction_text(self, record: dict) -> str:
        """How one ``prediction_records`` record is shown."""


def prediction_text(task: Any, record: dict) -> str | None:
    """How ``task`` shows one prediction record, or None: as classes with their
    probabilities, or a value."""
    return task.prediction_text(record) if isinstance(task, PredictionText) else None


class Served(ABC):
    """A kind that ``graft serve`` answers for."""

    #: The JSON fields one input of a request is made of, when an input is several texts
    #: (question answering: question and context); empty: one text, or one uploaded file.
    request_fields: tuple[str, ...] = ()
    #: The longest audio clip one uploaded file may last (a speech model's window), refused
    #: by name past it (413); None: no limit but the request's.
    clip_seconds: float | None = None

    @abstractmethod
    def served_answers(self, outputs: Any, top_k: int) -> list:
        """Each input's answer as ``graft serve`` returns it."""


def served(task: Any) -> Served:
    """``task``, when ``graft serve`` answers for it; refused (ConfigError) otherwise."""
    check_servable(task)
    return task


# Export --------------------------------------------------------------------------------------


class ExportsItself(ABC):
    """A kind whose model is not one graph from inputs to logits (a detector's boxes): it
    writes its export and answers with it in its own way."""

    @abstractmethod
    def export(self, model: Any, items: list, out: Any, format: str) -> dict:
        """Write the export of fitted ``model`` to the folder ``out`` (parity checked on
        ``items``); its ``export.json`` record."""

    @abstractmethod
    def exported_engine(self, folder: Any, format: str, run_dir: Any) -> Any:
        """The engine that answers with the export in ``folder``."""


class ExportedGraph:
    """A kind exported as one graph whose inputs or outputs are more than a batch and its
    logits (a word's place among sub-tokens, tiles), or whose ``export.json`` keeps more than
    its kind. Each has a default; a kind overrides what it has."""

    def model_inputs(self, batch: Any) -> Any:
        """The part of a ``collate`` batch that the network reads (what an export takes as its
        inputs)."""
        return batch

    def infer_exported(self, engine: Any, inputs: Any) -> Any:
        """The outputs of a batch from an exported model (``graft predict --engine onnx``),
        which returns the logits of :meth:`model_inputs`."""
        return engine(inputs)

    def export_record(self) -> dict:
        """The ``task`` of ``export.json``."""
        return {"kind": self.kind}  # type: ignore[attr-defined]


def model_inputs(task: Any, batch: Any) -> Any:
    """What ``task``'s network (and its export) reads of a batch: the whole batch by default."""
    return task.model_inputs(batch) if isinstance(task, ExportedGraph) else batch


def infer_exported(task: Any, engine: Any, inputs: Any) -> Any:
    """``task``'s outputs of a batch from an exported model: its logits by default."""
    if isinstance(task, ExportedGraph):
        return task.infer_exported(engine, inputs)
    return engine(inputs)


def export_record(task: Any) -> dict:
    """The ``task`` of ``export.json``: the kind by default."""
    return task.export_record() if isinstance(task, ExportedGraph) else {"kind": task.kind}


class Refused(ABC):
    """A kind that some commands refuse (several tasks are not exported nor served)."""

    @abstractmethod
    def refusal(self, command: str) -> str | None:
        """Why ``command`` (``"export"``, ``"serve"``) is refused for this model (one line),
        or None."""


def _check(task: Any, command: str) -> None:
    reason = task.refusal(command) if isinstance(task, Refused) else None
    if reason:
        raise ConfigError(reason)


def check_exportable(task: Any) -> None:
    """Refuse export (and the ONNX engines) for a kind that cannot be exported."""
    _check(task, "export")


def check_servable(task: Any) -> None:
    """Refuse ``graft serve`` for a kind it cannot answer for."""
    _check(task, "serve")
    if not isinstance(task, Served):
        raise ConfigError(f"graft serve cannot answer for a {task.kind} model")


# Report and ranking --------------------------------------------------------------------------


class Reported:
    """A kind that adds to the report: sections of its own, overview rows, metrics in parts.
    Each has a default; a kind overrides what it has (class methods, called on the class a
    run's ``config.json`` names)."""

    @classmethod
    def report_sections(cls, metrics: dict, classes: Any, split: str, modality: str | None) -> list:
        """HTML sections of the report for one split's metrics."""
        return []

    @classmethod
    def comparison_sections(cls, val_metrics: dict) -> list:
        """HTML sections comparing the pretrained model as it is with the fitted one, from
        the validation metrics (a guarded kind's hold the pretrained model's under
        ``pretrained``: :func:`graft.fitting.results.evaluate_splits`)."""
        return []

    @classmethod
    def overview(cls, record: dict) -> list[tuple[str, str]]:
        """Rows the report's overview adds for this kind (its ``config.json`` ``task``)."""
        return []

    @classmethod
    def metric_parts(cls, name: str, metrics: dict) -> list[tuple[str, dict]]:
        """``(title, metrics)`` of each part of one split's metrics (one, or one per task)."""
        return [(name, metrics)]


def report_of(kind: type) -> type[Reported]:
    """What the report asks of ``kind`` (a task class): its own, or :class:`Reported`'s
    defaults."""
    return kind if issubclass(kind, Reported) else Reported


class Ranks(ABC):
    """A kind with ``graft rank`` scores of its own (detection: object features)."""

    @classmethod
    @abstractmethod
    def rank(cls, data: Any, models: list[str], **options: Any) -> Any:
        """``graft rank`` on data of this kind (:class:`graft.selection.ranking.Ranking`);
        ``options``: ``val``, ``by``, ``seed``, ``val_fraction``, ``batch_size``."""


# Record --------------------------------------------------------------------------------------


class Summarised:
    """A kind that says more of itself and of its data: the line a fit logs once it knows the
    task, and entries of ``summary.json``. Each has a default; a kind overrides what it has."""

    def announce(self) -> str:
        """What the fit logs once it knows the task."""
        return f"task: {self.kind}"  # type: ignore[attr-defined]

    def summary(self, splits: Any) -> dict:
        """Task-specific entries of ``summary.json`` (none by default)."""
        return {}

    def data_summary(self, splits: Any, backbone: Any) -> dict:
        """The data part of ``summary.json`` (:func:`graft.data.summary.data_summary`)."""
        from graft.data.summary import data_summary

        return data_summary(splits, backbone, self.kind)  # type: ignore[attr-defined]


def announce(task: Any) -> str:
    """What the fit logs once it knows ``task``."""
    return task.announce() if isinstance(task, Summarised) else Summarised.announce(task)


def summary(task: Any, splits: Any, backbone: Any) -> dict:
    """``summary.json``'s data part and ``task``'s own entries."""
    if isinstance(task, Summarised):
        entries = task.data_summary(splits, backbone)
        entries.update(task.summary(splits))
        return entries
    return Summarised.data_summary(task, splits, backbone)
