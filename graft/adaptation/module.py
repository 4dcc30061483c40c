"""The training module of domain adaptation: the task loss on source data plus an adaptation
objective on both domains (or, without source data, the objective alone), in the one engine.

Each training batch is a pair ``{"source": (inputs, labels), "target": (inputs, indices)}``
drawn by Lightning's combined loader. The step runs the backbone and the head on both domains
and adds ``weight * objective(DomainBatch(...))`` (any method of
:mod:`graft.adaptation.catalogue`: DANN, CORAL, MK-MMD, CDAN+E, MCC, MDD, self-training and
their combinations) to the classification loss. A feature-only method (DANN, CORAL, MK-MMD)
gets the head's target outputs without dropout or gradient, so it trains exactly as before the
objectives read logits. Source-free (``source_free=True``, :mod:`graft.adaptation.source_free`)
a batch is ``(inputs, indices)`` of the target alone, the head is frozen (in eval mode, out of
the optimiser) and the objective is the whole loss: SHOT's recipe.

Validation runs, in order: the labelled source validation data (``val_loss``, ``val_score`` as
in any fit; not when source-free), the unlabelled target sample (the label-free
``val_target_im``, which chooses the kept epoch without any target label, and
``val_target_snd`` and ``val_target_entropy``, reported), and, when given, labelled target data
(``val_target_acc``, reported only, never used to choose).
"""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassAccuracy

from graft.adaptation.objective import AdaptationObjective, DomainBatch
from graft.adaptation.pseudo_labels import EpochPseudoLabels
from graft.adaptation.validation import (
    information_maximization,
    prediction_entropy,
    soft_neighborhood_density,
)
from graft.training.module import TransferModule

#: The label-free score that picks the kept epoch (higher is better): the mutual information
#: between target examples and their predictions (:func:`information_maximization`), which a
#: collapsed model cannot win, unlike soft neighbourhood density.
TARGET_MONITOR = "val_target_im"

#: What each objective may report after a call, logged as ``train_<name>`` each epoch.
_REPORTED = ("domain_accuracy", "discrepancy", "selected_fraction")


