"""Every adaptation method by name, as one :class:`AdaptationObjective` built from the
backbone's feature width and the number of classes (for ``--adapt NAME``).

The feature-only losses of :mod:`graft.adaptation` (``dann``, ``coral``, ``mmd``) come wrapped
in :class:`FeatureAlignment`; the methods that read the classifier's outputs (``cdan``, ``mcc``,
``mdd``, ``self-training``) and the combinations the papers use (``mcc+cdan``,
``mcc+self-training``) take their papers' defaults. ``self-training`` is SHOT's objective,
information maximisation plus 0.3 times class-balanced confident pseudo-labels; it and ``mcc``
use target data only, so they also adapt without source data (``objective.source_free``).
"""

from __future__ import annotations

from collections.abc import Callable

from graft.adaptation.cdan import ConditionalDomainAdversarialLoss
from graft.adaptation.combined import CombinedObjective
from graft.adaptation.coral import CoralLoss
from graft.adaptation.dann import DomainAdversarialLoss
from graft.adaptation.mcc import MinimumClassConfusionLoss
from graft.adaptation.mdd import MarginDisparityDiscrepancy
from graft.adaptation.mmd import MultipleKernelMMD
from graft.adaptation.objective import AdaptationObjective, FeatureAlignment
from graft.adaptation.self_training import (
    SHOT_PSEUDO_LABEL_WEIGHT,
    InformationMaximizationLoss,
    PseudoLabelLoss,
)
from graft.errors import ConfigError


def self_training() -> CombinedObjective:
    """SHOT's target objective: L_IM + 0.3 * L_pseudo (class-balanced pseudo-labels)."""
    return CombinedObjective(
        [(InformationMaximizationLoss(), 1.0), (PseudoLabelLoss(), SHOT_PSEUDO_LABEL_WEIGHT)],
        name="self-training",
    )


def _mcc_cdan(feature_dim: int, num_classes: int) -> CombinedObjective:
    cdan = ConditionalDomainAdversarialLoss(feature_dim, num_classes)
    return CombinedObjective([(MinimumClassConfusionLoss(), 1.0), (cdan, 1.0)])


def _mcc_self_training(feature_dim: int, num_classes: int) -> CombinedObjective:
    return CombinedObjective([(MinimumClassConfusionLoss(), 1.0), (self_training(), 1.0)])


#: Name -> constructor(feature_dim, num_classes) of every adaptation objective.
OBJECTIVES: dict[str, Callable[[int, int], AdaptationObjective]] = {
    "dann": lambda d, c: FeatureAlignment(DomainAdversarialLoss(d)),
    "coral": lambda d, c: FeatureAlignment(CoralLoss()),
    "mmd": lambda d, c: FeatureAlignment(MultipleKernelMMD()),
    "cdan": ConditionalDomainAdversarialLoss,
    "mcc": lambda d, c: MinimumClassConfusionLoss(),
    "mdd": MarginDisparityDiscrepancy,
    "self-training": lambda d, c: self_training(),
    "mcc+cdan": _mcc_cdan,
    "mcc+self-training": _mcc_self_training,
}


#: The methods that read only the features (any kind of task); the others read the class
#: probabilities of a single-label classifier.
FEATURE_ONLY = ("dann", "coral", "mmd")

#: The methods that use target data only, so that they adapt a trained model without its source
#: data (``graft adapt``); the first is the default.
SOURCE_FREE = ("self-training", "mcc", "mcc+self-training")


def create_objective(name: str, feature_dim: int, num_classes: int) -> AdaptationObjective:
    """The adaptation objective ``name`` (one of :data:`OBJECTIVES`) for ``feature_dim``-d
    features and ``num_classes`` classes.

    Raises:
        ConfigError: for a name that is not in :data:`OBJECTIVES`.
    """
    try:
        constructor = OBJECTIVES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown domain adaptation {name!r}: choose one of {', '.join(OBJECTIVES)}"
        ) from None
    return constructor(feature_dim, num_classes)
