"""What tagging has beyond the core of a task (:mod:`graft.tasks.capabilities`): class
weights over the training words, and how its answers and metrics show: ``graft serve``'s
answers with their text, ``graft predict``'s table, the command line's tables, the report's
sections and overview; and its refusal of class probabilities; and the list of every
capability tagging has (:class:`TaggingCapabilities`' bases)."""

from __future__ import annotations

from typing import Any

from graft.errors import ConfigError
from graft.tasks.base import MetricsTable
from graft.tasks.capabilities import (
    BatchesTraining,
    BuildsBackbone,
    ClaimsData,
    ClassWeighted,
    ExportedGraph,
    HeadLoaders,
    HeadLoss,
    JoinsOutputs,
    PlansPhases,
    PredictionText,
    Reported,
    Served,
    Summarised,
)


class TaggingCapabilities(
    ClaimsData,
    BuildsBackbone,
    HeadLoss,
    PlansPhases,
    BatchesTraining,
    HeadLoaders,
    JoinsOutputs,
    ClassWeighted,
    Served,
    PredictionText,
    ExportedGraph,
    Reported,
    Summarised,
):
    """Mixed into :class:`graft.tasks.tagging.task.TaggingTask` (which gives ``answers`` and
    its tags, ``_tags`` and ``_index``, and implements the capabilities listed here that this
    mixin does not: data told by content, its backbone, loss, phases, batches, word-feature
    loaders, joined outputs, its export's inputs and its summary)."""

    def class_weights(self, train: Any) -> Any:
        """Inverse tag frequency over the training words (``O`` is most of them), square-
        rooted: the full inverse would weigh a rare ``I-`` tag hundreds of times an ``O``."""
        import numpy as np

        from graft.training.imbalance import balanced_class_weights

        ids = np.array([self._index[tag] for tags in train.tags for tag in tags])
        return balanced_class_weights(ids, len(self._tags)).sqrt()

    def probabilities(self, outputs):
        raise ConfigError("a tagging model predicts entities, not class probabilities: predict()")

    def served_answers(self, outputs: dict, top_k: int) -> list[dict]:
        from graft.tasks.tagging.batches import text_of

        texts = [text_of(row) for row in outputs["characters"]]
        return [
            {"text": text, "entities": found}
            for text, found in zip(texts, self.answers(outputs), strict=True)
        ]

    def prediction_text(self, record: dict) -> str:
        shown = [
            f"{e['text']} {e['label']} [{e['start']}:{e['end']}] {e['score']:.3f}"
            for e in record["entities"]
        ]
        return "\n".join(shown) or "-"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        from graft.tasks.tagging.report import confusion_table, per_type_table

        tables = [per_type_table(metrics, title)]
        if metrics.get("type_confusion", {}).get("correct"):
            tables.append(confusion_table(metrics["type_confusion"], title))
        return tables

    @classmethod
    def report_sections(cls, metrics: dict, classes: Any, split: str, modality: str | None):
        from graft.tasks.tagging.report import tagging_sections

        return tagging_sections(metrics, split)

    @classmethod
    def overview(cls, record: dict) -> list[tuple[str, str]]:
        return [
            ("entity types", ", ".join(record.get("entity_types", []))),
            ("tag scheme of the training data", record.get("scheme", "IOB2")),
        ]
