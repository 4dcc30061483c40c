"""The losses of a similarity fit, as sentence-transformers defines them.

- :func:`multiple_negatives_ranking`: each query's positive against every other positive and
  negative of the batch (in-batch negatives), cross-entropy over cosine similarities times
  ``scale`` (20);
- :func:`cosine`: the squared error between a pair's cosine similarity and its score;
- :func:`in_batch_with_repeats`: in-batch negatives on given logits where one positive may be
  several pairs' (recommendation: a popular item is the next item of several users).
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


def in_batch_with_repeats(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multiple-negatives ranking of each user's next item among the batch's next items; an
    item that is the next item of several pairs is no negative of them."""
    same = (targets[:, None] == targets[None, :]) & ~torch.eye(
        len(targets), dtype=torch.bool, device=targets.device
    )
    logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(targets), device=logits.device))
