"""Deep CORAL: align the second-order statistics of the source and target features.

Sun and Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation", ECCV 2016
Workshops (TASK-CV).
"""

from __future__ import annotations

from torch import Tensor

from graft.adaptation.base import AdaptationLoss, check_features, full_precision, no_autocast


def _covariance(features: Tensor) -> Tensor:
    """The unbiased covariance [d, d] of the rows of ``features`` [n, d] (divided by n - 1)."""
    centred = features - features.mean(dim=0, keepdim=True)
    return centred.T @ centred / (features.shape[0] - 1)


def coral(source: Tensor, target: Tensor) -> Tensor:
    """The CORAL loss of Sun and Saenko:

        L_CORAL = ||C_s - C_t||_F^2 / (4 d^2),

    with C_s, C_t the unbiased (n - 1) covariances of the source and target features and d their
    width. It ignores the means, so shifting one domain leaves it unchanged; it is 0 when the
    two batches have the same covariance. Computed in float32 (float64 inputs stay float64) with
    mixed precision turned off.

    Args:
        source: [n, d] source features, n >= 2.
        target: [m, d] target features, m >= 2.

    Returns:
        A scalar tensor, differentiable in both inputs.
    """
    check_features(source, target, min_rows=2)
    d = source.shape[1]
    with no_autocast(source):
        difference = _covariance(full_precision(source)) - _covariance(full_precision(target))
        return difference.pow(2).sum() / (4 * d * d)


class CoralLoss(AdaptationLoss):
    """Deep CORAL as an adaptation loss: ``forward(source [n, d], target [m, d])`` is
    :func:`coral`, ||C_s - C_t||_F^2 / (4 d^2) (Sun and Saenko, 2016). No parameters, no
    schedule; each domain needs at least two rows per batch.

    Example:
        >>> loss = CoralLoss()
        >>> value = loss(torch.randn(32, 128), torch.randn(24, 128) * 2)
    """

    name = "coral"

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        return coral(source, target)
