"""The backbone registry: a name or model string in, a :class:`Backbone` out.

Accepted model strings, tried in this order:

- ``scratch:SPEC`` (below);
- an audio backbone (:mod:`graft.backbones.audio.specs`): ``audio:IMAGE_SPEC`` (log-mel
  spectrograms through an image network), or an ``hf:`` id or folder of a transformers audio
  encoder;
- a registered name (``efficientnet_lite0``, ``minilm``: weights that install offline);
- ``scratch:SPEC``: the architecture of any of these with random weights (seeded, so the
  same every time): the from-scratch baseline of a transfer, and a floor for ranking;
- ``timm:NAME`` or a bare timm architecture name (weights from the hub);
- ``timm:NAME@/path/weights.safetensors`` (a local timm checkpoint file);
- ``hf:ORG/NAME`` (a Hugging Face text encoder from the hub);
- a local folder: timm's hub layout (``config.json`` with ``architecture``, and its
  ``pretrained_cfg`` for the preprocessing) or a Hugging Face model folder (``config.json``
  with ``model_type``);
- a ``graft pretrain`` run directory (``pretrain.json``): the backbone it wrote, with the
  preprocessing it was pre-trained with.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path

import torch

from graft.backbones.audio.specs import build_audio_backbone, is_audio_model
from graft.backbones.base import Backbone
from graft.backbones.catalogue import _REGISTRY, BackboneEntry, _minilm_path
from graft.backbones.hf_text import HFTextBackbone
from graft.backbones.timm_backbone import TimmBackbone
from graft.errors import ModelUnavailableError


def _timm_names() -> list[str]:
    import timm

    return timm.list_models(pretrained=False)


#: What ``graft pretrain`` writes in its run directory: the record, and the backbone's folder.
PRETRAIN_RECORD, PRETRAINED_BACKBONE = "pretrain.json", "backbone"


def _pretrained_backbone_folder(run: Path) -> Path:
    """The backbone folder of a ``graft pretrain`` run (refused until the run has finished)."""
    try:
        record = json.loads((run / PRETRAIN_RECORD).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelUnavailableError(f"{run / PRETRAIN_RECORD} is not valid JSON: {error}") from None
    folder = run / PRETRAINED_BACKBONE
    if record.get("status") != "finished" or not folder.is_dir():
        raise ModelUnavailableError(
            f"{run} is a pre-training run that has not finished (no {folder.name}/ yet): finish "
            f"it with `graft pretrain --resume {run}`"
        )
    return folder


def _from_folder(folder: Path, spec: str, pretrained: bool) -> Backbone:
    if (folder / PRETRAIN_RECORD).is_file():  # a `graft pretrain` run: the backbone it wrote
        folder = _pretrained_backbone_folder(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelUnavailableError(
            f"{folder} is not a model folder: it has no config.json (expected timm's hub layout, "
            f"a Hugging Face model folder, or a `graft pretrain` run with its {PRETRAIN_RECORD})"
        )
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelUnavailableError(f"{config_file} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ModelUnavailableError(f"{config_file} is not a model configuration (a JSON object)")
    if "format_version" in config and not ({"architecture", "model_type"} & set(config)):
        raise ModelUnavailableError(
            f"{folder} is a `graft fit` run (a trained classifier: load it with graft.load), "
            "not a backbone; --model takes a model folder or a `graft pretrain` run"
        )
    if "architecture" in config:  # timm's hub layout
        weights = next(
            (
                folder / n
                for n in ("model.safetensors", "pytorch_model.bin")
                if (folder / n).is_file()
            ),
            None,
        )
        if pretrained and weights is None:
            raise ModelUnavailableError(f"{folder} has no model.safetensors or pytorch_model.bin")
        backbone = TimmBackbone.create(
            config["architecture"], pretrained=pretrained, weights_file=weights, spec=spec
        )
        return _with_saved_preprocessing(backbone, config.get("pretrained_cfg") or {})
    return HFTextBackbone.create(str(folder), pretrained=pretrained, spec=spec)


def _with_saved_preprocessing(backbone: Backbone, cfg: dict) -> Backbone:
    """The input size, mean, std, interpolation and crop of a timm folder's ``pretrained_cfg``
    (what its weights were trained with), over the architecture's defaults."""
    values = {key: cfg[key] for key in ("mean", "std", "interpolation", "crop_pct") if key in cfg}
    if "input_size" in cfg:
        values["input_size"] = tuple(int(v) for v in cfg["input_size"][-2:])
    for key in ("mean", "std"):
        if key in values:
            values[key] = tuple(float(v) for v in values[key])
    if values:
        backbone.preprocessing = dataclasses.replace(backbone.preprocessing, **values)
    return backbone


