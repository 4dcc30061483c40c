"""Classification metrics from logits and labels, computed with torchmetrics."""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision, recall and F1, and the confusion matrix.

    The confusion matrix has true classes as rows and predicted classes as columns.
    """
    n = len(classes)
    labels = torch.as_tensor(labels, dtype=torch.long)
    options = dict(num_classes=n)
    per_class = {
        "precision": multiclass_precision(logits, labels, average=None, **options),
        "recall": multiclass_recall(logits, labels, average=None, **options),
        "f1": multiclass_f1_score(logits, labels, average=None, **options),
    }
    support = torch.bincount(labels, minlength=n)
    return {
        "accuracy": float(multiclass_accuracy(logits, labels, average="micro", **options)),
        "macro_f1": float(multiclass_f1_score(logits, labels, average="macro", **options)),
        "num_examples": int(len(labels)),
        "per_class": {
            name: {
                **{metric: round(float(values[i]), 6) for metric, values in per_class.items()},
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": multiclass_confusion_matrix(logits, labels, **options).tolist(),
    }
