"""The interface every domain-adaptation method speaks: one batch of both domains in, one scalar
out, for features *and* the classifier's outputs.

:class:`graft.adaptation.base.AdaptationLoss` sees only features, ``loss(source [n, d],
target [m, d])``, which is all that DANN, CORAL and MK-MMD align. The methods that condition on
what the classifier predicts need its logits too:

- CDAN conditions the domain discriminator on the outer product of the features and the
  softmax predictions, and weighs each example by the certainty of its prediction;
- MCC penalises how often the target predictions confuse two classes (target logits only);
- MDD measures how far an adversarial head can disagree with the main head's predicted labels
  on the target while agreeing on the source;
- self-training and information maximisation fit the target logits to pseudo-labels, or make
  them confident and diverse (target logits only, so they also adapt without source data).

So an :class:`AdaptationObjective` takes a :class:`DomainBatch` (features and logits of both
domains, the source labels, optional target pseudo-labels) and returns the scalar that the
training step adds, times a weight, to the classification loss on the source batch. Like
:class:`AdaptationLoss` it reads :attr:`AdaptationObjective.progress`, the share of training
done, for its schedules; the training step sets it before each call. :class:`FeatureAlignment`
wraps a feature-only :class:`AdaptationLoss` so that the old methods speak the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from graft.adaptation.base import AdaptationLoss, ScheduledModule


@dataclass(frozen=True, kw_only=True)
class DomainBatch:
    """What an adaptation objective sees of one training step (all on one device).

    Attributes:
        target_features: [m, d] the backbone's features of the target batch (with gradients).
        target_logits: [m, C] the classifier's outputs on them (with gradients).
        source_features: [n, d] the source batch's features, or None without source data.
        source_logits: [n, C] the classifier's outputs on them, or None.
        source_labels: [n] the source labels (class indices), or None.
        target_pseudo_labels: [m] class indices chosen for the target rows by a pass over the
            target data (:func:`graft.adaptation.self_training.select_pseudo_labels`), -1 for a
            row without one; None to let self-training choose from ``target_logits``.

    Raises:
        ValueError: when a tensor is not of the shape above or the domains disagree on d or C.
    """

    target_features: Tensor
    target_logits: Tensor
    source_features: Tensor | None = None
    source_logits: Tensor | None = None
    source_labels: Tensor | None = None
    target_pseudo_labels: Tensor | None = None

    def __post_init__(self) -> None:
        _check_pair("target", self.target_features, self.target_logits)
        if (self.source_features is None) != (self.source_logits is None):
            raise ValueError("give both source_features and source_logits, or neither")
        if self.source_features is not None:
            _check_pair("source", self.source_features, self.source_logits)
            if self.source_features.shape[1] != self.target_features.shape[1]:
                raise ValueError(
                    f"source features are {self.source_features.shape[1]}-d but target "
                    f"features {self.target_features.shape[1]}-d"
                )
            if self.source_logits.shape[1] != self.target_logits.shape[1]:
                raise ValueError(
                    f"source logits have {self.source_logits.shape[1]} classes but target "
                    f"logits {self.target_logits.shape[1]}"
                )
        _check_labels("source_labels", self.source_labels, self.source_features)
        _check_labels("target_pseudo_labels", self.target_pseudo_labels, self.target_features)

    @property
    def has_source(self) -> bool:
        """Whether the batch carries source features and logits."""
        return self.source_features is not None

    @property
    def num_classes(self) -> int:
        """C, the number of classes of the logits."""
        return self.target_logits.shape[1]


def _check_pair(domain: str, features: Tensor, logits: Tensor) -> None:
    if features.ndim != 2 or logits.ndim != 2:
        raise ValueError(
            f"{domain} features and logits must be 2-d [rows, dim], got shapes "
            f"{tuple(features.shape)} and {tuple(logits.shape)}"
        )
    if features.shape[0] != logits.shape[0] or features.shape[0] == 0:
        raise ValueError(
            f"{domain} features have {features.shape[0]} rows but logits {logits.shape[0]}; "
            "each needs one row per example, at least one"
        )


def _check_labels(name: str, labels: Tensor | None, features: Tensor | None) -> None:
    if labels is None:
        return
    if features is None:
        raise ValueError(f"{name} were given without the features of that domain")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"{name} must have shape [{features.shape[0]}], got {tuple(labels.shape)}")


class AdaptationObjective(ScheduledModule):
    """Base class of the adaptation objectives: ``forward(batch: DomainBatch) -> scalar``, the
    value the training step minimises (times a weight) beside the source classification loss.

    Attributes:
        name: the method's name in :data:`graft.adaptation.catalogue.OBJECTIVES`.
        source_free: True when the objective uses target data only, so that it can adapt a
            trained model without any source data (SHOT's setting).
        uses_logits: False when it reads only the features (the wrapped DANN, CORAL, MK-MMD):
            the training step then gives it the head's target outputs without dropout and
            without gradient, so that the old methods train exactly as they did.
        progress: the share of training done, in [0, 1] (0.0 until the training step sets it).
    """

    name: str = ""
    source_free: bool = False
    uses_logits: bool = True

    def forward(self, batch: DomainBatch) -> Tensor:
        """The objective's value (a scalar tensor) on ``batch``."""
        raise NotImplementedError

    def require_source(self, batch: DomainBatch) -> tuple[Tensor, Tensor]:
        """``batch``'s source features and logits; ValueError when it has none."""
        if not batch.has_source:
            raise ValueError(f"{self.name or type(self).__name__} needs source data in the batch")
        return batch.source_features, batch.source_logits


class FeatureAlignment(AdaptationObjective):
    """A feature-only :class:`AdaptationLoss` (DANN, CORAL, MK-MMD) as an objective:
    ``forward(batch)`` is ``loss(batch.source_features, batch.target_features)``, with the
    loss's :attr:`~AdaptationLoss.progress` set to this objective's first.

    Example:
        >>> from graft.adaptation.coral import CoralLoss
        >>> objective = FeatureAlignment(CoralLoss())
        >>> batch = DomainBatch(source_features=torch.randn(8, 16), source_logits=torch.randn(8, 3),
        ...                     target_features=torch.randn(8, 16), target_logits=torch.randn(8, 3))
        >>> value = objective(batch)
    """

    uses_logits = False

    def __init__(self, loss: AdaptationLoss) -> None:
        super().__init__()
        self.loss = loss
        self.name = loss.name

    @property
    def domain_accuracy(self) -> Tensor | None:
        """The wrapped loss's domain-discriminator accuracy on the last batch (DANN), else None."""
        return getattr(self.loss, "domain_accuracy", None)

    def forward(self, batch: DomainBatch) -> Tensor:
        source, _ = self.require_source(batch)
        self.loss.progress = self.progress
        return self.loss(source, batch.target_features)