def create_backbone(spec: str, pretrained: bool = True) -> Backbone:
    """Build the backbone a model string names (see the module docstring for the forms).

    Args:
        spec: the model string.
        pretrained: load the pretrained weights (False builds the architecture only, for
            restoring a saved fine-tuned model whose weights come from the run).
    """
    spec = spec.strip()
    if spec.startswith(SCRATCH_PREFIX):
        return _scratch_backbone(spec)
    if is_audio_model(spec):
        return build_audio_backbone(spec, create_backbone, pretrained)
    if spec in _REGISTRY:
        entry = _REGISTRY[spec]
        backbone = entry.factory(pretrained)
    elif spec.startswith("hf:"):
        backbone = HFTextBackbone.create(spec[3:], pretrained=pretrained, spec=spec)
    elif spec.startswith("timm:") or spec in _timm_names():
        name = spec.removeprefix("timm:")
        name, _, weights_file = name.partition("@")
        backbone = TimmBackbone.create(
            name, pretrained=pretrained, weights_file=weights_file or None, spec=spec
        )
    elif Path(spec).expanduser().is_dir():
        folder = Path(spec).expanduser().resolve()
        backbone = _from_folder(folder, str(folder), pretrained)
    elif Path(spec).expanduser().is_file():
        raise ModelUnavailableError(
            f"{spec} is a weights file: name its architecture too, as timm:ARCH@{spec}"
        )
    else:
        raise ModelUnavailableError(_unknown_message(spec))
    return backbone.eval()


SCRATCH_PREFIX = "scratch:"
#: The seed of every ``scratch:`` backbone's initialisation.
SCRATCH_SEED = 0


def _scratch_backbone(spec: str) -> Backbone:
    """``scratch:SPEC``: SPEC's architecture, randomly initialised with :data:`SCRATCH_SEED`
    (whatever the global random state), and without a source classifier."""
    inner = spec.removeprefix(SCRATCH_PREFIX).strip()
    if not inner or inner.startswith(SCRATCH_PREFIX):
        raise ModelUnavailableError(f"{spec!r}: name an architecture after scratch:")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SCRATCH_SEED)
        backbone = create_backbone(inner, pretrained=False)
    backbone.spec = spec
    backbone.source_head = None
    return backbone


def _unknown_message(spec: str) -> str:
    known = list(dict.fromkeys(list(_REGISTRY) + _timm_names()))
    close = difflib.get_close_matches(spec.removeprefix("timm:"), known, n=4, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (
        f"unknown model {spec!r}: not a registered backbone, a timm architecture, an hf: id or "
        f"an existing folder.{hint} Run `graft models` for the offline backbones."
    )


def count_parameters(entry: BackboneEntry) -> int:
    """Parameters of a registered backbone, counted on the meta device (no weights loaded)."""
    if entry.modality in ("image", "audio"):  # an audio entry names its image network
        import timm

        with torch.device("meta"):
            model = timm.create_model(entry.architecture, pretrained=False, num_classes=0)
        return sum(p.numel() for p in model.parameters())
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(_minilm_path()))
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    pooler = getattr(model, "pooler", None)
    pooled = sum(p.numel() for p in pooler.parameters()) if pooler is not None else 0
    return sum(p.numel() for p in model.parameters()) - pooled