class AdaptationModule(TransferModule):
    """:class:`TransferModule` that also adapts to target data with ``objective``.

    Args:
        objective: the adaptation objective; its parameters (a domain discriminator, MDD's
            adversarial head) train at the head's learning rate.
        adapt_weight: its weight against the classification loss.
        source_free: train on target batches alone, the head frozen (see the module docstring).
        pseudo_labels: labels of every target item refreshed each epoch (SHOT), handed to the
            objective; None lets a self-training objective choose from each batch.
        **module_options: as for :class:`TransferModule` (a backbone is required).
    """

    def __init__(
        self,
        *args,
        objective: AdaptationObjective,
        adapt_weight: float,
        source_free: bool = False,
        pseudo_labels: EpochPseudoLabels | None = None,
        **module_options,
    ):
        super().__init__(*args, **module_options)
        if self.backbone is None:
            raise ValueError("domain adaptation trains the backbone: give one")
        if source_free and not objective.source_free:
            raise ValueError(f"{objective.name} needs source data; it cannot adapt source-free")
        self.objective = objective
        self.adapt_weight = adapt_weight
        self.source_free = source_free
        self.pseudo_labels = pseudo_labels
        #: What each validation loader holds, in order (see the module docstring).
        self.validation_roles = ("source",) * (not source_free) + ("target", "target_test")
        if source_free:
            self.head.requires_grad_(False)
        self.target_accuracy = MulticlassAccuracy(
            num_classes=self.head.num_classes, average="micro"
        )
        self._target_probabilities: list[torch.Tensor] = []

    # Training ----------------------------------------------------------------------------------

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.pseudo_labels is not None:
            self.pseudo_labels.refresh(self.backbone, self.head, self.device)
            self.log("train_pseudo_labelled", self.pseudo_labels.selected_fraction)

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        if self.source_free:
            return self._source_free_step(batch)
        inputs, labels = batch["source"]
        target_inputs, target_indices = batch["target"]
        source_features = self.backbone(inputs)
        source_logits = self.head(source_features)
        task_loss = self.loss(source_logits, self.prepare_targets(labels), train=True)
        self.objective.progress = self._progress()
        target_features = self.backbone(target_inputs)
        if min(len(source_features), len(target_features)) < 2:  # a ragged last batch: no
            transfer_loss = source_features.sum() * 0.0  # second-order statistics to align
        else:
            domains = DomainBatch(
                source_features=source_features,
                source_logits=_rows(source_logits),
                source_labels=labels if labels.ndim == 1 else None,
                target_features=target_features,
                target_logits=self._target_logits(target_features),
                target_pseudo_labels=self._pseudo_labels(target_indices),
            )
            transfer_loss = self.objective(domains)
        loss = task_loss + self.adapt_weight * transfer_loss
        logged = {
            "train_loss": loss,
            "train_task_loss": task_loss,
            "train_transfer_loss": transfer_loss,
        }
        self._log_training(logged, len(labels))
        return loss

    def _source_free_step(self, batch) -> torch.Tensor:
        """Target batches alone, the objective as the whole loss (the head stays frozen)."""
        inputs, indices = batch
        self.objective.progress = self._progress()
        features = self.backbone(inputs)
        domains = DomainBatch(
            target_features=features,
            target_logits=_rows(self.head(features)),
            target_pseudo_labels=self._pseudo_labels(indices),
        )
        loss = self.adapt_weight * self.objective(domains)
        self._log_training({"train_loss": loss, "train_transfer_loss": loss}, len(indices))
        return loss

    def _progress(self) -> float:
        return min(1.0, self.global_step / max(1, self.trainer.estimated_stepping_batches))

    def _target_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The head's outputs on target features: as trained (dropout, gradient) for an objective
        that reads them; otherwise in eval mode and detached, drawing no random numbers."""
        if self.objective.uses_logits:
            return _rows(self.head(features))
        training = self.head.training
        self.head.eval()
        try:
            with torch.no_grad():
                return _rows(self.head(features))
        finally:
            self.head.train(training)

    def _pseudo_labels(self, indices: torch.Tensor) -> torch.Tensor | None:
        return None if self.pseudo_labels is None else self.pseudo_labels.batch(indices)

    def _log_training(self, logged: dict, batch_size: int) -> None:
        """Log the losses and what the objective reports (domain accuracy, MDD's discrepancy,
        the share of pseudo-labelled rows, each part of a combination)."""
        for module in self.objective.modules():
            for name in _REPORTED:
                value = getattr(module, name, None)
                if value is not None and f"train_{name}" not in logged:
                    logged[f"train_{name}"] = value
            for part, value in getattr(module, "values", {}).items():
                logged[f"train_{part}_loss"] = value
        if "train_domain_accuracy" in logged:  # the name the first methods logged it under
            logged["train_domain_acc"] = logged.pop("train_domain_accuracy")
        self.log_dict(logged, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.source_free:
            self.head.eval()  # the frozen hypothesis: no dropout on the target's predictions
        return self

    def optimizer_groups(self) -> list[dict]:
        """Those of :class:`TransferModule` (without the head when it is frozen), plus the
        objective's own parameters (a discriminator, an adversarial head) at the head's rate."""
        groups = super().optimizer_groups()
        if self.source_free:
            head = {id(p) for p in self.head.parameters()}
            groups = [g for g in groups if not head & {id(p) for p in g["params"]}]
        own = list(self.objective.parameters())
        if own:
            groups.append({"params": own, "lr": self.phase.head_lr})
        return groups

    def trained_parameters(self) -> int:
        trained = super().trained_parameters()
        if self.source_free:
            trained -= sum(p.numel() for p in self.head.parameters())
        return trained + sum(p.numel() for p in self.objective.parameters())

    # Validation --------------------------------------------------------------------------------

    def validation_step(self, batch, batch_index: int, dataloader_idx: int = 0) -> None:
        role = self.validation_roles[dataloader_idx]
        if role == "source":
            return super().validation_step(batch, batch_index)
        inputs, labels = batch
        outputs = self(inputs)
        if role == "target":
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


def _rows(outputs: torch.Tensor) -> torch.Tensor:
    """A head's outputs as 2-d [rows, outputs] (a regression head's may be 1-d)."""
    return outputs.reshape(len(outputs), -1)
