"""The interface of a domain-adaptation loss: a scalar that aligns source and target features.

A method sees a batch of source features and a batch of target features from the same backbone
and returns one number; the training step adds ``weight * loss`` to the classification loss on
the source batch. Methods never own the training loop: a schedule that depends on how far
training has gone (DANN's gradient-reversal warm-up) reads :attr:`AdaptationLoss.progress`,
which the training step sets before each call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ScheduledModule(nn.Module):
    """A module that knows how far training has gone: :attr:`progress`, in [0, 1] (0.0 until
    the training step sets it), for schedules such as DANN's gradient-reversal warm-up."""

    def __init__(self) -> None:
        super().__init__()
        self.progress = 0.0

    @property
    def progress(self) -> float:
        """The share of training done, in [0, 1]; methods may use it for schedules."""
        return self._progress

    @progress.setter
    def progress(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:  # also refuses NaN
            raise ValueError(f"progress is the share of training done, in [0, 1], got {value}")
        self._progress = value


class AdaptationLoss(ScheduledModule):
    """Base class of the alignment losses: ``forward(source [n, d], target [m, d]) -> scalar``.

    Attributes:
        name: the method's name in :data:`graft.adaptation.ADAPTATIONS` (``--adapt``).
        progress: the share of training done, in [0, 1] (0.0 until the training step sets it).
    """

    name: str = ""

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        """The alignment loss (a scalar) between ``source`` [n, d] and ``target`` [m, d]."""
        raise NotImplementedError


def check_features(source: Tensor, target: Tensor, min_rows: int = 1) -> None:
    """Raise ValueError unless ``source`` [n, d] and ``target`` [m, d] are 2-d feature batches of
    the same width with at least ``min_rows`` rows each."""
    for name, value in (("source", source), ("target", target)):
        if value.ndim != 2:
            raise ValueError(f"{name} features must be 2-d [rows, dim], got shape {value.shape}")
        if value.shape[0] < min_rows:
            raise ValueError(
                f"{name} features have {value.shape[0]} row(s); this loss needs at least "
                f"{min_rows} per domain"
            )
    if source.shape[1] != target.shape[1]:
        raise ValueError(
            f"source features are {source.shape[1]}-d but target features {target.shape[1]}-d"
        )


def full_precision(value: Tensor) -> Tensor:
    """``value`` as float32 when it is half precision or not floating point; float32 and float64
    are kept as they are."""
    if value.dtype in (torch.float32, torch.float64):
        return value
    return value.float()


def no_autocast(value: Tensor) -> torch.autocast:
    """A context that turns mixed precision off on ``value``'s device, so that a loss computes in
    the precision of its inputs (covariances and kernels lose too much in float16)."""
    return torch.autocast(device_type=value.device.type, enabled=False)
