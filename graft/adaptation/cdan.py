"""CDAN+E: a domain discriminator conditioned on the classifier's predictions.

Long, Cao, Wang and Jordan, "Conditional Adversarial Domain Adaptation", NeurIPS 2018.

DANN aligns the marginal distributions of the features; when the classes are arranged
differently in the two domains, aligning the marginals can mix them. CDAN shows the
discriminator the joint of features f and predictions g through the multilinear map
T(f, g) = f (x) g, so that aligning it aligns the class-conditional distributions too, and
(+E) weighs each example by the certainty of its prediction, w = 1 + exp(-H(g)), so that
uncertain predictions, which carry wrong conditioning, count less.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graft.adaptation.base import no_autocast
from graft.adaptation.dann import domain_discriminator, gradient_reversal, reversal_coefficient
from graft.adaptation.objective import AdaptationObjective, DomainBatch

#: The paper's rule: the full multilinear map while d * C is at most this, the randomized one
#: (of :data:`RANDOMIZED_DIM` outputs) beyond it.
MULTILINEAR_LIMIT = 4096
RANDOMIZED_DIM = 1024


def multilinear_map(features: Tensor, predictions: Tensor) -> Tensor:
    """The multilinear map T(f, g) = f (x) g of each row, flattened: [n, d] x [n, C] -> [n, C*d],
    entry ``c * d + k`` of row i being g_ic * f_ik."""
    return torch.bmm(predictions.unsqueeze(2), features.unsqueeze(1)).flatten(1)


class RandomizedMultilinearMap(nn.Module):
    """The randomized multilinear map of CDAN for wide features (C * d large):

        T(f, g) = (f R_f) * (g R_g) / sqrt(k),

    with R_f [d, k] and R_g [C, k] standard normal, drawn once (from ``seed``) and fixed: an
    unbiased estimate of the inner products of f (x) g in k dimensions. Kept as buffers, so they
    follow the module's device and are saved with its state.
    """

    def __init__(
        self, feature_dim: int, num_classes: int, output_dim: int = RANDOMIZED_DIM, seed: int = 0
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "feature_matrix", torch.randn(feature_dim, output_dim, generator=generator)
        )
        self.register_buffer(
            "prediction_matrix", torch.randn(num_classes, output_dim, generator=generator)
        )
        self.output_dim = output_dim

    def forward(self, features: Tensor, predictions: Tensor) -> Tensor:
        projected = (features @ self.feature_matrix.to(features.dtype)) * (
            predictions @ self.prediction_matrix.to(predictions.dtype)
        )
        return projected / math.sqrt(self.output_dim)


def certainty_weights(probabilities: Tensor) -> Tensor:
    """The entropy conditioning of CDAN+E: w_i = 1 + exp(-H(p_i)) for each row of
    ``probabilities`` [n, C] (H in nats, 0 log 0 = 0), detached: between 1 + 1/C (a uniform
    prediction) and 2 (a one-hot one). MCC weighs its examples the same way."""
    entropy = torch.special.entr(probabilities.detach()).sum(dim=1)
    return 1.0 + torch.exp(-entropy)


class ConditionalDomainAdversarialLoss(AdaptationObjective):
    """The CDAN+E objective (Long et al., NeurIPS 2018):

        L = 1/2 [ sum_i w_i^s BCE(D(R(T(f_i^s, g_i^s))), 1)
                + sum_j w_j^t BCE(D(R(T(f_j^t, g_j^t))), 0) ],

    with g = softmax(logits) (detached, as in the authors' code), T the multilinear map f (x) g
    (or its randomized form), R the gradient reversal of DANN whose coefficient warms up with
    :attr:`progress` (:func:`~graft.adaptation.dann.reversal_coefficient`), D a domain
    discriminator (source positive) and w the certainty weights 1 + exp(-H(g)) normalised to sum
    1 within each domain, so that each domain weighs half whatever the batch sizes
    (``entropy_conditioning=False`` gives every row of a domain the same weight: CDAN without E).
    D's parameters belong to this module and train with the head; through R the same step
    trains the features to fool it. D runs in float32 with mixed precision turned off, on both
    domains together (so that its batch normalisation sees both). After each call
    :attr:`domain_accuracy` holds D's mean per-domain accuracy (detached), near 0.5 once the
    domains are aligned.

    Args:
        feature_dim: width d of the features.
        num_classes: C.
        randomized: use the randomized map; None chooses it when d * C > 4096, as the paper does.
        randomized_dim: its output width k.
        hidden: width of D's two hidden layers (1024 in the paper).
        alpha: steepness of the reversal coefficient's warm-up.
        entropy_conditioning: weigh examples by certainty (CDAN+E) or not (CDAN).
        discriminator: D, mapping [N, map width] to [N, 1] logits; default
            :func:`~graft.adaptation.dann.domain_discriminator`.

    Shapes:
        source features [n, d], logits [n, C]; target features [m, d], logits [m, C] -> scalar.

    Example:
        >>> loss = ConditionalDomainAdversarialLoss(feature_dim=256, num_classes=10)
        >>> loss.progress = 0.3
        >>> value = loss(DomainBatch(source_features=torch.randn(32, 256),
        ...                          source_logits=torch.randn(32, 10),
        ...                          target_features=torch.randn(32, 256),
        ...                          target_logits=torch.randn(32, 10)))
    """

    name = "cdan"

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        randomized: bool | None = None,
        randomized_dim: int = RANDOMIZED_DIM,
        hidden: int = 1024,
        alpha: float = 10.0,
        entropy_conditioning: bool = True,
        discriminator: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if feature_dim < 1 or num_classes < 2 or randomized_dim < 1:
            raise ValueError(
                f"feature_dim and randomized_dim must be positive and num_classes at least 2, "
                f"got {feature_dim}, {randomized_dim} and {num_classes}"
            )
        if randomized is None:
            randomized = feature_dim * num_classes > MULTILINEAR_LIMIT
        self.feature_dim, self.num_classes = feature_dim, num_classes
        self.map = (
            RandomizedMultilinearMap(feature_dim, num_classes, randomized_dim)
            if randomized
            else None
        )
        map_dim = randomized_dim if randomized else feature_dim * num_classes
        if discriminator is None:
            discriminator = domain_discriminator(map_dim, hidden)
        self.discriminator = discriminator
        self.alpha = alpha
        self.entropy_conditioning = entropy_conditioning
        self.domain_accuracy: Tensor | None = None

    def conditioned(self, features: Tensor, probabilities: Tensor) -> Tensor:
        """T(f, g): the multilinear map of ``features`` [N, d] and ``probabilities`` [N, C],
        or its randomized form."""
        if self.map is not None:
            return self.map(features, probabilities)
        return multilinear_map(features, probabilities)

    def domain_weights(self, probabilities: Tensor, n: int) -> Tensor:
        """Per-row weights [N] of the pooled batch (source rows first, ``n`` of them): each
        domain's sum to 1/2, by certainty under entropy conditioning, else uniformly."""
        if self.entropy_conditioning:
            weights = certainty_weights(probabilities)
        else:
            weights = torch.ones(
                len(probabilities), device=probabilities.device, dtype=probabilities.dtype
            )
        return torch.cat([weights[:n] / weights[:n].sum(), weights[n:] / weights[n:].sum()]) / 2

    def forward(self, batch: DomainBatch) -> Tensor:
        source_features, source_logits = self.require_source(batch)
        if source_features.shape[1] != self.feature_dim or batch.num_classes != self.num_classes:
            raise ValueError(
                f"CDAN was built for {self.feature_dim}-d features and {self.num_classes} "
                f"classes, got {source_features.shape[1]}-d and {batch.num_classes}"
            )
        n = source_features.shape[0]
        coefficient = reversal_coefficient(self.progress, self.alpha)
        with no_autocast(source_features):
            features = torch.cat([source_features, batch.target_features]).float()
            logits = torch.cat([source_logits, batch.target_logits]).detach().float()
            probabilities = torch.softmax(logits, dim=1)
            joint = self.conditioned(features, probabilities)
            domain_logits = self.discriminator(gradient_reversal(joint, coefficient)).squeeze(1)
            labels = torch.zeros_like(domain_logits)
            labels[:n] = 1.0
            losses = F.binary_cross_entropy_with_logits(domain_logits, labels, reduction="none")
            loss = (self.domain_weights(probabilities, n) * losses).sum()
        with torch.no_grad():
            correct = ((domain_logits > 0) == labels.bool()).float()
            self.domain_accuracy = (correct[:n].mean() + correct[n:].mean()) / 2
        return loss
