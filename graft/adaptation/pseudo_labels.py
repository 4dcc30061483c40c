"""Pseudo-labels of every target item, refreshed at the start of each epoch by a pass over the
whole target data (SHOT's schedule).

Liang, Hu and Feng, "Do We Really Need to Access the Source Data? Source Hypothesis Transfer for
Unsupervised Domain Adaptation" (SHOT), ICML 2020, label every target item at the start of each
epoch by the nearest class centroid of the current features
(:func:`~graft.adaptation.self_training.cluster_pseudo_labels`), then train on those labels for
the epoch. The other rule keeps only confident, class-balanced predictions
(:func:`~graft.adaptation.self_training.select_pseudo_labels` over all the target predictions,
so each class keeps at most an equal share of the target, not of a batch). The training step
looks the labels of its batch up by the items' indices, which the target loader yields in place
of labels, and hands them to the objective as ``DomainBatch.target_pseudo_labels``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from graft.adaptation.self_training import cluster_pseudo_labels, select_pseudo_labels

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

#: The ways of choosing pseudo-labels from a pass over the target data.
RULES = ("cluster", "confident")


class EpochPseudoLabels:
    """The pseudo-labels [N] of the N target items of ``loader`` (-1: none), by ``rule``.

    Args:
        loader: every target item once, in index order, without augmentation; batches of
            ``(inputs, indices)``.
        rule: ``"cluster"`` (SHOT: the nearest centroid, every item labelled) or
            ``"confident"`` (predictions of at least ``threshold``, an equal share per class).
        threshold: the confidence of the ``confident`` rule.
    """

    def __init__(self, loader: DataLoader, rule: str = "cluster", threshold: float = 0.9) -> None:
        if rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
        self.loader, self.rule, self.threshold = loader, rule, threshold
        self.labels: Tensor | None = None
        self.selected_fraction: float | None = None

    def refresh(self, backbone: nn.Module, head: nn.Module, device: torch.device) -> None:
        """Label every target item with the current ``backbone`` and ``head`` (run in eval
        mode, their modes restored after)."""
        features, probabilities = target_predictions(backbone, head, self.loader, device)
        if self.rule == "cluster":
            labels = cluster_pseudo_labels(features, probabilities)
        else:
            indices, chosen = select_pseudo_labels(probabilities, self.threshold)
            labels = torch.full((len(probabilities),), -1, dtype=torch.long)
            labels[indices] = chosen
        self.labels = labels.long().cpu()
        self.selected_fraction = float((self.labels >= 0).float().mean())

    def batch(self, indices: Tensor) -> Tensor | None:
        """The pseudo-labels of the items at ``indices`` (None before the first refresh)."""
        if self.labels is None:
            return None
        return self.labels[indices.long().cpu()].to(indices.device)


@torch.no_grad()
def target_predictions(
    backbone: nn.Module, head: nn.Module, loader: DataLoader, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Features [N, d] and softmax probabilities [N, C] of every item of ``loader`` (on the CPU,
    float32), computed in eval mode; each module's train/eval mode is restored after."""
    from lightning.pytorch.utilities import move_data_to_device

    modules = [*backbone.modules(), *head.modules()]
    modes = [module.training for module in modules]
    backbone.eval(), head.eval()
    features, probabilities = [], []
    try:
        for inputs, _ in loader:
            batch_features = backbone(move_data_to_device(inputs, device))
            logits = head(batch_features).float()
            features.append(batch_features.float().cpu())
            probabilities.append(torch.softmax(logits, dim=-1).cpu())
    finally:
        for module, training in zip(modules, modes, strict=True):
            module.train(training)
    return torch.cat(features), torch.cat(probabilities)
