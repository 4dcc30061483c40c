"""The losses of a similarity fit, as sentence-transformers defines them.

- :func:`multiple_negatives_ranking`: each query's positive against every other positive and
  negative of the batch (in-batch negatives), cross-entropy over cosine similarities times
  ``scale`` (20);
- :func:`cosine`: the squared error between a pair's cosine similarity and its score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multiple_negatives_ranking(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    scale: float = 20.0,
) -> torch.Tensor:
    """The mean cross-entropy of each anchor choosing its positive among the batch's positives
    and negatives (normalised embeddings, one row per pair)."""
    candidates = positives if negatives is None else torch.cat([positives, negatives])
    logits = scale * anchors @ candidates.T
    return F.cross_entropy(logits, torch.arange(len(anchors), device=anchors.device))


def cosine(anchors: torch.Tensor, others: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """The mean squared error of each pair's cosine similarity against its score."""
    return F.mse_loss((anchors * others).sum(-1), scores.to(anchors.dtype))
