"""Entity F1 as a torchmetrics metric: the validation score of a tagging fit, epoch by epoch.

It counts, over every sentence of a validation epoch, the true entities, the predicted ones
and those predicted with exactly the true span and type (CoNLL-2003's exact match), reading
entities from IOB2 tags as seqeval does (:func:`seqeval.metrics.sequence_labeling.
get_entities`), then

    F1 = 2 * correct / (predicted + true)

which is seqeval's micro F1 (:func:`graft.tasks.tagging.metrics.tagging_metrics`). The counts
are sums, so torchmetrics adds them up across the processes of a distributed fit before the
score is computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from seqeval.metrics.sequence_labeling import get_entities
from torchmetrics import Metric

from graft.tasks.tagging.batches import IGNORED


class EntityF1(Metric):
    """Micro entity F1 of predicted against true tag indices ``long[B, W]`` into ``tags``;
    words whose true index is :data:`IGNORED` (padding) are left out."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, tags: Sequence[str]):
        super().__init__()
        self.tags = list(tags)
        for name in ("correct", "predicted", "true"):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        predicted, target = predicted.detach().cpu(), target.detach().cpu()
        for guess, truth in zip(predicted, target, strict=True):
            kept = truth != IGNORED
            found = set(get_entities([self.tags[i] for i in guess[kept].tolist()]))
            wanted = set(get_entities([self.tags[i] for i in truth[kept].tolist()]))
            self.correct += len(found & wanted)
            self.predicted += len(found)
            self.true += len(wanted)

    def compute(self) -> torch.Tensor:
        total = self.predicted + self.true
        return torch.where(total > 0, 2 * self.correct / total.clamp_min(1), total * 0)
