"""Contrastive losses for few-shot fine-tuning of a backbone on labelled examples.

- :func:`cosine_pair_loss`: SetFit's objective on pairs (Tunstall et al., 2022), the
  sentence-transformers ``CosineSimilarityLoss``.
- :func:`batch_pair_loss`: the same regression on every pair of a batch of labelled
  embeddings, each example encoded once.
- :func:`supcon_loss`: the supervised contrastive loss (Khosla et al., "Supervised Contrastive
  Learning", NeurIPS 2020), for augmented views of images or for texts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cosine_pair_loss(u: torch.Tensor, v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean squared error between the cosine similarity of each pair and its target.

    With ``cos(a, b) = a·b / (|a| |b|)`` and ``y_k`` the target of pair k (1 same class, 0
    different classes)::

        L = 1/B * sum_k (cos(u_k, v_k) - y_k)^2

    SetFit (Tunstall et al., "Efficient Few-Shot Learning Without Prompts", 2022) fine-tunes a
    sentence encoder with this loss on pairs from :func:`graft.fewshot.pairs.contrastive_pairs`.

    Args:
        u, v: ``[B, d]`` embeddings of the first and second example of each pair.
        target: ``[B]`` similarity targets.

    Returns:
        The loss, a scalar.

    Example:
        >>> u = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> v = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
        >>> float(cosine_pair_loss(u, v, torch.tensor([1.0, 0.0])))
        0.0
    """
    similarity = F.cosine_similarity(u.float(), v.float(), dim=-1)
    return F.mse_loss(similarity, target.to(similarity.dtype))


def batch_pair_loss(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """:func:`cosine_pair_loss` on every pair of distinct examples of a batch, positives and
    negatives weighted equally.

    With ``s_ij`` the cosine similarity of examples i and j, P the pairs (i < j) of the same
    class and N those of different classes::

        L = 1/2 * ( 1/|P| * sum_P (s_ij - 1)^2  +  1/|N| * sum_N s_ij^2 )

    (a batch without positives, or without negatives, keeps the other term alone). SetFit
    encodes both members of every pair, twice per pair; here each example is encoded once and
    a batch of n examples gives n(n-1)/2 pairs, so the same pairs cost about n times less
    computation. The equal weights are SetFit's balancing of positives against negatives.

    Args:
        features: ``[N, d]`` embeddings.
        labels: ``[N]`` class indices.

    Returns:
        The loss, a scalar (0 with a gradient for a batch of one example).

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
        >>> float(batch_pair_loss(z, torch.tensor([0, 0, 1])))
        0.0
    """
    z = F.normalize(features.float(), dim=-1)
    similarity = z @ z.T
    labels = labels.to(z.device)
    upper = torch.ones_like(similarity, dtype=torch.bool).triu(diagonal=1)
    same = labels[:, None] == labels[None, :]
    terms = [
        ((similarity[mask] - target) ** 2).mean()
        for mask, target in ((upper & same, 1.0), (upper & ~same, 0.0))
        if mask.any()
    ]
    return torch.stack(terms).mean() if terms else z.sum() * 0.0


class CosinePairLoss(nn.Module):
    """:func:`cosine_pair_loss` as a module."""

    def forward(self, u: torch.Tensor, v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cosine_pair_loss(u, v, target)


def supcon_loss(
    features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """The supervised contrastive loss of a batch of labelled embeddings (SupCon, L_out).

    Every view of every example is an anchor i; with z the L2-normalised embeddings, A(i) all
    other views in the batch, P(i) those of A(i) with i's label, and t the temperature::

        L = 1/|I| * sum_{i in I} -1/|P(i)| * sum_{p in P(i)}
                log( exp(z_i·z_p / t) / sum_{a in A(i)} exp(z_i·z_a / t) )

    averaged over the anchors I that have at least one positive (an example alone in its class
    with a single view has nothing to be pulled towards, and is only a negative for the
    others). Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020 (their t = 0.1);
    their reference code's extra factor ``t / base_t`` is 1 here.

    Args:
        features: ``[N, d]`` (one view per example: texts, whose dropout differs per pass) or
            ``[N, V, d]`` (V augmented views per example).
        labels: ``[N]`` class indices.
        temperature: t > 0.

    Returns:
        The loss, a scalar (0 with a gradient when no anchor has a positive).

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
        >>> y = torch.tensor([0, 0, 1, 1])
        >>> bool(supcon_loss(z, y) < supcon_loss(z, torch.tensor([0, 1, 0, 1])))
        True
    """
    if features.dim() == 2:
        features = features.unsqueeze(1)
    n, views, _ = features.shape
    z = F.normalize(features.float().transpose(0, 1).reshape(n * views, -1), dim=-1)
    anchor_labels = labels.to(z.device).repeat(views)
    logits = (z @ z.T) / temperature
    itself = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_probability = (
        logits - torch.logsumexp(logits.masked_fill(itself, float("-inf")), dim=1)[:, None]
    )
    positive = (anchor_labels[:, None] == anchor_labels[None, :]) & ~itself
    counts = positive.sum(1)
    has_positive = counts > 0
    if not has_positive.any():
        return z.sum() * 0.0
    mean_positive = (log_probability * positive).sum(1)[has_positive] / counts[has_positive]
    return -mean_positive.mean()


class SupConLoss(nn.Module):
    """:func:`supcon_loss` at a fixed ``temperature``."""

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = temperature

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return supcon_loss(features, labels, self.temperature)
