"""Metrics of each task from a head's outputs and labels, computed with torchmetrics."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional import (
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
    multilabel_exact_match,
    multilabel_f1_score,
    multilabel_precision,
    multilabel_recall,
)

#: Equal-width confidence bins of the reliability diagram and the expected calibration error.
CALIBRATION_BINS = 10
#: How many of the most confidently wrong examples the metrics keep (for the report).
CONFIDENT_ERRORS = 8


def classification_metrics(
    logits: torch.Tensor,
    labels: torch.Tensor,
    classes: list[str],
    items: list[str] | None = None,
) -> dict:
    """Accuracy, macro-F1, per-class precision, recall and F1, the confusion matrix, the
    calibration of the top-class probability and, with ``items``, the most confidently wrong.

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
        "calibration": calibration(logits, labels),
        **({"confident_errors": confident_errors(logits, labels, classes, items)} if items else {}),
    }


def calibration(logits: torch.Tensor, labels: torch.Tensor, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error (Guo et al., ICML 2017: the count-weighted mean gap between
    accuracy and mean confidence over equal-width bins of the top-class probability) and the
    reliability diagram's bins (mean confidence, accuracy and count of each), the same bins
    for both."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    probabilities = torch.softmax(logits.float(), dim=-1)
    confidence, predicted = probabilities.max(dim=-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    index = torch.bucketize(confidence, edges[1:-1], right=True)  # bin k: [edge k, edge k+1)
    # (a confidence of exactly 1, common for saturated softmax, falls in the last bin)
    rows = []
    for k in range(bins):
        members = index == k
        count = int(members.sum())
        rows.append(
            {
                "low": round(float(edges[k]), 4),
                "high": round(float(edges[k + 1]), 4),
                "count": count,
                "confidence": round(float(confidence[members].mean()), 6) if count else None,
                "accuracy": round(float(correct[members].mean()), 6) if count else None,
            }
        )
    total = max(1, len(labels))
    ece = sum(
        float(members.sum())
        / total
        * abs(float(correct[members].mean() - confidence[members].mean()))
        for members in (index == k for k in range(bins))
        if members.any()
    )
    return {"ece": round(float(ece), 6), "bins": rows}


def confident_errors(
    logits: torch.Tensor,
    labels: torch.Tensor,
    classes: list[str],
    items: list[str],
    count: int = CONFIDENT_ERRORS,
) -> list[dict]:
    """The ``count`` wrong predictions made with the highest probability, most confident first:
    the input (a path, or a text cut to 500 characters), its label, the prediction and its
    probability."""
    probabilities = torch.softmax(logits.float(), dim=-1)
    confidence, predicted = probabilities.max(dim=-1)
    wrong = torch.nonzero(predicted != torch.as_tensor(labels)).flatten()
    order = wrong[torch.argsort(confidence[wrong], descending=True)][:count]
    return [
        {
            "item": items[i][:500],
            "label": classes[int(labels[i])],
            "predicted": classes[int(predicted[i])],
            "probability": round(float(confidence[i]), 6),
        }
        for i in order.tolist()
    ]


def multilabel_metrics(
    probabilities: torch.Tensor, labels: torch.Tensor, classes: list[str], thresholds
) -> dict:
    """Micro- and macro-F1, subset accuracy (every label of an example right) and per-label
    precision, recall, F1 and support, with label ``j`` predicted when its probability is at
    least ``thresholds[j]``."""
    n = len(classes)
    labels = torch.as_tensor(labels).int()
    predicted = (probabilities >= torch.as_tensor(thresholds, dtype=probabilities.dtype)).int()
    options = dict(num_labels=n)
    per_label = {
        "precision": multilabel_precision(predicted, labels, average=None, **options),
        "recall": multilabel_recall(predicted, labels, average=None, **options),
        "f1": multilabel_f1_score(predicted, labels, average=None, **options),
    }
    support = labels.sum(dim=0)
    return {
        "micro_f1": float(multilabel_f1_score(predicted, labels, average="micro", **options)),
        "macro_f1": float(multilabel_f1_score(predicted, labels, average="macro", **options)),
        "subset_accuracy": float(multilabel_exact_match(predicted, labels, **options)),
        "num_examples": int(len(labels)),
        "per_class": {
            name: {
                **{metric: round(float(values[j]), 6) for metric, values in per_label.items()},
                "support": int(support[j]),
                "threshold": round(float(thresholds[j]), 6),
            }
            for j, name in enumerate(classes)
        },
    }


def tune_thresholds(
    probabilities: np.ndarray, labels: np.ndarray, grid: np.ndarray | None = None
) -> np.ndarray:
    """Per label, the threshold on ``grid`` (0.05 to 0.95) with the best F1 on these examples.

    Ties go to the threshold nearest 0.5; a label with no positive example keeps 0.5.
    """
    grid = np.round(np.linspace(0.05, 0.95, 19), 2) if grid is None else grid
    by_closeness = grid[np.argsort(np.abs(grid - 0.5), kind="stable")]
    thresholds = np.full(labels.shape[1], 0.5)
    for j in range(labels.shape[1]):
        truth = labels[:, j] > 0.5
        if not truth.any():
            continue
        predicted = probabilities[:, j][None, :] >= by_closeness[:, None]
        true_positives = (predicted & truth).sum(axis=1)
        f1 = 2 * true_positives / (predicted.sum(axis=1) + truth.sum())
        thresholds[j] = by_closeness[int(np.argmax(f1))]
    return thresholds


def regression_metrics(predictions: torch.Tensor, targets: torch.Tensor) -> dict:
    """Mean squared error, its root, mean absolute error and R², in the target's units."""
    predictions = torch.as_tensor(predictions, dtype=torch.float64)
    targets = torch.as_tensor(targets, dtype=torch.float64)
    mse = float(mean_squared_error(predictions, targets))
    return {
        "mse": mse,
        "rmse": mse**0.5,
        "mae": float(mean_absolute_error(predictions, targets)),
        "r2": float(r2_score(predictions, targets)) if len(targets) > 1 else None,
        "num_examples": int(len(targets)),
    }


def top_k_pairs(chances: np.ndarray, classes: list[str], k: int) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable ``(class, probability)`` pairs of each row of ``chances``."""
    import numpy as np

    order = np.argsort(-chances, axis=1)[:, :k]
    return [
        [(classes[j], float(row[j])) for j in idx] for row, idx in zip(chances, order, strict=True)
    ]
