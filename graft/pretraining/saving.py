"""Writing a pre-trained backbone as a folder that ``create_backbone`` (and so ``graft fit
--model``) reads like any other, preprocessing included.

Images: timm's hub layout, ``config.json`` (``architecture``, ``num_classes`` 0 and the
``pretrained_cfg`` with the input size, mean, std, interpolation and crop the weights were
trained with) and ``model.safetensors``. Text: a Hugging Face model folder, ``config.json``,
``model.safetensors`` (with the masked-language-model head when there was one, which ``fit``
ignores and a later ``graft pretrain`` continues from), the tokenizer's files, and
``sentence_bert_config.json`` with the maximum length it was trained at.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from graft.backbones.base import Backbone


def save_backbone(backbone: Backbone, folder: Path, text_model: nn.Module | None = None) -> Path:
    """Write ``backbone`` to ``folder``, replacing it only once the new one is complete.

    Args:
        backbone: the trained backbone.
        folder: where it goes (the run's ``backbone/``).
        text_model: for text, the model to save in place of ``backbone.model`` when it wraps
            it (a masked language model, saved with its head).
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        if backbone.modality == "image":
            _save_timm(backbone, staging)
        else:
            _save_transformers(backbone, staging, text_model or backbone.model)
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _save_timm(backbone: Backbone, folder: Path) -> None:
    model = backbone.model
    preprocessing = backbone.preprocessing
    architecture = model.pretrained_cfg.get("architecture") or type(model).__name__.lower()
    pretrained_cfg = {
        "architecture": architecture,
        "input_size": [3, *preprocessing.input_size],
        "mean": list(preprocessing.mean),
        "std": list(preprocessing.std),
        "interpolation": preprocessing.interpolation,
        "crop_pct": preprocessing.crop_pct,
        "num_classes": 0,
    }
    config = {
        "architecture": architecture,
        "num_classes": 0,
        "num_features": backbone.feature_dim,
        "pretrained_cfg": pretrained_cfg,
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _save_transformers(backbone: Backbone, folder: Path, model: nn.Module) -> None:
    from transformers import AutoTokenizer

    preprocessing = backbone.preprocessing
    with torch.no_grad():
        model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(preprocessing.tokenizer).save_pretrained(folder)
    sentence_config = {"max_seq_length": preprocessing.max_length}
    (folder / "sentence_bert_config.json").write_text(json.dumps(sentence_config) + "\n")
