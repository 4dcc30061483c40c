"""What every pre-training objective shares: a LightningModule that graft's one engine trains.

An objective trains the backbone together with a head of its own (a projection, a language-model
head, a classifier) that is dropped afterwards; only the backbone is kept. The backbone learns at
``phase.backbone_lr`` and the objective's head at ``phase.head_lr``, with AdamW, a linear
warm-up and a cosine decay, as :class:`graft.training.TransferModule` trains a fit.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable

import lightning as L
import torch
from torch import nn

from graft.training.optim import optimizer_config
from graft.training.phase import Phase
from graft.training.sampling import loader_workers


class PretrainModule(L.LightningModule):
    """Trains on one self-supervised loss; subclasses say how a batch gives it.

    Every layer is in training mode while it trains, BatchNorm statistics and dropout included:
    a pre-training run learns the statistics of its own data. ``train_loss`` and ``val_loss``
    are logged per epoch; ``val_loss`` picks the kept epoch (``phase.monitor``).
    """

    def __init__(self, phase: Phase, weight_decay: float):
        super().__init__()
        self.phase = phase
        self.weight_decay = weight_decay

    @abstractmethod
    def batch_loss(self, batch) -> tuple[torch.Tensor, int]:
        """The mean loss of a batch and how many terms it averages (the epoch's weight)."""

    @abstractmethod
    def backbone_parameters(self) -> Iterable[nn.Parameter]:
        """The parameters of the backbone (kept after pre-training)."""

    @abstractmethod
    def head_parameters(self) -> Iterable[nn.Parameter]:
        """The parameters of the objective's own head (dropped after pre-training)."""

    def on_train_epoch_start(self) -> None:
        self.train()  # Lightning keeps the modes it finds; a fresh backbone comes in eval mode

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        loss, count = self.batch_loss(batch)
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=count,
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        loss, count = self.batch_loss(batch)
        self.log("val_loss", loss, prog_bar=True, batch_size=count, sync_dist=True)

    def optimizer_groups(self) -> list[dict]:
        """The head at ``head_lr``, the backbone at ``backbone_lr`` (a parameter shared by
        both, such as a decoder tied to the input embeddings, counts as the backbone's)."""
        backbone = list(self.backbone_parameters())
        seen = {id(p) for p in backbone}
        head = [p for p in self.head_parameters() if id(p) not in seen]
        return [
            {"params": backbone, "lr": self.phase.backbone_lr},
            {"params": head, "lr": self.phase.head_lr},
        ]

    def configure_optimizers(self):
        total = int(self.trainer.estimated_stepping_batches)
        return optimizer_config(
            self.optimizer_groups(), self.weight_decay, total, self.phase.warmup_fraction
        )


@torch.no_grad()
def mean_loss(batch_loss, module: nn.Module, loader: Iterable) -> float:
    """The loss of ``module`` over ``loader`` in evaluation mode, weighted as the epoch's
    ``val_loss`` is (the loss before any training, recorded as the reference)."""
    modes = [m.training for m in module.modules()]
    module.eval()
    total, count = 0.0, 0
    try:
        for batch in loader:
            loss, n = batch_loss(batch)
            total += float(loss) * n
            count += n
    finally:
        for m, training in zip(module.modules(), modes, strict=True):
            m.train(training)
    return total / max(count, 1)


def num_workers(config) -> int:
    """Data-loading processes for ``config`` (:func:`graft.training.sampling.loader_workers`)."""
    return loader_workers(config.num_workers)
