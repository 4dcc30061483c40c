"""Saving a fitted :class:`GraftClassifier` to a run directory and loading it back."""

from __future__ import annotations

from pathlib import Path

from graft import __version__
from graft.backbones import create_backbone, preprocessing_from_dict
from graft.config import FitConfig
from graft.errors import RunError
from graft.heads import ClassificationHead
from graft.runs import (
    FORMAT_VERSION,
    prepare_run_dir,
    read_json,
    read_weights,
    write_json,
    write_weights,
)
from graft.strategies import STRATEGIES


def _versions() -> dict[str, str]:
    import lightning
    import timm
    import torch
    import transformers

    return {
        "graft": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "lightning": lightning.__version__,
    }


def save_model(model, path: Path, overwrite: bool) -> Path:
    """Write ``model`` to ``path``: weights last, so a folder with weights is complete."""
    path = prepare_run_dir(path, overwrite)
    frozen = model.strategy_.frozen_backbone
    tensors = {f"head.{k}": v for k, v in model.head_.state_dict().items()}
    if not frozen:
        tensors.update({f"backbone.{k}": v for k, v in model.backbone_.state_dict().items()})
    config = {
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "config": model.config.to_dict(),
        "backbone": model.backbone_.spec,
        "backbone_fingerprint": model.backbone_.fingerprint() if frozen else None,
        "feature_dim": model.backbone_.feature_dim,
        "head": {"dropout": model.head_.dropout.p},
    }
    if hasattr(model, "splits_"):
        splits = model.splits_
        config["data"] = {
            "train": splits.train.source,
            "val": "stratified split of train" if model.split_ else splits.val.source,
            "test": splits.test.source if splits.test else None,
        }
        config["split"] = model.split_
    write_json(path / "config.json", config)
    write_json(path / "labels.json", model.classes_)
    write_json(path / "preprocessing.json", model.backbone_.preprocessing.to_dict())
    for name in ("metrics", "history", "summary"):
        if hasattr(model, f"{name}_"):
            write_json(path / f"{name}.json", getattr(model, f"{name}_"))
    write_weights(
        path / "model.safetensors",
        tensors,
        {"graft_version": __version__, "format_version": str(FORMAT_VERSION)},
    )
    return path


def load(path: str | Path):
    """Restore a model saved by ``fit(out=...)`` or ``save``; predictions equal the original's."""
    from graft.model import GraftClassifier

    path = Path(path).expanduser()
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    config = read_json(path / "config.json")
    written_by = config.get("versions", {}).get("graft", "an unknown version")
    if config.get("format_version") != FORMAT_VERSION:
        raise RunError(
            f"{path}: written by graft {written_by} in run format "
            f"{config.get('format_version')}; this graft ({__version__}) reads format "
            f"{FORMAT_VERSION}"
        )
    fit_config = FitConfig.from_dict(config["config"])
    model = GraftClassifier(**fit_config.to_dict())
    model.classes_ = read_json(path / "labels.json")
    strategy = STRATEGIES[fit_config.strategy]()
    weights = read_weights(path / "model.safetensors")
    backbone = create_backbone(config["backbone"], pretrained=strategy.frozen_backbone)
    if strategy.frozen_backbone:
        if backbone.fingerprint() != config["backbone_fingerprint"]:
            raise RunError(
                f"{path}: the weights of backbone {config['backbone']} differ from those this "
                "run was trained on, so its head would give different answers"
            )
    else:
        state = {
            k.removeprefix("backbone."): v for k, v in weights.items() if k.startswith("backbone.")
        }
        backbone.load_state_dict(state, strict=True)
    saved_preprocessing = preprocessing_from_dict(read_json(path / "preprocessing.json"))
    if saved_preprocessing.modality == "image":
        backbone.preprocessing = saved_preprocessing
    head = ClassificationHead(config["feature_dim"], len(model.classes_), config["head"]["dropout"])
    head.load_state_dict(
        {k.removeprefix("head."): v for k, v in weights.items() if k.startswith("head.")}
    )
    model.backbone_, model.head_, model.strategy_ = backbone.eval(), head.eval(), strategy
    for name in ("metrics", "history", "summary"):
        if (path / f"{name}.json").is_file():
            setattr(model, f"{name}_", read_json(path / f"{name}.json"))
    model.run_dir_ = path
    return model
