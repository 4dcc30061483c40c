"""The new head grafted onto a backbone's features."""

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
