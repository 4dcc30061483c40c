"""LoRA adapters on any backbone, injected with peft: which layers, and which weights are whose.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") leaves a pretrained
weight ``W`` frozen and learns a low-rank update: ``h = W x + (alpha / r) * B A x``, with
``A: [r, in]`` random and ``B: [out, r]`` zero at the start, so the adapted network first
computes exactly what the pretrained one did. peft's ``inject_adapter_in_model`` replaces each
targeted ``nn.Linear`` or ``nn.Conv2d`` in place by a wrapper holding the original layer
(``<name>.base_layer``) and the adapter (``<name>.lora_A.default``, ``<name>.lora_B.default``).

Example::

    settings = LoraSettings(rank=8, alpha=16.0, targets=tuple(backbone.lora_targets()))
    inject_lora(backbone, settings)
    adapter_state(backbone.state_dict())  # only the A and B matrices
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from graft.errors import ConfigError

if TYPE_CHECKING:
    from graft.backbones.base import Backbone

#: Marks the names of adapter tensors in a state dict (peft's ``lora_A``, ``lora_B``).
ADAPTER_MARKER = "lora_"

#: Layer types peft's LoRA adapts (and whose names the error messages suggest).
ADAPTABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


@dataclass(frozen=True)
class LoraSettings:
    """The rank ``r``, the scale numerator ``alpha`` and the targeted module-name patterns
    (a module's full name, or its last dot-separated components: ``query``, ``attn.qkv``)."""

    rank: int
    alpha: float
    targets: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "lora", **asdict(self), "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LoraSettings:
        return cls(int(values["rank"]), float(values["alpha"]), tuple(values["targets"]))


def is_adapter_key(name: str) -> bool:
    return ADAPTER_MARKER in name


def matches(name: str, pattern: str) -> bool:
    """peft's rule for a list of targets: the full name, or its trailing components."""
    return name == pattern or name.endswith("." + pattern)


def known_targets(module: nn.Module, families: tuple[tuple[str, ...], ...]) -> list[str]:
    """The patterns of the first family whose first pattern names a layer of ``module``,
    those of its patterns that do; [] when no family applies."""
    names = [name for name, _ in module.named_modules()]
    for family in families:
        found = [t for t in family if any(matches(n, t) for n in names)]
        if found and found[0] == family[0]:
            return found
    return []


def adaptable_names(module: nn.Module) -> list[str]:
    """The distinct last components of the names of the layers LoRA can adapt, in order."""
    names = (n.rsplit(".", 1)[-1] for n, m in module.named_modules() if isinstance(m, ADAPTABLE))
    return list(dict.fromkeys(names))


def inject_lora(backbone: Backbone, settings: LoraSettings) -> None:
    """Wrap every module of ``backbone`` that a target pattern names with a LoRA adapter.

    Raises :class:`ConfigError` for a pattern that names no module or a layer LoRA cannot
    adapt, or for a backbone that holds adapters already.
    """
    from peft import LoraConfig, inject_adapter_in_model

    if backbone.adapter is not None:
        raise ConfigError(f"{backbone.spec} holds LoRA adapters already")
    names = [name for name, _ in backbone.named_modules()]
    for pattern in settings.targets:
        if not any(matches(name, pattern) for name in names):
            valid = adaptable_names(backbone)
            raise ConfigError(
                f"--lora-targets {pattern!r} matches no module of {backbone.spec}; its layers "
                f"that LoRA can adapt include: {', '.join(valid[:12])}"
                + (", ..." if len(valid) > 12 else "")
            )
        unsupported = [
            (n, m)
            for n, m in backbone.named_modules()
            if matches(n, pattern)
            if not isinstance(m, ADAPTABLE)
        ]
        if unsupported:
            name, module = unsupported[0]
            raise ConfigError(
                f"--lora-targets {pattern!r} names {name}, a {type(module).__name__}: LoRA "
                "adapts Linear, Conv and Embedding layers, such as: "
                + ", ".join(adaptable_names(backbone)[:12])
            )
    config = LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.targets)
    )
    try:
        inject_adapter_in_model(config, backbone)
    except ValueError as error:  # an unsupported layer type, or a grouped conv's rank
        reason = str(error).splitlines()[0]
        raise ConfigError(f"--lora-targets {','.join(settings.targets)}: {reason}") from None
    backbone.adapter = settings


def adapter_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapter tensors of a backbone's state dict (what a LoRA run saves)."""
    return {k: v for k, v in state.items() if is_adapter_key(k)}


def base_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A backbone's state dict without its adapters, under the pretrained weights' names."""
    return {k.replace(".base_layer.", "."): v for k, v in state.items() if not is_adapter_key(k)}


def is_identity(state: dict[str, torch.Tensor]) -> bool:
    """True when every adapter leaves its layer's output unchanged (all ``B`` matrices zero,
    as peft initialises them)."""
    return all(not v.any() for k, v in state.items() if ".lora_B." in k)
