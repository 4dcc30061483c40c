"""Class imbalance: inverse-frequency loss weights and a class-balanced sampler.

Both make the minority classes count as much as the majority ones: the weights in the loss
(``--class-weights auto``: ``n / (k * n_c)`` for class ``c``, scikit-learn's "balanced"), the
sampler in the data order (``--sampler balanced``: each example drawn with probability
proportional to ``1 / n_c``, with replacement, so every class is seen equally often).
"""

from __future__ import annotations

import numpy as np
import torch

from graft.training.sampling import EpochSampler


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """``n / (k * n_c)`` for each class ``c`` present; absent classes get weight 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def balanced_sampler(labels: np.ndarray, seed: int) -> EpochSampler:
    """Draws ``len(labels)`` examples with replacement, every class equally likely."""
    counts = np.bincount(labels)
    weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.double)
    return EpochSampler(len(labels), seed, weights)
