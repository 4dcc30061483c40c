"""Any number of labels per input: a sigmoid per label, binary cross-entropy, micro-F1.

Each label's decision threshold is tuned on the validation data after training, to the one of
best F1 on a grid from 0.05 to 0.95 (0.5 for a label with no positive validation example;
:func:`graft.evaluation.tune_thresholds`), and saved with the run: a label is predicted when its
probability is at least its threshold. Metrics: micro- and macro-F1, subset accuracy and
per-label precision, recall, F1, support and threshold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from graft.tasks.base import MetricsTable
from graft.tasks.capabilities import ExportedGraph, Tuned
from graft.tasks.classification.label_column import LabelColumnTask
from graft.tasks.classification.multiclass import answer_list, per_class_table, ranked_answers

if TYPE_CHECKING:
    import torch

    from graft.data import LabelledData


class MultilabelTask(Tuned, ExportedGraph, LabelColumnTask):
    """Several labels per input (see the module docstring).

    Attributes:
        thresholds: each label's decision threshold (0.5 until tuned).
    """

    kind = "multilabel"
    headline = "micro_f1"

    def __init__(
        self,
        classes: list[str],
        label_delimiter: str | None = None,
        thresholds: np.ndarray | None = None,
    ):
        super().__init__(classes, label_delimiter)
        self.thresholds = (
            np.full(len(classes), 0.5)
            if thresholds is None
            else np.asarray(thresholds, dtype=np.float64)
        )

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype))

    def score_metric(self):
        from torchmetrics.classification import MultilabelF1Score

        return MultilabelF1Score(num_labels=self.outputs, average="micro")

    def score_inputs(self, outputs, targets):
        import torch

        return torch.sigmoid(outputs), targets.int()

    def probabilities(self, outputs: torch.Tensor) -> np.ndarray:
        import torch

        return torch.sigmoid(outputs).numpy()

    def answers(self, outputs: torch.Tensor) -> list[list[str]]:
        chosen = self.probabilities(outputs) >= self.thresholds
        return [[self.classes[j] for j in np.flatnonzero(row)] for row in chosen]

    def ranked(self, outputs: torch.Tensor) -> list[list[tuple[str, float]]]:
        """Every label at or above its threshold with its probability, most probable first."""
        threshold = dict(zip(self.classes, self.thresholds, strict=True))
        ranked = []
        for row in self.probabilities(outputs):
            pairs = sorted(
                ((self.classes[j], float(p)) for j, p in enumerate(row)), key=lambda x: -x[1]
            )
            ranked.append([(label, p) for label, p in pairs if p >= threshold[label]])
        return ranked

    def prediction_records(self, outputs: torch.Tensor, top_k: int) -> list[dict]:
        return [{"predictions": answer_list(row)} for row in self.ranked(outputs)]

    def served_answers(self, outputs: torch.Tensor, top_k: int) -> list[list[dict]]:
        """The ``top_k`` most probable labels and every label at or above its threshold, each
        with its probability, threshold and whether it is ``predicted``."""
        index = {label: j for j, label in enumerate(self.classes)}
        answers = []
        for row in self.probabilities(outputs):
            ranked = []
            for answer in ranked_answers(self.classes, row):
                j = index[answer["label"]]
                threshold = float(self.thresholds[j])
                predicted = bool(row[j] >= threshold)  # as ranked() and answers() decide
                ranked.append({**answer, "threshold": threshold, "predicted": predicted})
            answers.append([a for i, a in enumerate(ranked) if i < top_k or a["predicted"]])
        return answers

    def tune(self, outputs: torch.Tensor, data: LabelledData) -> None:
        """Each label's threshold: the one with the best F1 on the validation data."""
        from graft.evaluation import tune_thresholds

        self.thresholds = tune_thresholds(self.probabilities(outputs), data.labels)

    def metrics(self, outputs: torch.Tensor, data: LabelledData) -> dict:
        import torch

        from graft.evaluation import multilabel_metrics

        labels = torch.as_tensor(data.labels)
        return multilabel_metrics(torch.sigmoid(outputs), labels, data.classes, self.thresholds)

    def describe(self) -> str:
        return f"{len(self.classes)} labels"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: list[str], title: str) -> list[MetricsTable]:
        summary = (
            f"micro-F1 {metrics['micro_f1']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
            f"subset accuracy {metrics['subset_accuracy']:.4f}"
        )
        return [per_class_table(metrics, classes, title, summary, ("label", "threshold"))]

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "label_delimiter": self.label_delimiter,
            "thresholds": [float(t) for t in self.thresholds],
        }

    def export_record(self) -> dict:
        return {"kind": self.kind, "thresholds": [float(t) for t in self.thresholds]}

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> MultilabelTask:
        return cls(list(labels), record.get("label_delimiter"), record.get("thresholds"))
