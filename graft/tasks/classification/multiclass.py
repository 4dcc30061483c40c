"""One class per input: softmax over the classes, cross-entropy, accuracy.

The loss takes class weights (``--class-weights auto``) and label smoothing while training, and
soft targets when mixup or cutmix mixed the batch. The validation split is stratified by class.
Metrics: accuracy, macro-F1, per-class precision, recall and F1, the confusion matrix, the
calibration of the top-class probability and the most confidently wrong examples
(:func:`graft.evaluation.classification_metrics`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graft.tasks.base import MetricsTable
from graft.tasks.capabilities import ClassWeighted, Reported, SingleLabel, StartsHead
from graft.tasks.classification.label_column import LabelColumnTask

if TYPE_CHECKING:
    import numpy as np
    import torch

    from graft.config import FitConfig
    from graft.data import LabelledData


class MulticlassTask(SingleLabel, ClassWeighted, Reported, StartsHead, LabelColumnTask):
    """One class per input (see the module docstring)."""

    kind = "multiclass"
    headline = "accuracy"
    split_kind = "stratified"

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        return None  # class weights and balanced sampling are for classes

    @classmethod
    def split(cls, data: LabelledData, val_fraction: float, seed: int):
        from graft.data import stratified_split

        return stratified_split(data, val_fraction, seed)

    def start_head(self, head: Any, backbone: Any, config: FitConfig) -> bool:
        """With ``--head-init labels``, the zero-shot classifier of the class names (or of
        ``--label-descriptions``) on the text backbone (:mod:`graft.label_prompts`)."""
        from graft.tasks.classification.zero_shot_head import start_from_class_names

        return start_from_class_names(head, backbone, self.classes, config)

    def class_weights(self, train: LabelledData) -> torch.Tensor:
        """Inverse class frequency (:func:`graft.training.imbalance.balanced_class_weights`)."""
        from graft.training.imbalance import balanced_class_weights

        return balanced_class_weights(train.labels, len(self.classes))

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        import torch.nn.functional as F

        return F.cross_entropy(
            outputs, targets, weight=class_weights, label_smoothing=label_smoothing
        )

    def validation_metrics(self):
        return self.score_metric(), self.score_metric()

    def score_metric(self):
        from torchmetrics.classification import MulticlassAccuracy

        return MulticlassAccuracy(num_classes=self.outputs, average="micro")

    def probabilities(self, outputs: torch.Tensor) -> np.ndarray:
        import torch

        return torch.softmax(outputs, dim=-1).numpy()

    def answers(self, outputs: torch.Tensor) -> list[str]:
        return [self.classes[i] for i in self.probabilities(outputs).argmax(axis=1)]

    def ranked(self, outputs: torch.Tensor, top_k: int) -> list[list[tuple[str, float]]]:
        """The ``top_k`` most probable ``(class, probability)`` pairs of each input."""
        from graft.evaluation.metrics import top_k_pairs

        return top_k_pairs(self.probabilities(outputs), self.classes, top_k)

    def prediction_records(self, outputs: torch.Tensor, top_k: int) -> list[dict]:
        pairs = self.ranked(outputs, min(top_k, len(self.classes)))
        return [{"predictions": answer_list(row)} for row in pairs]

    def served_answers(self, outputs: torch.Tensor, top_k: int) -> list[list[dict]]:
        return [ranked_answers(self.classes, row)[:top_k] for row in self.probabilities(outputs)]

    def metrics(self, outputs: torch.Tensor, data: LabelledData) -> dict:
        import torch

        from graft.evaluation import classification_metrics

        labels = torch.as_tensor(data.labels)
        return classification_metrics(outputs, labels, data.classes, data.items)

    def describe(self) -> str:
        return f"{len(self.classes)} classes"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: list[str], title: str) -> list[MetricsTable]:
        summary = f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"
        return [per_class_table(metrics, classes, title, summary, ("class",))]

    @classmethod
    def report_sections(cls, metrics: dict, classes: Any, split: str, modality: str | None):
        from graft.tasks.classification.report import classification_sections

        return classification_sections(metrics, classes, split, modality)


def answer_list(pairs: list[tuple[str, float]]) -> list[dict]:
    """``(label, probability)`` pairs as the answers ``graft predict`` and ``graft serve``
    give: ``{"label": ..., "probability": ...}`` rounded to 6 digits."""
    return [{"label": label, "probability": round(p, 6)} for label, p in pairs]


def ranked_answers(classes: list[str], chances: np.ndarray) -> list[dict]:
    """Every class with its probability (rounded to 6 digits), most probable first."""
    answers = (
        {"label": label, "probability": round(float(p), 6)}
        for label, p in zip(classes, chances, strict=True)
    )
    return sorted(answers, key=lambda answer: -answer["probability"])


def per_class_table(
    metrics: dict, classes: list[str], title: str, summary: str, extra: tuple[str, ...]
) -> MetricsTable:
    """Per-class precision, recall, F1 and support (a multi-label table adds thresholds)."""
    name = extra[0]
    columns = [*extra, "precision", "recall", "F1", "support"]
    table = MetricsTable(
        f"{title}: {summary} ({metrics['num_examples']} examples)", columns, left=(name,)
    )
    for label in classes:
        row = metrics["per_class"][label]
        threshold = [f"{row['threshold']:.2f}"] if "threshold" in extra else []
        table.rows.append(
            [
                label,
                *threshold,
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            ]
        )
    return table
