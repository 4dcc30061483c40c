"""The source-risk guard: keep an adapted model only if it is no worse on labelled source data.

Adaptation can hurt. An alignment loss that pulls the domains together may also pull the classes
apart on the source (the adversarial methods do so from seed to seed), and no label-free target
score reliably tells a better target model from a worse one: a collapsed or confidently wrong
model can score well on them. The bound of Ben-David et al. (Machine Learning 2010) says where
to look instead: the target error is at most the source error plus the divergence between the
domains plus the error of the best joint hypothesis, so an alignment that buys a smaller
divergence with a larger source error gives no guarantee at all.

The guard therefore trains the same phase twice from the same starting weights and seed, once
source-only and once adapted, and keeps the adapted weights only when their score on the
labelled source validation data is at least the source-only weights' score minus
``tolerance``. Otherwise the source-only weights are kept and the run says so. Measured on
``bench/adaptation.py`` (MNIST/USPS and Amazon reviews, three seeds; ``bench/RESULTS.md``), it
makes every method's mean target accuracy at least source-only training's: the runs where
DANN or MK-MMD lost accuracy on the target (up to 26 points on reviews) had all lost source
validation accuracy too. It is a rule on the mean, not a per-seed guarantee.

For an accuracy, the tolerance is the sampling noise of the source-only accuracy on the
validation examples (:func:`noise_tolerance`): on PACS photo to cartoon, the source-only model
is right on 139 of 140 validation photos, and with no tolerance the guard dropped every
clustering method whose target accuracy rose 20 points for one to three photos more wrong.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

#: The name of a guarded phase's source-only training is the phase's name plus this.
SOURCE_ONLY_SUFFIX = "-source-only"

#: The source validation score an adapted model may lose against source-only training.
DEFAULT_TOLERANCE = 0.0


@dataclass(frozen=True)
class GuardDecision:
    """Which of the two trainings of a phase the run keeps, and the scores that decided.

    Attributes:
        kept: ``"adapted"`` or ``"source-only"``.
        adapted_score: the adapted training's source validation score (its kept epoch).
        source_only_score: the source-only training's source validation score (its kept epoch).
        tolerance: the score the adapted model was allowed to lose.
    """

    kept: str
    adapted_score: float
    source_only_score: float
    tolerance: float

    @property
    def reason(self) -> str:
        verb = "kept" if self.kept == "adapted" else "dropped"
        relation = ">=" if self.kept == "adapted" else "<"
        return (
            f"adaptation {verb}: source validation score {self.adapted_score:.4f} {relation} "
            f"{self.source_only_score:.4f} (source-only) - {self.tolerance:g}"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "reason": self.reason}


def kept_score(rows: list[dict], key: str = "val_score") -> float:
    """``key`` of the epoch a phase kept (``-inf`` when the history has none)."""
    kept = next((row for row in rows if row.get("kept")), None)
    value = kept.get(key) if kept else None
    return -math.inf if value is None else float(value)


#: z of the two-sided 95% interval of :func:`noise_tolerance`.
NOISE_Z = 1.96


def noise_tolerance(accuracy: float, count: int, z: float = NOISE_Z) -> float:
    """How far below ``accuracy``, measured on ``count`` examples, an accuracy may fall by
    sampling noise alone: ``accuracy`` minus the lower end of its Wilson score interval (Wilson,
    JASA 1927; sound near 0 and 1, where the normal approximation's width vanishes),

        lower = (p + z^2 / 2n - z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n).

    0 without examples or for a score that is not a proportion.
    """
    if count <= 0 or not 0.0 <= accuracy <= 1.0:
        return 0.0
    z2 = z * z
    spread = z * math.sqrt(accuracy * (1 - accuracy) / count + z2 / (4 * count**2))
    lower = (accuracy + z2 / (2 * count) - spread) / (1 + z2 / count)
    return max(0.0, accuracy - lower)


def guard_adaptation(
    source_only_rows: list[dict], adapted_rows: list[dict], tolerance: float = DEFAULT_TOLERANCE
) -> GuardDecision:
    """Decide between the two trainings of a phase from their per-epoch histories."""
    if tolerance < 0:
        raise ValueError(f"the guard's tolerance must be >= 0, got {tolerance}")
    adapted, source_only = kept_score(adapted_rows), kept_score(source_only_rows)
    kept = "adapted" if adapted >= source_only - tolerance else "source-only"
    return GuardDecision(kept, adapted, source_only, tolerance)
