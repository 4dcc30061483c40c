"""MCC: minimise how much the target predictions confuse one class with another.

Jin, Wang, Long and Wang, "Minimum Class Confusion for Versatile Domain Adaptation", ECCV 2020.

A classifier trained on the source is uncertain between a few similar classes on target
examples. MCC measures that confusion from the target logits alone, as the weighted co-occurrence
of each pair of classes across the batch's predictions, and minimises its off-diagonal part.
It needs no source data and no extra network, so it also regularises other methods (CDAN +
MCC in the paper) and adapts without source data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from graft.adaptation.base import no_autocast
from graft.adaptation.cdan import certainty_weights
from graft.adaptation.objective import AdaptationObjective, DomainBatch

#: The paper's temperature, as in the Transfer-Learning-Library's MCC example.
DEFAULT_TEMPERATURE = 2.5


def class_confusion(logits: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """MCC's category-normalised class-confusion matrix [C, C] of a target batch [m, C]:

        p_i = softmax(z_i / T),  w_i = m (1 + exp(-H(p_i))) / sum_k (1 + exp(-H(p_k))),
        C_jj' = sum_i w_i p_ij p_ij',  C~_jj' = C_jj' / sum_j'' C_j''j',

    each column of C~ summing to 1. The weights (detached) favour certain predictions.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be 2-d [rows, classes], got shape {tuple(logits.shape)}")
    with no_autocast(logits):
        probabilities = torch.softmax(logits.float() / temperature, dim=1)
        weights = certainty_weights(probabilities)
        weights = len(weights) * weights / weights.sum()
        confusion = (probabilities * weights[:, None]).T @ probabilities
        column_sums = confusion.sum(dim=0, keepdim=True)
        return confusion / column_sums.clamp_min(torch.finfo(confusion.dtype).tiny)


def minimum_class_confusion(logits: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """The MCC loss of a target batch of logits [m, C]: the off-diagonal mass of
    :func:`class_confusion` over the number of classes,

        L_MCC = 1/C sum_j sum_{j' != j} C~_jj',

    between 0 (every prediction one-hot) and (C - 1) / C (the trace of C~ is at least 1),
    which it reaches when every row predicts the same distribution with no zero.
    """
    confusion = class_confusion(logits, temperature)
    return (confusion.sum() - confusion.trace()) / confusion.shape[0]


class MinimumClassConfusionLoss(AdaptationObjective):
    """Minimum Class Confusion (Jin et al., ECCV 2020) as an objective: ``forward(batch)`` is
    :func:`minimum_class_confusion` of ``batch.target_logits``,

        L_MCC = 1/C sum_{j != j'} C~_jj',

    with C~ the category-normalised, certainty-weighted confusion of the temperature-scaled
    target predictions. Uses target data only (``source_free``).

    Args:
        temperature: T, the softmax temperature (2.5 in the paper).

    Shapes:
        target logits [m, C] -> scalar.

    Example:
        >>> loss = MinimumClassConfusionLoss()
        >>> value = loss(DomainBatch(target_features=torch.randn(32, 64),
        ...                          target_logits=torch.randn(32, 10)))
    """

    name = "mcc"
    source_free = True

    def __init__(self, temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, batch: DomainBatch) -> Tensor:
        return minimum_class_confusion(batch.target_logits, self.temperature)
