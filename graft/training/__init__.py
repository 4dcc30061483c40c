"""The training engine: one LightningModule and one Trainer-driven phase runner."""

from graft.training.engine import run_phase
from graft.training.module import Phase, TransferModule

__all__ = ["Phase", "TransferModule", "run_phase"]
