"""Target self-training: fit the target predictions to confident, class-balanced pseudo-labels,
and make them confident and diverse by information maximisation.

- Pseudo-labelling: Lee, "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method
  for Deep Neural Networks", ICML 2013 Workshops; class balance as in Zou, Yu, Kumar and Wang,
  "Unsupervised Domain Adaptation for Semantic Segmentation via Class-Balanced Self-Training",
  ECCV 2018: left alone, the class the source model favours takes most confident target rows
  and self-training amplifies the bias, so each class keeps at most its share.
- Information maximisation and clustered pseudo-labels: Liang, Hu and Feng, "Do We Really Need
  to Access the Source Data? Source Hypothesis Transfer for Unsupervised Domain Adaptation"
  (SHOT), ICML 2020, objective L = L_ent + L_div + beta * L_pseudo with beta = 0.3.

Both use the target logits only, so they adapt a trained model without any source data.
Pseudo-labels come either from the current batch's logits (refreshed at every step) or from a
periodic pass over the target data (:func:`select_pseudo_labels` or :func:`cluster_pseudo_labels`
on all target predictions), handed to the objective as ``DomainBatch.target_pseudo_labels``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from graft.adaptation.base import no_autocast
from graft.adaptation.objective import AdaptationObjective, DomainBatch

#: SHOT's weight of the pseudo-label loss against information maximisation.
SHOT_PSEUDO_LABEL_WEIGHT = 0.3


def select_pseudo_labels(
    probabilities: Tensor, threshold: float = 0.9, per_class: int | str | None = "equal"
) -> tuple[Tensor, Tensor]:
    """Confident, class-balanced pseudo-labels for rows of ``probabilities`` [m, C].

    A row is a candidate when its top probability is at least ``threshold``; its pseudo-label
    is that class. Each class then keeps only its most confident candidates, at most
    ``per_class`` of them: ``"equal"`` for an equal share ceil(m / C), an int for that many,
    None for no cap (plain confidence thresholding).

    Returns:
        ``(indices, labels)``: the chosen rows in ascending order [k] and their classes [k]
        (both int64, on the input's device).
    """
    if probabilities.ndim != 2 or probabilities.shape[1] < 1:
        raise ValueError(f"probabilities must be 2-d [rows, classes], got {probabilities.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a probability, in [0, 1], got {threshold}")
    m, num_classes = probabilities.shape
    if per_class == "equal":
        cap = math.ceil(m / num_classes)
    elif per_class is None or (isinstance(per_class, int) and per_class >= 0):
        cap = per_class
    else:
        raise ValueError(f"per_class must be 'equal', a count >= 0 or None, got {per_class!r}")
    confidence, prediction = probabilities.detach().max(dim=1)
    candidates = torch.nonzero(confidence >= threshold).squeeze(1)
    if cap is not None:
        candidates = candidates[
            _rank_within_class(confidence[candidates], prediction[candidates]) < cap
        ]
    indices = candidates.sort().values
    return indices, prediction[indices]


def _rank_within_class(confidence: Tensor, prediction: Tensor) -> Tensor:
    """Each row's rank [k] among the rows of its class, 0 for the most confident (ties broken by
    position)."""
    by_confidence = torch.argsort(confidence, descending=True, stable=True)
    order = by_confidence[torch.argsort(prediction[by_confidence], stable=True)]
    grouped = prediction[order]
    first = torch.searchsorted(grouped, grouped)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device) - first
    return rank


def cluster_pseudo_labels(features: Tensor, probabilities: Tensor, rounds: int = 1) -> Tensor:
    """SHOT's self-supervised pseudo-labels [N] for all target rows, from their features [N, d]
    and predictions [N, C]:

        c_k = sum_i p_ik f_i / sum_i p_ik,   y_i = argmin_k cos_dist(f_i, c_k),

    then ``rounds`` times again with the centroids of the hard labels (p_ik = [y_i = k]).
    Features get a constant 1 appended and are L2-normalised, and only classes that some row
    predicts are candidates, as in the authors' code. Labelling by the nearest centroid,
    rather than by each row's own prediction, corrects predictions that the domain shift bent.
    """
    if features.ndim != 2 or probabilities.ndim != 2 or len(features) != len(probabilities):
        raise ValueError(
            f"features [N, d] and probabilities [N, C] must match, got {tuple(features.shape)} "
            f"and {tuple(probabilities.shape)}"
        )
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    features = features.detach().double()
    weights = probabilities.detach().double()
    ones = torch.ones(len(features), 1, dtype=features.dtype, device=features.device)
    features = F.normalize(torch.cat([features, ones], dim=1), dim=1)
    present = torch.unique(weights.argmax(dim=1))
    for _ in range(rounds + 1):
        centroids = weights.T @ features / (weights.sum(dim=0)[:, None] + 1e-8)
        similarity = features @ F.normalize(centroids[present], dim=1).T
        labels = present[similarity.argmax(dim=1)]
        weights = F.one_hot(labels, probabilities.shape[1]).to(features.dtype)
    return labels


def information_maximization_loss(logits: Tensor) -> Tensor:
    """SHOT's information-maximisation loss of target logits [m, C], in nats:

        L_IM = L_ent + L_div = 1/m sum_i H(p_i) - H(1/m sum_i p_i),

    confident predictions (low mean entropy) that spread over the classes (high entropy of the
    mean). It is minus :func:`graft.adaptation.validation.information_maximization`, the
    label-free score that chooses graft's adapted checkpoints, here differentiable and computed
    from log-probabilities so that saturated softmax outputs give no NaN gradient.
    """
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be 2-d [rows, classes], got shape {tuple(logits.shape)}")
    with no_autocast(logits):
        log_p = torch.log_softmax(logits.float(), dim=1)
        mean_entropy = -(log_p.exp() * log_p).sum(dim=1).mean()
        log_mean = torch.logsumexp(log_p, dim=0) - math.log(len(log_p))
        return mean_entropy + (log_mean.exp() * log_mean).sum()


class InformationMaximizationLoss(AdaptationObjective):
    """Information maximisation (SHOT, Liang et al., ICML 2020) as an objective:
    ``forward(batch)`` is :func:`information_maximization_loss` of ``batch.target_logits``,

        L_IM = 1/m sum_i H(p_i) - H(mean_i p_i).

    Uses target data only (``source_free``). Without source labels it can only be trusted
    from a model that already classifies the target fairly well: it sharpens what is there.

    Example:
        >>> loss = InformationMaximizationLoss()
        >>> value = loss(DomainBatch(target_features=torch.randn(32, 64),
        ...                          target_logits=torch.randn(32, 10)))
    """

    name = "im"
    source_free = True

    def forward(self, batch: DomainBatch) -> Tensor:
        return information_maximization_loss(batch.target_logits)


class PseudoLabelLoss(AdaptationObjective):
    """Self-training on confident, class-balanced target pseudo-labels:

        L = 1/m sum_{i in S} CE(z_i^t, y_i),

    with S and y from ``batch.target_pseudo_labels`` when given (rows with -1 left out), else
    from :func:`select_pseudo_labels` of the batch's own softmax predictions (detached), so
    refreshed at every step. Dividing by the whole batch, not |S|, lets the loss grow as
    predictions become confident. After each call :attr:`selected_fraction` holds |S| / m.

    Args:
        threshold: the confidence a prediction needs to become a pseudo-label.
        per_class: the cap per class of :func:`select_pseudo_labels`.

    Example:
        >>> loss = PseudoLabelLoss(threshold=0.8)
        >>> value = loss(DomainBatch(target_features=torch.randn(32, 64),
        ...                          target_logits=4 * torch.randn(32, 10)))
    """

    name = "pseudo-label"
    source_free = True

    def __init__(self, threshold: float = 0.9, per_class: int | str | None = "equal") -> None:
        super().__init__()
        select_pseudo_labels(torch.ones(1, 1), threshold, per_class)  # checks the options
        self.threshold, self.per_class = threshold, per_class
        self.selected_fraction: float | None = None

    def forward(self, batch: DomainBatch) -> Tensor:
        logits = batch.target_logits
        if batch.target_pseudo_labels is not None:
            indices = torch.nonzero(batch.target_pseudo_labels >= 0).squeeze(1)
            labels = batch.target_pseudo_labels[indices].long()
        else:
            probabilities = torch.softmax(logits.detach().float(), dim=1)
            indices, labels = select_pseudo_labels(probabilities, self.threshold, self.per_class)
        self.selected_fraction = len(indices) / len(logits)
        with no_autocast(logits):
            chosen = logits[indices].float()
            return F.cross_entropy(chosen, labels, reduction="sum") / len(logits)
