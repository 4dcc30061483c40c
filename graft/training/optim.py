"""The optimiser and learning-rate schedule of every training phase: AdamW with a linear
warm-up and a cosine decay to zero, stepped per batch.

AdamW runs PyTorch's fused kernel (``fused=True``) whenever every trained parameter is a
floating-point tensor on the CPU or a CUDA device. On the CPU, the default for-loop update of
a 22M-parameter encoder (MiniLM) took 0.17 s a step on one thread against 0.02 s fused: with a
few examples a step, the update cost more than the forward and backward passes
(bench/RESULTS.md, "Few labels at SetFit's cost").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

#: Device types with a fused AdamW kernel in PyTorch.
FUSED_DEVICES = frozenset({"cpu", "cuda"})


def adamw(groups: list[dict], weight_decay: float) -> torch.optim.AdamW:
    """AdamW over parameter ``groups`` (each with its ``lr``), fused where it can be."""
    parameters = [p for group in groups for p in group["params"]]
    devices = {p.device.type for p in parameters}
    fused = (
        bool(parameters)
        and len(devices) == 1
        and devices <= FUSED_DEVICES
        and all(p.is_floating_point() for p in parameters)
    )
    return torch.optim.AdamW(groups, weight_decay=weight_decay, fused=fused or None)


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """The learning-rate factor of each step: a linear warm-up over ``warmup_fraction`` of the
    steps, then a cosine decay to zero (``LambdaLR``'s function)."""
    total = max(1, total_steps)
    warmup = int(total * warmup_fraction)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return schedule


def optimizer_config(
    groups: list[dict], weight_decay: float, total_steps: int, warmup_fraction: float
) -> dict:
    """What a LightningModule's ``configure_optimizers`` returns: :func:`adamw` and its
    :func:`warmup_cosine` schedule over ``total_steps``, stepped per batch."""
    optimizer = adamw(groups, weight_decay)
    schedule = warmup_cosine(total_steps, warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
