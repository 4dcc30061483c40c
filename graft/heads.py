"""The new head grafted onto a backbone's features: one task's, or one per task."""

from __future__ import annotations

import torch
from torch import nn


class ClassificationHead(nn.Module):
    """Dropout then a linear layer from ``feature_dim`` features to ``num_classes`` logits."""

    def __init__(self, feature_dim: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(feature_dim, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))


class MultiTaskHead(nn.Module):
    """One :class:`ClassificationHead` per task on the shared features, after one dropout
    they share; ``forward`` returns each task's outputs by task name.

    Args:
        feature_dim: width of the backbone's features.
        outputs: task name -> its number of outputs (classes, labels, or 1 for regression).
        dropout: probability of the shared dropout.
    """

    def __init__(self, feature_dim: int, outputs: dict[str, int], dropout: float = 0.2):
        super().__init__()
        self.feature_dim = feature_dim
        self.names = list(outputs)
        self.dropout = nn.Dropout(dropout)
        # a list, not a ModuleDict: a column name may hold dots or shadow a module attribute
        self.heads = nn.ModuleList(
            ClassificationHead(feature_dim, count, dropout=0.0) for count in outputs.values()
        )

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.dropout(features)
        return {name: head(shared) for name, head in zip(self.names, self.heads, strict=True)}
