"""Evaluation of a trained model: metrics from predictions and labels."""

from graft.evaluation.metrics import (
    classification_metrics,
    multilabel_metrics,
    regression_metrics,
    tune_thresholds,
)

__all__ = ["classification_metrics", "multilabel_metrics", "regression_metrics", "tune_thresholds"]
