"""Label-free scores of a model's predictions on target data, to choose a checkpoint (or a
hyperparameter) of domain adaptation without any target label.

Both take the softmax probabilities [n, C] of the n target examples, compute in float64 and
return a Python float. Bad input (not 2-d, no rows, values that are not finite, rows that are
not probabilities) raises :class:`graft.errors.DataError`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from graft.errors import ConfigError, DataError

#: Upper bound on the similarity entries (rows x n) that soft neighbourhood density holds at once.
_SND_MAX_BLOCK = 1 << 22


def _probabilities(value: Any) -> Tensor:
    """A float64 tensor [n, C] of probabilities: finite, non-negative, rows summing to 1."""
    if isinstance(value, Tensor):
        value = value.detach()
        if value.device.type == "mps":  # no float64 there
            value = value.cpu()
    try:
        p = torch.as_tensor(value).to(torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise DataError(f"probabilities must be a numeric array: {error}") from None
    if p.ndim != 2:
        raise DataError(
            f"probabilities must be 2-d [examples, classes], got shape {tuple(p.shape)}"
        )
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise DataError(f"probabilities have no rows or no columns (shape {tuple(p.shape)})")
    if not torch.isfinite(p).all():
        raise DataError("probabilities contain NaN or infinite values")
    if (p < 0).any():
        raise DataError("probabilities have negative entries; pass softmax outputs, not logits")
    row_sums = p.sum(dim=1)
    worst = int(torch.argmax((row_sums - 1).abs()))
    if abs(float(row_sums[worst]) - 1.0) > 1e-3:
        raise DataError(
            f"probabilities row {worst} sums to {float(row_sums[worst]):.6g}, not 1; "
            "pass softmax outputs, not logits"
        )
    return p


def prediction_entropy(probabilities: Any) -> float:
    """The mean Shannon entropy of the predictions, in nats:

        H = -1/n sum_i sum_c p_ic log p_ic    (0 log 0 = 0),

    between 0 (every prediction one-hot) and log C (every prediction uniform); lower is more
    confident. Used to select adapted models without target labels by Morerio, Cavazza and
    Murino, "Minimal-Entropy Correlation Alignment for Unsupervised Deep Domain Adaptation",
    ICLR 2018. Confidence alone can reward a collapsed model; prefer
    :func:`information_maximization` to choose, and report this beside it.

    Args:
        probabilities: [n, C] softmax outputs on the target examples (tensor or array).
    """
    p = _probabilities(probabilities)
    return float(torch.special.entr(p).sum(dim=1).mean())


def information_maximization(probabilities: Any) -> float:
    """The mutual information between the target examples and their predicted class, in nats;
    higher is better:

        IM = H(mean_i p_i) - 1/n sum_i H(p_i),

    the entropy of the mean prediction (high when the predictions spread over the classes)
    minus the mean entropy of each prediction (low when each is confident). It is the
    information-maximisation objective of Gomes, Krause and Perona, "Discriminative Clustering
    by Regularized Information Maximization", NeurIPS 2010, which Liang, Hu and Feng adapt to
    target data in SHOT ("Do We Really Need to Access the Source Data?", ICML 2020). As a
    checkpoint score it is between 0 and log C, and 0 for a collapsed model (one class for every
    example, or uniform predictions), the failure that entropy alone and soft neighbourhood
    density both reward: an adversarial or MMD loss can collapse the features, every
    prediction becomes the same, and SND reaches its maximum log(n - 1).

    Args:
        probabilities: [n, C] softmax outputs on the target examples (tensor or array).
    """
    p = _probabilities(probabilities)
    marginal = torch.special.entr(p.mean(dim=0)).sum()
    return float(marginal - torch.special.entr(p).sum(dim=1).mean())


def soft_neighborhood_density(probabilities: Any, temperature: float = 0.05) -> float:
    """Soft neighbourhood density (SND) of the target predictions; higher is better.

    Saito, Kim, Teterwak, Sclaroff, Darrell and Saenko, "Tune it the Right Way: Unsupervised
    Validation of Domain Adaptation via Soft Neighborhood Density", ICCV 2021. With p_i the
    L2-normalised prediction of example i and s_ij = p_i . p_j the cosine similarity,

        q_ij = exp(s_ij / T) / sum_{k != i} exp(s_ik / T)   (j != i),
        SND  = 1/n sum_i -sum_{j != i} q_ij log q_ij,

    the mean entropy of each example's soft neighbour distribution: high when the predictions
    form dense clusters (each example has many near neighbours), as they do when a model
    adapted well. It also peaks (at log(n - 1)) when every prediction is the same, so a collapsed
    model scores best: graft reports it and chooses by :func:`information_maximization`. The
    example itself is left out exactly (the authors' code approximates this
    by filling s_ii with a large negative value before the softmax). Similarities are computed
    a block of rows at a time, so memory stays small for tens of thousands of examples; they
    stay on the input's device (float64 is not available on Apple's MPS, so the CPU there).

    Args:
        probabilities: [n, C] softmax outputs on the target examples (n >= 2).
        temperature: T, the softmax temperature (the paper's 0.05).

    Returns:
        SND (a float between 0 and log(n - 1)).
    """
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    p = _probabilities(probabilities)
    n = p.shape[0]
    if n < 2:
        raise DataError(
            f"soft neighbourhood density compares each prediction with the others: it needs at "
            f"least 2 rows, got {n}"
        )
    normalised = torch.nn.functional.normalize(p, dim=1)
    block = max(1, min(n, _SND_MAX_BLOCK // n))
    total = torch.zeros((), dtype=torch.float64, device=p.device)
    for start in range(0, n, block):
        rows = normalised[start : start + block]
        logits = rows @ normalised.T / temperature
        index = torch.arange(rows.shape[0], device=p.device)
        logits[index, start + index] = float("-inf")
        q = torch.softmax(logits, dim=1)
        total = total + torch.special.entr(q).sum()
    return float(total / n)
