"""Running one training phase with Lightning's Trainer: the only training loop in graft.

Every phase checkpoints after its first and its last epoch, and in between after an epoch when
:data:`CHECKPOINT_INTERVAL` seconds have passed since the previous save
(``checkpoints/<phase>/last.ckpt``: weights, optimiser, scheduler, early-stopping state and the
history so far), and marks its end with ``done.json``. A killed fit resumes where it stopped:
finished phases load their kept weights, the interrupted one continues from its last saved
epoch (at most a minute of training is repeated). Each epoch reseeds the random generators
from ``(seed, epoch)`` and the samplers order the data by ``(seed, epoch)``, so a resumed run
replays exactly what an uninterrupted one would have done.

Precision, devices, nodes and the distributed strategy go to the Trainer as they are. Phases that
train the head alone on cached features (milliseconds an epoch) always run in one process, and
on one thread (:func:`head_threads`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pickle
import time
import warnings
import zipfile
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from graft.errors import ConfigError, RunError
from graft.runs.directory import read_json, write_json
from graft.training.distributed import EngineOptions
from graft.training.module import TransferModule

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*exists and is not empty.*")
warnings.filterwarnings("ignore", ".*srun.*")
warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")  # frozen BatchNorm, on purpose
warnings.filterwarnings("ignore", ".*LeafSpec.*")
warnings.filterwarnings("ignore", ".*no `val_dataloader`.*")  # few labels: no validation data


#: Seconds between two saves of a phase's resume checkpoint. Saving a 22M-parameter encoder
#: with its AdamW state writes about 270 MB; after every epoch of one step (a few labelled
#: examples) that cost more than the step itself.
CHECKPOINT_INTERVAL = 60.0

#: Lightning callbacks added to every phase trained inside :func:`training_callbacks`.
_EXTRA_CALLBACKS: ContextVar[tuple] = ContextVar("graft_training_callbacks", default=())


@contextlib.contextmanager
def training_callbacks(*callbacks: L.Callback) -> Iterator[None]:
    """Add ``callbacks`` to the Trainer of every phase trained inside the block (in this thread):
    how ``graft tune`` hears each epoch's validation score and stops a pruned trial, without a
    hyperparameter of the fit. Callbacks that keep state should not define ``state_dict``."""
    token = _EXTRA_CALLBACKS.set((*_EXTRA_CALLBACKS.get(), *callbacks))
    try:
        yield
    finally:
        _EXTRA_CALLBACKS.reset(token)


class PacedCheckpoint(ModelCheckpoint):
    """Lightning's checkpoint of the last epoch, saved after the first and the final epoch of
    the phase (its last, or one where training stops early) and otherwise only once
    ``interval`` seconds have passed since the previous save."""

    def __init__(self, interval: float = CHECKPOINT_INTERVAL, **options):
        super().__init__(**options)
        self.interval = interval
        self._saved_at = float("-inf")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        final = trainer.should_stop or trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
        if final or time.monotonic() - self._saved_at >= self.interval:
            super().on_train_epoch_end(trainer, pl_module)
            self._saved_at = time.monotonic()


class EpochHistory(L.Callback):
    """Records, after each epoch, the logged metrics and the elapsed time.

    Its rows are part of every checkpoint, so the history of a resumed phase is complete.
    """

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

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])


class EpochSeed(L.Callback):
    """Reseeds Python, NumPy and torch from ``(seed, epoch)`` before each epoch: dropout,
    augmentation, mixup and data-loading workers then depend on nothing that came before."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer, module) -> None:
        epoch_seed = self.seed + 7919 * trainer.current_epoch
        L.seed_everything(epoch_seed, workers=True, verbose=False)
        # A DataLoader draws its workers' base seed when its iterator is made, which Lightning
        # does before this hook on a resumed epoch and after it otherwise: give the training
        # loader a generator of its own (see EpochSampler) so that draw never moves the
        # global one, and reseed it too.
        loaders = trainer.train_dataloader
        for loader in loaders.values() if isinstance(loaders, dict) else [loaders]:
            generator = getattr(loader, "generator", None)
            if generator is not None:
                generator.manual_seed(epoch_seed)


@contextlib.contextmanager
def head_threads(module: TransferModule) -> Iterator[None]:
    """One intra-op thread for torch while ``module`` trains a head on cached features (no
    backbone), the process's threads again afterwards.

    A head's operations are tiny (a linear layer over a batch of feature vectors): splitting
    them over threads gains nothing, and each one then waits at OpenMP's barrier for every
    thread, which on a machine whose cores are busy waits for the scheduler. On the 2 shared
    cores graft is benchmarked on, the head phase of a default sst2 fit (MiniLM, 1,000 rows,
    448 steps) took 16.8 s of CPU time on 2 threads and 1.5 s on one, for the same head
    (bench/RESULTS.md, issue #35).
    """
    if getattr(module, "backbone", None) is not None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _every_phase(seed: int) -> list[L.Callback]:
    """The callbacks of every phase: the epoch's seed, and those of :func:`training_callbacks`."""
    return [EpochSeed(seed), *_EXTRA_CALLBACKS.get()]


def require_logger(kind: str) -> None:
    """Refuse ``--logger kind`` when its package is missing (checked before training, not
    when a trained model is loaded: serving needs no logger)."""
    packages = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}
    needed = packages.get(kind)
    if needed and not any(importlib.util.find_spec(name) for name in needed):
        raise ConfigError(f"--logger {kind} needs the {needed[0]} package: pip install {needed[0]}")


