"""Evaluation of a trained model: metrics from predictions and labels."""

from graft.evaluation.metrics import classification_metrics

__all__ = ["classification_metrics"]
