"""Running one training phase with Lightning's Trainer: the only training loop in graft."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from graft.training.module import TransferModule

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*exists and is not empty.*")
warnings.filterwarnings("ignore", ".*srun.*")
warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")  # frozen BatchNorm, on purpose
warnings.filterwarnings("ignore", ".*LeafSpec.*")


class EpochHistory(L.Callback):
    """Records, after each epoch's validation, the logged metrics and the elapsed time."""

    def __init__(self, phase: str):
        self.phase = phase
        self.rows: list[dict] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        self.rows.append(
            {
                "phase": self.phase,
                "epoch": trainer.current_epoch + 1,
                "seconds": round(time.perf_counter() - self._start, 3),
                **metrics,
            }
        )


def run_phase(
    module: TransferModule,
    train_loader: DataLoader,
    val_loader: DataLoader,
    work_dir: Path,
    seed: int,
    progress: bool = True,
    grad_clip: float | None = None,
) -> list[dict]:
    """Train ``module`` for its phase, keep its best epoch (``phase.monitor``), return history.

    Checkpoints go to ``work_dir/checkpoints/<phase>`` and the per-epoch CSV log to
    ``work_dir/logs/<phase>``; the module ends holding the weights of its best epoch.
    """
    phase = module.phase
    L.seed_everything(seed, workers=True, verbose=False)
    history = EpochHistory(phase.name)
    checkpoint = ModelCheckpoint(
        dirpath=work_dir / "checkpoints" / phase.name,
        filename="best",
        monitor=phase.monitor,
        mode="min" if phase.monitor.endswith("loss") else "max",
        save_top_k=1,
        save_weights_only=True,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        max_epochs=phase.epochs,
        accelerator="auto",
        devices=1,
        logger=CSVLogger(work_dir / "logs", name=phase.name, version=""),
        callbacks=[
            history,
            checkpoint,
            EarlyStopping(monitor=phase.monitor, mode=checkpoint.mode, patience=phase.patience),
        ],
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=grad_clip,
        log_every_n_steps=1,
        deterministic=False,
    )
    trainer.fit(module, train_loader, val_loader)
    _mark_kept_epoch(history.rows, phase.monitor, checkpoint.mode)
    if checkpoint.best_model_path:
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
        module.load_state_dict(state["state_dict"])
    module.cpu().eval()
    return history.rows


def _mark_kept_epoch(rows: list[dict], monitor: str, mode: str) -> None:
    """Flag the epoch whose weights the checkpoint kept (the first best one, as Lightning does)."""
    scored = [row for row in rows if monitor in row]
    if scored:
        pick = min if mode == "min" else max
        best = pick(scored, key=lambda row: row[monitor])
        for row in rows:
            row["kept"] = row is best
