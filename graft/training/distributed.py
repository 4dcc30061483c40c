"""Where training runs: precision, devices, nodes, and which process of a distributed fit this
is. Read without importing Lightning, so that the run directory and the estimator can ask
whether they are the first process before any training starts."""

from __future__ import annotations

import os
from dataclasses import dataclass

from graft.errors import ConfigError

#: Set by the command line: the process can be re-run by Lightning's script launcher (``ddp``,
#: ``fsdp``); from Python, DDP spawns its workers instead (``ddp_spawn``).
_script_entry = False


def allow_script_relaunch() -> None:
    """Declare that this process runs the ``graft`` command, which Lightning may launch again
    once per extra device (the standard DDP launch: every process runs the same command)."""
    global _script_entry
    _script_entry = True


def is_global_zero() -> bool:
    """True in the one process of a (possibly distributed) fit that writes the run directory."""
    return all(
        int(os.environ.get(name) or 0) == 0
        for name in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK")
    )


def _launched_externally() -> bool:
    """True under torchrun, a multi-task SLURM job, or as a child of Lightning's launcher."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    slurm_tasks = int(os.environ.get("SLURM_NTASKS") or 1)
    return (
        "LOCAL_RANK" in os.environ
        or TorchElasticEnvironment.detect()
        or (SLURMEnvironment.detect() and slurm_tasks > 1)
    )


@dataclass(frozen=True)
class EngineOptions:
    """How the Trainer runs: numeric precision, hardware, scale, and what it shows.

    Attributes:
        precision: ``32``, ``16-mixed`` (CUDA only) or ``bf16-mixed``.
        devices, num_nodes: processes per node and nodes; more than one runs ``distributed``.
        distributed: ``ddp`` or ``fsdp`` (None: ddp when more than one process).
        accelerator: Lightning's accelerator (``auto``: a GPU when there is one).
        grad_clip: clip the gradient norm to this value (None: no clipping).
        progress: show the progress bar.
        logger: where the training curves go besides the run's CSV logs: ``csv`` (only
            there), ``tensorboard`` (``logs/tensorboard``) or ``mlflow`` (``logs/mlruns``, or
            the server in ``MLFLOW_TRACKING_URI``).
    """

    precision: str = "32"
    devices: int = 1
    num_nodes: int = 1
    distributed: str | None = None
    accelerator: str = "auto"
    grad_clip: float | None = None
    progress: bool = True
    logger: str = "csv"

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    def trainer_arguments(self, distributed_phase: bool) -> dict:
        """Trainer keyword arguments; one process for phases that are not distributed."""
        precision = "32-true" if self.precision == "32" else self.precision
        if not distributed_phase or self.world_size == 1:
            return dict(accelerator=self.accelerator, devices=1, precision=precision)
        return dict(
            accelerator=self.accelerator,
            devices=self.devices,
            num_nodes=self.num_nodes,
            strategy=self._lightning_strategy(),
            precision=precision,
        )

    def _lightning_strategy(self) -> str:
        name = self.distributed or "ddp"
        relaunchable = _script_entry or _launched_externally()
        if name == "ddp":
            return "ddp" if relaunchable else "ddp_spawn"
        if not relaunchable:
            raise ConfigError(
                "--distributed fsdp needs one process per device: run it from the `graft` "
                "command line or under torchrun/SLURM (from Python, use distributed='ddp')"
            )
        return "fsdp"