def training_loggers(kind: str, folder: Path, phase: str) -> list:
    """Lightning's loggers for one phase: always the CSV files, plus ``kind``'s."""
    loggers = [CSVLogger(folder, name=phase, version="")]
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(folder / "tensorboard", name=phase, version=""))
    elif kind == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if uri is None:  # files beside the run, which MLflow 3 keeps only on request
            uri = (folder / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        loggers.append(MLFlowLogger(experiment_name="graft", run_name=phase, tracking_uri=uri))
    return loggers


def run_phase(
    module: TransferModule,
    train_loader: DataLoader,
    val_loader: DataLoader,
    work_dir: Path,
    seed: int,
    options: EngineOptions | None = None,
    resume: bool = False,
) -> list[dict]:
    """Train ``module`` for its phase, keep its best epoch (``phase.monitor``), return history.

    Checkpoints go to ``work_dir/checkpoints/<phase>`` and the per-epoch CSV log to
    ``work_dir/logs/<phase>``. With ``resume``, a finished phase is loaded instead of trained
    and an interrupted one continues from its last checkpoint. The module ends holding the
    weights of its best epoch, on the CPU.
    """
    options = options or EngineOptions()
    phase = module.phase
    folder = work_dir / "checkpoints" / phase.name
    done = folder / "done.json"
    if resume and done.is_file():
        return _load_finished(module, folder, done)
    L.seed_everything(seed, workers=True, verbose=False)
    history = EpochHistory(phase.name)
    mode = "min" if phase.monitor.endswith("loss") else "max"
    best = ModelCheckpoint(
        dirpath=folder,
        filename="best",
        monitor=phase.monitor,
        mode=mode,
        save_top_k=1,
        save_weights_only=True,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    last = PacedCheckpoint(
        dirpath=folder,
        filename="last",
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    choosing = [
        best,
        EarlyStopping(monitor=phase.monitor, mode=mode, patience=phase.patience),
    ]
    trainer = L.Trainer(
        max_epochs=phase.epochs,
        logger=training_loggers(options.logger, work_dir / "logs", phase.name),
        callbacks=[last, history, *_every_phase(seed), *([] if phase.keep_last else choosing)],
        enable_progress_bar=options.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=options.grad_clip,
        log_every_n_steps=1,
        deterministic=False,
        **options.trainer_arguments(distributed_phase=phase.train_backbone),
    )
    last_file = folder / "last.ckpt"
    if resume and last_file.is_file():
        read_checkpoint(last_file, mmap=True)  # refused as data before Lightning reads it
    with head_threads(module):
        trainer.fit(
            module,
            train_loader,
            val_loader,
            ckpt_path=str(last_file) if resume and last_file.is_file() else None,
        )
    # Under ddp_spawn the callbacks ran in the workers: their rows are in the last checkpoint.
    rows = history.rows or _checkpoint_rows(last_file, history)
    _mark_kept_epoch(rows, *(("epoch", "max") if phase.keep_last else (phase.monitor, mode)))
    _load_weights(module, Path(best.best_model_path) if best.best_model_path else last_file)
    if trainer.is_global_zero:
        kept = "best.ckpt" if best.best_model_path else "last.ckpt"
        write_json(done, {"history": rows, "weights": kept})
    module.cpu().eval()
    return rows


def _load_finished(module: TransferModule, folder: Path, done: Path) -> list[dict]:
    record = read_json(done)
    if record.get("weights") not in ("best.ckpt", "last.ckpt"):
        raise RunError(f"{done}: names no checkpoint of its phase ({record.get('weights')!r})")
    _load_weights(module, folder / record["weights"])
    module.cpu().eval()
    return record["history"]


def _load_weights(module: TransferModule, checkpoint: Path) -> None:
    if checkpoint.is_file():
        state = read_checkpoint(checkpoint)
        module.load_state_dict(state["state_dict"])


def _checkpoint_rows(checkpoint: Path, history: EpochHistory) -> list[dict]:
    if not checkpoint.is_file():
        return []
    state = read_checkpoint(checkpoint)
    for key, value in state.get("callbacks", {}).items():
        if key == history.state_key or key.startswith("EpochHistory"):
            return list(value["rows"])
    return []


def read_checkpoint(checkpoint: Path, mmap: bool = False) -> dict:
    """A phase checkpoint's contents, read as data (``weights_only``: tensors, numbers,
    strings, containers; a pickle naming any other object is never run), or graft's
    :class:`RunError` naming the file when it is no checkpoint graft wrote."""
    try:
        state = torch.load(
            checkpoint,
            map_location="cpu",
            weights_only=True,
            mmap=mmap and zipfile.is_zipfile(checkpoint),
        )
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise RunError(
            f"{checkpoint}: not a checkpoint graft wrote, refused without running it ({reason}); "
            "delete the run's checkpoints folder to train again from the start"
        ) from None
    if not isinstance(state, dict):
        raise RunError(f"{checkpoint}: not a checkpoint graft wrote (it holds no dictionary)")
    return state


def _mark_kept_epoch(rows: list[dict], monitor: str, mode: str) -> None:
    """Flag the epoch whose weights the checkpoint kept (the first best one, as Lightning does)."""
    scored = [row for row in rows if monitor in row]
    if scored:
        pick = min if mode == "min" else max
        best = pick(scored, key=lambda row: row[monitor])
        for row in rows:
            row["kept"] = row is best
