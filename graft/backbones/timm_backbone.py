"""Image backbones from timm: any timm architecture, with hub, local-file or in-memory weights."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.models import group_parameters
from torch import nn

from graft.backbones.base import Backbone, ImagePreprocessing
from graft.backbones.lora import known_targets
from graft.errors import ModelUnavailableError

#: Layers LoRA adapts by default, by family: a ViT's attention projections, the pointwise (1x1)
#: convolutions of EfficientNet and MobileNet blocks (expansion and projection).
LORA_TARGETS = (("attn.qkv", "attn.proj"), ("conv_pw", "conv_pwl"))


def _offline_hint(name: str) -> str:
    return (
        f"To use weights you have on disk, pass --model timm:{name}@/path/to/weights.safetensors "
        "(or a .pth file), or a folder holding timm's config.json and model.safetensors. "
        "Offline defaults that need no network: efficientnet_lite0, efficientnet_lite1, "
        "efficientnet_lite2 (run `graft models`)."
    )


class TimmBackbone(Backbone):
    """Wraps a timm model created without its classifier; features are its pooled pre-logits."""

    def __init__(self, model: nn.Module, spec: str):
        super().__init__()
        classifier = model.get_classifier() if getattr(model, "num_classes", 0) else None
        if isinstance(classifier, nn.Linear):  # the source task's head, for LEEP
            weight, bias = classifier.weight.detach(), classifier.bias.detach()
            self.source_head = (weight.clone(), bias.clone())
        model.reset_classifier(0)
        self.model = model
        self.spec = spec
        self.feature_dim = int(model.num_features)
        cfg = model.pretrained_cfg
        size = tuple(cfg.get("input_size", (3, 224, 224)))[-2:]
        self.preprocessing = ImagePreprocessing(
            input_size=(int(size[0]), int(size[1])),
            mean=tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),
            std=tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))),
            interpolation=str(cfg.get("interpolation", "bicubic")),
            crop_pct=float(cfg.get("crop_pct", 0.875)),
        )
        # channels_last is markedly faster for convolutions on CPU and GPU alike.
        self.model.to(memory_format=torch.channels_last)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.contiguous(memory_format=torch.channels_last)
        return self.model.forward_head(self.model.forward_features(batch), pre_logits=True)

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        params = dict(self.model.named_parameters())
        try:
            matcher = self.model.group_matcher(coarse=True)
            grouped = group_parameters(self.model, matcher)
        except (AttributeError, NotImplementedError):
            return [list(params.values())]
        ordered = [grouped[key] for key in sorted(grouped)]
        return [[params[name] for name in names] for names in ordered if names]

    def lora_targets(self) -> list[str]:
        return known_targets(self.model, LORA_TARGETS) or super().lora_targets()

    @classmethod
    def create(
        cls,
        name: str,
        pretrained: bool = True,
        weights_file: str | Path | None = None,
        spec: str | None = None,
    ) -> TimmBackbone:
        """Create ``name`` from timm; weights from ``weights_file`` if given, else the hub."""
        if name not in timm.list_models(pretrained=False):
            raise ModelUnavailableError(f"timm has no architecture named {name!r}")
        kwargs: dict = {"num_classes": 0}
        if weights_file is not None:
            path = Path(weights_file)
            if not path.is_file():
                raise ModelUnavailableError(f"weights file {path} does not exist")
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        try:
            model = timm.create_model(name, pretrained=pretrained, **kwargs)
        except (RuntimeError, KeyError) as error:
            if weights_file is not None:
                raise ModelUnavailableError(
                    f"could not load {weights_file} into timm's {name}: {error}"
                ) from None
            raise _download_error(name, error) from None
        except Exception as error:  # network and hub errors come in many types
            raise _download_error(name, error) from None
        return cls(model, spec or f"timm:{name}")


def _download_error(name: str, error: Exception) -> ModelUnavailableError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ModelUnavailableError(
        f"could not download the pretrained weights of timm:{name} (is the network "
        f"reachable?): {reason}. " + _offline_hint(name)
    )
