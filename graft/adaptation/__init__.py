"""Domain adaptation: align a backbone's features on unlabelled target data while it trains.

Each method is a small :class:`AdaptationLoss`, ``loss(source [n, d], target [m, d]) -> scalar``,
that the training step adds (times a weight) to the classification loss on the source batch:

- ``dann``: :class:`DomainAdversarialLoss`, a domain discriminator behind gradient reversal
  (Ganin et al., JMLR 2016);
- ``coral``: :class:`CoralLoss`, the distance between the domains' feature covariances (Sun and
  Saenko, 2016);
- ``mmd``: :class:`MultipleKernelMMD`, the multi-kernel maximum mean discrepancy (Long et al.,
  ICML 2015).

The methods that also read the classifier's outputs speak a wider interface,
:class:`~graft.adaptation.objective.AdaptationObjective` on a ``DomainBatch`` of both domains'
features and logits: ``cdan`` (CDAN+E), ``mcc``, ``mdd``, ``self-training`` (SHOT's information
maximisation and pseudo-labels) and the combinations ``mcc+cdan`` and ``mcc+self-training``.
:mod:`graft.adaptation.catalogue` names every method, the three above wrapped as objectives
(``--adapt``); :mod:`graft.adaptation.auto` chooses one from label-free measurements
(``--adapt auto``); :mod:`graft.adaptation.source_free` adapts a finished run without its source
data (``graft adapt``).

Beside them, label-free scores of the target predictions choose a checkpoint without target
labels (:mod:`graft.adaptation.validation`), and :func:`proxy_a_distance` measures the gap
between the domains' features (:mod:`graft.adaptation.gap`).
"""

from __future__ import annotations

from collections.abc import Callable

from graft.adaptation.base import AdaptationLoss
from graft.adaptation.coral import CoralLoss, coral
from graft.adaptation.dann import (
    DomainAdversarialLoss,
    gradient_reversal,
    reversal_coefficient,
)
from graft.adaptation.gap import proxy_a_distance
from graft.adaptation.mmd import DEFAULT_MULTIPLIERS, MultipleKernelMMD, gaussian_kernels, mk_mmd
from graft.adaptation.validation import (
    information_maximization,
    prediction_entropy,
    soft_neighborhood_density,
)
from graft.errors import ConfigError


def _coral(feature_dim: int) -> AdaptationLoss:
    return CoralLoss()


def _mmd(feature_dim: int) -> AdaptationLoss:
    return MultipleKernelMMD()


#: Name -> constructor taking the backbone's feature width (CORAL and MK-MMD ignore it).
ADAPTATIONS: dict[str, Callable[[int], AdaptationLoss]] = {
    "dann": DomainAdversarialLoss,
    "coral": _coral,
    "mmd": _mmd,
}


def create_adaptation(name: str, feature_dim: int) -> AdaptationLoss:
    """The adaptation loss ``name`` (one of :data:`ADAPTATIONS`) for ``feature_dim``-d features.

    Raises:
        ConfigError: for a name that is not in :data:`ADAPTATIONS`.
    """
    try:
        constructor = ADAPTATIONS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown domain adaptation {name!r}: choose one of {', '.join(ADAPTATIONS)}"
        ) from None
    return constructor(feature_dim)


__all__ = [
    "information_maximization",
    "ADAPTATIONS",
    "DEFAULT_MULTIPLIERS",
    "AdaptationLoss",
    "CoralLoss",
    "DomainAdversarialLoss",
    "MultipleKernelMMD",
    "coral",
    "create_adaptation",
    "gaussian_kernels",
    "gradient_reversal",
    "mk_mmd",
    "prediction_entropy",
    "proxy_a_distance",
    "reversal_coefficient",
    "soft_neighborhood_density",
]
