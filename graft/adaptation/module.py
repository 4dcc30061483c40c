"""The training module of domain adaptation: the task loss on source data plus an alignment loss
between source and target features, in the one engine.

Each training batch is a pair ``{"source": (inputs, labels), "target": (inputs, _)}`` drawn by
Lightning's combined loader; the step runs the backbone on both, the head on the source only,
and adds ``weight * adaptation(source_features, target_features)`` (DANN, CORAL or MK-MMD from
:mod:`graft.adaptation`) to the classification loss. Validation runs three loaders: the
labelled source validation data (``val_loss``, ``val_score`` as in any fit), the unlabelled
target data (the label-free ``val_target_im``, which chooses the kept epoch without any target
label, and ``val_target_snd`` and ``val_target_entropy``, reported), and, when given, labelled
target data (``val_target_acc``, reported only, never used to choose).
"""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassAccuracy

from graft.adaptation import (
    AdaptationLoss,
    information_maximization,
    prediction_entropy,
    soft_neighborhood_density,
)
from graft.training.module import TransferModule

#: The label-free score that picks the kept epoch (higher is better): the mutual information
#: between target examples and their predictions (:func:`information_maximization`), which a
#: collapsed model cannot win, unlike soft neighbourhood density.
TARGET_MONITOR = "val_target_im"

SOURCE_VAL, TARGET_UNLABELED, TARGET_TEST = 0, 1, 2


class AdaptationModule(TransferModule):
    """:class:`TransferModule` that also aligns target features with ``adaptation``.

    Args:
        adaptation: the alignment loss; its parameters (DANN's domain discriminator) train at
            the head's learning rate.
        adapt_weight: its weight against the classification loss.
        **module_options: as for :class:`TransferModule` (a backbone is required).
    """

    def __init__(self, *args, adaptation: AdaptationLoss, adapt_weight: float, **module_options):
        super().__init__(*args, **module_options)
        if self.backbone is None:
            raise ValueError("domain adaptation trains the backbone: give one")
        self.adaptation = adaptation
        self.adapt_weight = adapt_weight
        self.target_accuracy = MulticlassAccuracy(
            num_classes=self.head.num_classes, average="micro"
        )
        self._target_probabilities: list[torch.Tensor] = []

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, labels = batch["source"]
        target_inputs, _ = batch["target"]
        source_features = self.backbone(inputs)
        task_loss = self.loss(self.head(source_features), self.prepare_targets(labels), train=True)
        self.adaptation.progress = min(
            1.0, self.global_step / max(1, self.trainer.estimated_stepping_batches)
        )
        target_features = self.backbone(target_inputs)
        if min(len(source_features), len(target_features)) < 2:  # a ragged last batch: no
            transfer_loss = source_features.sum() * 0.0  # second-order statistics to align
        else:
            transfer_loss = self.adaptation(source_features, target_features)
        loss = task_loss + self.adapt_weight * transfer_loss
        logged = {
            "train_loss": loss,
            "train_task_loss": task_loss,
            "train_transfer_loss": transfer_loss,
        }
        domain_accuracy = getattr(self.adaptation, "domain_accuracy", None)
        if domain_accuracy is not None:
            logged["train_domain_acc"] = domain_accuracy
        self.log_dict(logged, on_step=False, on_epoch=True, batch_size=len(labels), sync_dist=True)
        return loss

    def validation_step(self, batch, batch_index: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx == SOURCE_VAL:
            return super().validation_step(batch, batch_index)
        inputs, labels = batch
        outputs = self(inputs)
        if dataloader_idx == TARGET_UNLABELED:
            self._target_probabilities.append(torch.softmax(outputs.float(), dim=-1))
        else:
            self.target_accuracy(outputs, labels)
            self.log(
                "val_target_acc",
                self.target_accuracy,
                batch_size=len(labels),
                add_dataloader_idx=False,
            )

    def on_validation_epoch_end(self) -> None:
        if not self._target_probabilities:
            return
        probabilities = torch.cat(self._target_probabilities)
        self._target_probabilities.clear()
        if self.trainer.world_size > 1:  # the score needs every target prediction at once
            probabilities = self.all_gather(probabilities).flatten(0, 1)
        self.log(TARGET_MONITOR, information_maximization(probabilities), prog_bar=True)
        self.log("val_target_snd", soft_neighborhood_density(probabilities))
        self.log("val_target_entropy", prediction_entropy(probabilities))

    def optimizer_groups(self) -> list[dict]:
        """Those of :class:`TransferModule`, plus the adaptation's own parameters (DANN's
        discriminator) at the head's rate."""
        groups = super().optimizer_groups()
        own = list(self.adaptation.parameters())
        if own:
            groups.append({"params": own, "lr": self.phase.head_lr})
        return groups
