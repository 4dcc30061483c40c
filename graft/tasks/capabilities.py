"""What only some kinds of task have: small protocols a kind implements when it has them.

The core every kind implements is :class:`graft.tasks.base.Task`. The rest is here, one
small mixin per capability, which a kind's class lists among its bases when it has it; the
engine asks for a capability with ``isinstance`` (``issubclass`` for a kind's class), or calls
the functions below, which do the engine's default where a kind has no such capability:

- :class:`SeveralTasks`: several tasks on one backbone, each a task of its own;
- :class:`SingleLabel`: exactly one class per input (few labels, semi-supervised learning,
  source-free adaptation; images and sounds may be mixed by mixup and cutmix);
- :class:`CachesFeatures`: a head-only phase trains on cached backbone features, one vector
  per input (:mod:`graft.features`);
- :class:`ClassWeighted`: ``--class-weights auto`` weighs the loss by class;
- :class:`Tuned`: decision rules tuned on validation outputs after training;
- :class:`PredictOptions`: ``graft predict`` options of the kind (a detector's threshold);
- :class:`DrawsPredictions`, :class:`WritesPredictions`: answers drawn on the inputs, or
  written as files;
- :class:`ExportsItself`: an export (and its engine) of the kind's own, for a model that is
  not one graph from inputs to logits;
- :class:`Reported`: report sections and overview rows, and metrics in several parts;
- :class:`Ranks`: ``graft rank`` scores of the kind's own;
- :class:`FitsItself`, :class:`Searches`: a model trained, saved and used outside the phase
  runner (similarity: an encoder that embeds, indexes and searches).

This module imports neither torch nor any kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from graft.errors import ConfigError

# Training ------------------------------------------------------------------------------------


class SeveralTasks:
    """A kind that holds several tasks on one backbone (several label columns): its
    ``tasks`` maps each task's name to its task, and its metrics, answers and probabilities
    are each task's, by name."""

    tasks: dict[str, Any]


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


class FitsItself(ABC):
    """A kind whose model is no head trained by the phase runner (similarity: an encoder
    trained on pairs, kept by a retrieval score): it trains, evaluates and saves itself."""

    @abstractmethod
    def fit_itself(self, estimator: Any, splits: Any, config: Any, out: Any, overwrite: bool):
        """Train on ``splits`` with ``config`` (the kind's defaults filled in), set the estimator's fitted
        attributes (``metrics_``, ``history_``, ...), write the run into ``out`` when given;
        the estimator."""


class Searches(ABC):
    """A kind whose models embed and search (similarity): ``graft index``, ``graft search``
    and ``graft evaluate`` on retrieval data open its model through :meth:`open_model`."""

    @classmethod
    @abstractmethod
    def open_model(cls, source: Any) -> Any:
        """The model of a run directory, or the pretrained model a model string names: it has
        ``embed``, ``index(corpus, out)``, ``search(queries, index, top_k)`` and
        ``evaluate(data)``."""

    @classmethod
    @abstractmethod
    def holds_run(cls, path: Any) -> bool:
        """Whether ``path`` is a run directory of this kind."""


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
