"""Model selection: scoring frozen backbones for a target task before any training."""

from graft.selection.scores import h_score, knn_accuracy, leep, logme

__all__ = ["h_score", "knn_accuracy", "leep", "logme"]
