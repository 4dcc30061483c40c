"""MK-MMD: align the domains by the maximum mean discrepancy under a family of Gaussian kernels.

Long, Cao, Wang and Jordan, "Learning Transferable Features with Deep Adaptation Networks",
ICML 2015 (DAN), with the MMD of Gretton, Borgwardt, Rasch, Schoelkopf and Smola, "A Kernel
Two-Sample Test", JMLR 13, 2012.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from graft.adaptation.base import AdaptationLoss, check_features, full_precision, no_autocast

#: Bandwidth multipliers 2^k, k = -3..1, as in the Transfer-Learning-Library's DAN
#: (``GaussianKernel(alpha=2 ** k) for k in range(-3, 2)``).
DEFAULT_MULTIPLIERS: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0)


def gaussian_kernels(
    x: Tensor, y: Tensor, multipliers: Sequence[float] = DEFAULT_MULTIPLIERS
) -> Tensor:
    """The multi-kernel matrix of the pooled rows z = [x; y], shape [n + m, n + m]:

        K(z_i, z_j) = sum_k exp(-||z_i - z_j||^2 / (2 a_k sigma^2)),

    with a_k the ``multipliers`` and sigma^2 the mean of ||z_i - z_j||^2 over all (n + m)^2
    pairs of the pooled batch (the diagonal's zeros included), detached from the graph: the
    bandwidth adapts to the scale of the features without being optimised, as in the
    Transfer-Learning-Library's ``GaussianKernel``. Rows 0..n-1 are x's, the rest y's.

    Args:
        x: [n, d] features.
        y: [m, d] features.
        multipliers: the a_k, each positive.
    """
    if not multipliers or min(multipliers) <= 0:
        raise ValueError(f"multipliers must be positive numbers, got {tuple(multipliers)}")
    pooled = torch.cat([x, y])
    # Distances do not change under a shift; centring first keeps the expansion
    # ||a||^2 + ||b||^2 - 2 a.b from cancelling catastrophically for features far from 0.
    pooled = pooled - pooled.mean(dim=0, keepdim=True).detach()
    norms = pooled.pow(2).sum(dim=1)
    squared = (norms[:, None] + norms[None, :] - 2 * pooled @ pooled.T).clamp_min(0)
    bandwidth = squared.detach().mean().clamp_min(torch.finfo(squared.dtype).tiny)
    return sum(torch.exp(-squared / (2 * a * bandwidth)) for a in multipliers)


def mk_mmd(
    source: Tensor, target: Tensor, multipliers: Sequence[float] = DEFAULT_MULTIPLIERS
) -> Tensor:
    """The squared MK-MMD between the two batches, biased quadratic-time estimate:

        MMD^2 = mean_{i,i'} K(s_i, s_i') + mean_{j,j'} K(t_j, t_j') - 2 mean_{i,j} K(s_i, t_j),

    with K the kernel sum of :func:`gaussian_kernels` (means over all pairs, the diagonals
    included, so it is >= 0 and 0 for identical batches). n and m may differ. Computed in
    float32 (float64 inputs stay float64) with mixed precision turned off.

    Args:
        source: [n, d] source features.
        target: [m, d] target features.
        multipliers: the bandwidth multipliers a_k of :func:`gaussian_kernels`.

    Returns:
        A scalar tensor, differentiable in both inputs.
    """
    check_features(source, target)
    n = source.shape[0]
    with no_autocast(source):
        kernels = gaussian_kernels(full_precision(source), full_precision(target), multipliers)
        return kernels[:n, :n].mean() + kernels[n:, n:].mean() - 2 * kernels[:n, n:].mean()


class MultipleKernelMMD(AdaptationLoss):
    """DAN's multi-kernel MMD as an adaptation loss: ``forward(source [n, d], target [m, d])``
    is :func:`mk_mmd` (Long et al., ICML 2015): the squared MMD under a sum of Gaussian kernels
    whose bandwidths are ``multipliers`` times the batch's mean squared distance.

    Args:
        multipliers: the bandwidth multipliers (default 2^-3 .. 2^1).

    Example:
        >>> loss = MultipleKernelMMD()
        >>> value = loss(torch.randn(32, 128), torch.randn(24, 128) + 1)
    """

    name = "mmd"

    def __init__(self, multipliers: Sequence[float] = DEFAULT_MULTIPLIERS) -> None:
        super().__init__()
        self.multipliers = tuple(float(a) for a in multipliers)

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        return mk_mmd(source, target, self.multipliers)
