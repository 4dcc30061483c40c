"""MDD: minimise how far an adversarial classifier can disagree with the main one on the target.

Zhang, Liu, Long and Jordan, "Bridging Theory and Algorithm for Domain Adaptation", ICML 2019.

The margin disparity discrepancy bounds the target error of a classifier h by its source error
plus the largest gap, over classifiers f' of the same family, between f''s disagreement with h
on the target and (gamma times) its disagreement on the source. MDD estimates that supremum
with an auxiliary head f' trained to agree with h's predicted labels on the source and disagree
with them on the target, behind a gradient reversal, so that the features learn to leave f' no
room to disagree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graft.adaptation.base import no_autocast
from graft.adaptation.dann import gradient_reversal, reversal_coefficient
from graft.adaptation.objective import AdaptationObjective, DomainBatch

#: The margin gamma of the paper's Office-31 experiments (the Transfer-Learning-Library's default).
DEFAULT_MARGIN = 4.0


def log_one_minus_softmax(logits: Tensor, index: Tensor) -> Tensor:
    """log(1 - softmax(z_i)[k_i]) of each row of ``logits`` [N, C] and class ``index`` [N],
    computed as logsumexp over the other classes minus logsumexp over all (no cancellation
    when the probability is near 1)."""
    others = logits.scatter(1, index[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)


def margin_disparity_discrepancy(
    source_logits: Tensor,
    source_adversarial: Tensor,
    target_logits: Tensor,
    target_adversarial: Tensor,
    margin: float = DEFAULT_MARGIN,
) -> Tensor:
    """The empirical margin disparity discrepancy of Zhang et al. (cross-entropy surrogate), as
    in the Transfer-Learning-Library's ``ClassificationMarginDisparityDiscrepancy``:

        D_gamma = gamma * mean_i log p'(h(x_i^s) | x_i^s) + mean_j log(1 - p'(h(x_j^t) | x_j^t)),

    with h(x) the main head's predicted class (argmax of ``*_logits``, no gradient) and p' the
    softmax of the adversarial head's logits (``*_adversarial``). The adversarial head
    maximises it (agree with h on the source, disagree on the target); it is at most 0.

    Shapes:
        source [n, C] twice, target [m, C] twice -> scalar.
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin}")
    source_labels = source_logits.detach().argmax(dim=1)
    target_labels = target_logits.detach().argmax(dim=1)
    agreement = -F.cross_entropy(source_adversarial, source_labels)
    disagreement = log_one_minus_softmax(target_adversarial, target_labels).mean()
    return margin * agreement + disagreement


class MarginDisparityDiscrepancy(AdaptationObjective):
    """The MDD objective (Zhang et al., ICML 2019): ``forward(batch)`` returns

        L = -D_gamma(h, f'(R(f^s)), f'(R(f^t))),

    :func:`margin_disparity_discrepancy` with the adversarial head f' (owned by this module,
    trained with the head) applied to the features through the gradient reversal R. Minimising
    L trains f' to maximise the discrepancy; through R, whose coefficient warms up with
    :attr:`progress` to ``high`` (0.1, as in the Transfer-Learning-Library), the same step
    trains the features to minimise it. The main head's logits give only its predicted labels.
    After each call :attr:`discrepancy` holds D_gamma (detached), for logging.

    Args:
        feature_dim: width d of the features.
        num_classes: C.
        margin: gamma (4 for Office-31 in the paper; larger is a tighter bound but harder to
            train).
        hidden: None for a linear f', as graft's head is linear (the theory takes f' from the
            main head's family); a width for a two-layer f' as in the paper's ResNet heads.
        alpha: steepness of the reversal coefficient's warm-up.
        high: the reversal coefficient it reaches.
        adversarial_head: f' itself, [N, d] -> [N, C]; overrides ``hidden``.

    Shapes:
        source features [n, d], logits [n, C]; target features [m, d], logits [m, C] -> scalar.

    Example:
        >>> loss = MarginDisparityDiscrepancy(feature_dim=256, num_classes=10)
        >>> loss.progress = 0.5
        >>> value = loss(DomainBatch(source_features=torch.randn(32, 256),
        ...                          source_logits=torch.randn(32, 10),
        ...                          target_features=torch.randn(32, 256),
        ...                          target_logits=torch.randn(32, 10)))
    """

    name = "mdd"

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        margin: float = DEFAULT_MARGIN,
        hidden: int | None = None,
        alpha: float = 10.0,
        high: float = 0.1,
        adversarial_head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if feature_dim < 1 or num_classes < 2:
            raise ValueError(
                f"feature_dim must be positive and num_classes at least 2, got {feature_dim} "
                f"and {num_classes}"
            )
        if not margin > 0:
            raise ValueError(f"margin must be positive, got {margin}")
        if adversarial_head is None:
            adversarial_head = adversarial_classifier(feature_dim, num_classes, hidden)
        self.adversarial_head = adversarial_head
        self.margin, self.alpha, self.high = margin, alpha, high
        self.discrepancy: Tensor | None = None

    def forward(self, batch: DomainBatch) -> Tensor:
        source_features, source_logits = self.require_source(batch)
        n = source_features.shape[0]
        coefficient = reversal_coefficient(self.progress, self.alpha, self.high)
        with no_autocast(source_features):
            features = torch.cat([source_features, batch.target_features]).float()
            adversarial = self.adversarial_head(gradient_reversal(features, coefficient)).float()
            discrepancy = margin_disparity_discrepancy(
                source_logits.float(),
                adversarial[:n],
                batch.target_logits.float(),
                adversarial[n:],
                self.margin,
            )
        self.discrepancy = discrepancy.detach()
        return -discrepancy


def adversarial_classifier(feature_dim: int, num_classes: int, hidden: int | None) -> nn.Module:
    """MDD's auxiliary head f': linear, or (``hidden`` given) linear-ReLU-dropout-linear as in
    the paper's heads."""
    if hidden is None:
        return nn.Linear(feature_dim, num_classes)
    return nn.Sequential(
        nn.Linear(feature_dim, hidden),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )
