"""DANN: align the domains by training the features to fool a domain discriminator.

Ganin, Ustinova, Ajakan, Germain, Larochelle, Laviolette, Marchand and Lempitsky,
"Domain-Adversarial Training of Neural Networks", JMLR 17(59), 2016.

A discriminator D learns to tell source features (label 1) from target features (label 0);
a gradient-reversal layer between the backbone and D makes the backbone minimise the task loss
while maximising D's loss, so that the features it learns carry no trace of their domain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graft.adaptation.base import AdaptationLoss, check_features, no_autocast


class _GradientReverse(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``-coefficient`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, coefficient: float) -> Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output.neg() * ctx.coefficient, None


def gradient_reversal(x: Tensor, coefficient: float) -> Tensor:
    """The gradient-reversal layer R_lambda of Ganin et al.: R(x) = x forward,
    dR/dx = -lambda I backward (``coefficient`` is lambda)."""
    return _GradientReverse.apply(x, float(coefficient))


def reversal_coefficient(progress: float, alpha: float = 10.0, high: float = 1.0) -> float:
    """The warm-up of the reversal coefficient over training (Ganin et al., section 5.2.2):

        lambda(p) = high * (2 / (1 + exp(-alpha * p)) - 1),

    with p in [0, 1] the share of training done: 0 at the start, when the discriminator is
    still noise, rising smoothly to ``high`` (0.99991 * high at p = 1 with alpha = 10).
    """
    progress = float(progress)
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    return high * (2.0 / (1.0 + math.exp(-alpha * progress)) - 1.0)


def domain_discriminator(feature_dim: int, hidden: int = 256) -> nn.Sequential:
    """The domain classifier D: features [N, feature_dim] -> one logit each [N, 1] (source is
    the positive class); two hidden layers with batch normalisation, as in the
    Transfer-Learning-Library's ``DomainDiscriminator``."""
    return nn.Sequential(
        nn.Linear(feature_dim, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    )


class DomainAdversarialLoss(AdaptationLoss):
    """The domain-adversarial loss of DANN (Ganin et al., JMLR 2016):

        L_d = 1/2 [ mean_i BCE(D(R(f_i^s)), 1) + mean_j BCE(D(R(f_j^t)), 0) ],

    with D the domain discriminator, R the gradient-reversal layer whose coefficient follows
    :func:`reversal_coefficient` of :attr:`progress`, and BCE the binary cross-entropy of a
    logit. Each domain weighs half whatever the batch sizes. Minimising L_d trains D to tell
    the domains apart; through R, the same step trains the backbone to make them
    indistinguishable. D's parameters belong to this module and train with the head.

    The discriminator runs in float32 with mixed precision turned off, on the source and target
    features concatenated (so that its batch normalisation sees both domains). After each call
    :attr:`domain_accuracy` holds D's accuracy on the batch (the mean of its accuracy on each
    domain, detached), for logging: near 0.5 once the features are aligned.

    Args:
        feature_dim: width d of the features.
        hidden: width of the discriminator's two hidden layers.
        alpha: steepness of the reversal coefficient's warm-up.

    Shapes:
        source [n, d], target [m, d] (n, m >= 1, n + m >= 2 in training mode) -> scalar.

    Example:
        >>> loss = DomainAdversarialLoss(feature_dim=1280)
        >>> loss.progress = 0.3
        >>> value = loss(torch.randn(32, 1280), torch.randn(32, 1280))
    """

    name = "dann"

    def __init__(self, feature_dim: int, hidden: int = 256, alpha: float = 10.0) -> None:
        super().__init__()
        if feature_dim < 1 or hidden < 1:
            raise ValueError(
                f"feature_dim and hidden must be positive, got {feature_dim} and {hidden}"
            )
        self.feature_dim = feature_dim
        self.alpha = alpha
        self.discriminator = domain_discriminator(feature_dim, hidden)
        self.domain_accuracy: Tensor | None = None

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        check_features(source, target)
        if source.shape[1] != self.feature_dim:
            raise ValueError(
                f"the discriminator takes {self.feature_dim}-d features, got {source.shape[1]}-d"
            )
        n = source.shape[0]
        coefficient = reversal_coefficient(self.progress, self.alpha)
        with no_autocast(source):
            features = torch.cat([source, target]).float()
            logits = self.discriminator(gradient_reversal(features, coefficient)).squeeze(1)
            labels = torch.zeros_like(logits)
            labels[:n] = 1.0
            losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            loss = (losses[:n].mean() + losses[n:].mean()) / 2
        with torch.no_grad():
            correct = ((logits > 0) == labels.bool()).float()
            self.domain_accuracy = (correct[:n].mean() + correct[n:].mean()) / 2
        return loss
