"""A weighted sum of adaptation objectives, as the papers combine them (CDAN + MCC in Jin et al.,
ECCV 2020; information maximisation + pseudo-labels in SHOT, Liang et al., ICML 2020)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from graft.adaptation.objective import AdaptationObjective, DomainBatch


class CombinedObjective(AdaptationObjective):
    """``forward(batch) = sum_k weight_k * objective_k(batch)``, each part's
    :attr:`~AdaptationObjective.progress` set to this one's first. It is ``source_free`` when
    every part is. After each call :attr:`values` holds each part's value by name (detached),
    for logging, and :attr:`domain_accuracy` the first part's that reports one.

    Args:
        parts: ``(objective, weight)`` pairs; each part's name must be unique.
        name: the combination's name; by default the parts' names joined with ``+``.

    Example:
        >>> from graft.adaptation.mcc import MinimumClassConfusionLoss
        >>> from graft.adaptation.cdan import ConditionalDomainAdversarialLoss
        >>> objective = CombinedObjective([(MinimumClassConfusionLoss(), 1.0),
        ...                                (ConditionalDomainAdversarialLoss(256, 10), 1.0)])
        >>> objective.name
        'mcc+cdan'
    """

    def __init__(
        self, parts: Sequence[tuple[AdaptationObjective, float]], name: str | None = None
    ) -> None:
        super().__init__()
        if not parts:
            raise ValueError("a combined objective needs at least one part")
        names = [objective.name for objective, _ in parts]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f"the parts need distinct, non-empty names, got {names}")
        self.parts = nn.ModuleList(objective for objective, _ in parts)
        self.weights = tuple(float(weight) for _, weight in parts)
        self.name = name or "+".join(names)
        self.source_free = all(objective.source_free for objective, _ in parts)
        self.values: dict[str, Tensor] = {}

    @property
    def domain_accuracy(self) -> Tensor | None:
        """The first part's domain-discriminator accuracy on the last batch, else None."""
        for part in self.parts:
            accuracy = getattr(part, "domain_accuracy", None)
            if accuracy is not None:
                return accuracy
        return None

    def forward(self, batch: DomainBatch) -> Tensor:
        total = None
        self.values = {}
        for part, weight in zip(self.parts, self.weights, strict=True):
            part.progress = self.progress
            value = part(batch)
            self.values[part.name] = value.detach()
            total = weight * value if total is None else total + weight * value
        return total
