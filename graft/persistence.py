"""Saving a fitted :class:`GraftClassifier` (or :class:`MultiTaskClassifier`) to a run
directory and loading it back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from graft import __version__
from graft.backbones import create_backbone, preprocessing_from_dict
from graft.backbones.lora import LoraSettings, adapter_state, inject_lora
from graft.config import FitConfig
from graft.errors import ConfigError, RunError
from graft.heads import ClassificationHead, MultiTaskHead
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
    """Write ``model`` to ``path``: weights last, so a folder with weights is complete.

    A backbone with LoRA adapters is saved as its adapters alone (``adapter.*``), with the
    fingerprint of the pretrained weights under them; a frozen one as its fingerprint only.
    """
    path = prepare_run_dir(path, overwrite)
    adapter = model.backbone_.adapter
    frozen = model.strategy_.frozen_backbone or adapter is not None
    tensors = {f"head.{k}": v for k, v in model.head_.state_dict().items()}
    weighting = getattr(model, "weighting_", None)  # a multi-task model's learned weights
    if weighting is not None:
        tensors.update({f"weighting.{k}": v for k, v in weighting.state_dict().items()})
    if adapter is not None:
        state = adapter_state(model.backbone_.state_dict())
        tensors.update({f"adapter.{k}": v for k, v in state.items()})
    elif not frozen:
        tensors.update({f"backbone.{k}": v for k, v in model.backbone_.state_dict().items()})
    config = {
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "config": model.config.to_dict(),
        "backbone": model.backbone_.spec,
        "backbone_fingerprint": model.backbone_.fingerprint(base_only=True) if frozen else None,
        "adapter": adapter.to_dict() if adapter is not None else None,
        "feature_dim": model.backbone_.feature_dim,
        "head": {"dropout": model.head_.dropout.p},
        "task": _task_record(model),
    }
    if hasattr(model, "splits_"):
        splits = model.splits_
        config["data"] = {
            "train": splits.train.source,
            "val": f"{model.split_.get('kind', 'stratified')} split of train"
            if model.split_
            else splits.val.source,
            "test": splits.test.source if splits.test else None,
            "content_sha256": {
                name: part.content_hash()
                for name, part in (
                    ("train", splits.train),
                    ("val", splits.val),
                    ("test", splits.test),
                )
                if part is not None
            },
        }
        config["split"] = model.split_
    if getattr(model, "arguments_", None) is not None:
        config["arguments"] = model.arguments_
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


ENGINES = ("torch", "onnx", "torchscript")


def load(path: str | Path, engine: str = "torch", export: str | Path | None = None):
    """Restore a model saved by ``fit(out=...)`` or ``save``; predictions equal the original's.

    ``engine="onnx"`` or ``"torchscript"``: predict with the model exported by ``graft export``
    (``export``, by default the run's ``export/`` folder) instead of the PyTorch modules.
    """
    from graft.model import estimator_class

    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")

    path = Path(path).expanduser()
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    config = read_json(path / "config.json")
    if config.get("status") == "running" and not (path / "model.safetensors").is_file():
        raise RunError(
            f"{path}: this run did not finish (it has no model.safetensors); "
            f"finish it with: graft fit --resume {path}"
        )
    written_by = config.get("versions", {}).get("graft", "an unknown version")
    if config.get("format_version") != FORMAT_VERSION:
        raise RunError(
            f"{path}: written by graft {written_by} in run format "
            f"{config.get('format_version')}; this graft ({__version__}) reads format "
            f"{FORMAT_VERSION}"
        )
    fit_config = FitConfig.from_dict(config["config"])
    model = estimator_class(fit_config.tasks)(**fit_config.to_dict())
    model.classes_ = read_json(path / "labels.json")
    _restore_task(model, config.get("task") or {"kind": "multiclass"})
    if model.task_ == "multitask" and engine != "torch":
        raise ConfigError(
            f"{path}: a multi-task model predicts with the torch engine only, not {engine}"
        )
    strategy = STRATEGIES[fit_config.strategy]()
    weights = read_weights(path / "model.safetensors")
    adapter = config.get("adapter")
    pretrained = strategy.frozen_backbone or adapter is not None
    backbone = create_backbone(config["backbone"], pretrained=pretrained)
    saved_preprocessing = preprocessing_from_dict(read_json(path / "preprocessing.json"))
    if saved_preprocessing.modality == "image":
        backbone.preprocessing = saved_preprocessing
    else:  # the tokenizer where this machine has it, the length the model was trained with
        backbone.preprocessing = dataclasses.replace(
            backbone.preprocessing, max_length=saved_preprocessing.max_length
        )
    if pretrained:  # the fingerprint covers the preprocessing: compare after restoring it
        if backbone.fingerprint() != config["backbone_fingerprint"]:
            raise RunError(
                f"{path}: the weights of backbone {config['backbone']} differ from those this "
                "run was trained on, so its head would give different answers"
            )
    if adapter is not None:
        inject_lora(backbone, LoraSettings.from_dict(adapter))
        _load_adapter(backbone, weights, path)
    elif not strategy.frozen_backbone:
        state = {
            k.removeprefix("backbone."): v for k, v in weights.items() if k.startswith("backbone.")
        }
        backbone.load_state_dict(state, strict=True)
    head = _new_head(model, config["feature_dim"], config["head"]["dropout"])
    head.load_state_dict(
        {k.removeprefix("head."): v for k, v in weights.items() if k.startswith("head.")}
    )
    if model.task_ == "multitask":
        model.weighting_.load_state_dict(
            {
                k.removeprefix("weighting."): v
                for k, v in weights.items()
                if k.startswith("weighting.")
            }
        )
    model.backbone_, model.head_, model.strategy_ = backbone.eval(), head.eval(), strategy
    for name in ("metrics", "history", "summary"):
        if (path / f"{name}.json").is_file():
            setattr(model, f"{name}_", read_json(path / f"{name}.json"))
    model.run_dir_ = path
    if engine != "torch":
        from graft.export import load_engine

        model.engine_, _ = load_engine(export or path / "export", engine, run_dir=path)
    return model


def _load_adapter(backbone, weights: dict, path: Path) -> None:
    """Load the saved adapter tensors, which must be exactly those the backbone now holds."""
    saved = {k.removeprefix("adapter."): v for k, v in weights.items() if k.startswith("adapter.")}
    expected = adapter_state(backbone.state_dict())
    if set(saved) != set(expected):
        raise RunError(
            f"{path}: model.safetensors holds {len(saved)} adapter tensors where the adapted "
            f"backbone {backbone.spec} has {len(expected)}; the run is damaged"
        )
    backbone.load_state_dict(saved, strict=False)


def _new_head(model, feature_dim: int, dropout: float):
    """An untrained head of the shape of the saved one (and a multi-task model's weighting)."""
    if model.task_ != "multitask":
        return ClassificationHead(feature_dim, len(model.classes_), dropout)
    from graft.multitask import new_weighting

    model.weighting_ = new_weighting(model.task_specs_, model.config.task_weights)
    outputs = {task.name: task.outputs for task in model.task_specs_}
    return MultiTaskHead(feature_dim, outputs, dropout)


def _task_record(model) -> dict:
    """What predictions need beyond the weights: the task, a multilabel model's delimiter and
    thresholds, a regression model's target mean and standard deviation; for a multi-task
    model, that of each task and how the task losses were weighted."""
    if model.task_ == "multitask":
        from graft.multitask import weighting_record

        tasks = []
        for spec in model.task_specs_:
            task = spec.to_dict()
            if spec.kind == "multilabel":
                task["thresholds"] = [float(t) for t in model.thresholds_[spec.name]]
            if spec.kind == "regression":
                task["target_mean"], task["target_std"] = model.target_stats_[spec.name]
            tasks.append(task)
        return {
            "kind": "multitask",
            "tasks": tasks,
            "weighting": weighting_record(model.weighting_),
        }
    record: dict = {"kind": model.task_}
    if model.task_ == "multilabel":
        record["label_delimiter"] = model.label_delimiter_
        record["thresholds"] = [float(t) for t in model.thresholds_]
    if model.task_ == "regression":
        record["target_mean"], record["target_std"] = model.target_stats_
    return record


def _restore_task(model, record: dict) -> None:
    import numpy as np

    if record["kind"] == "multitask":
        from graft.data.multitask import TaskSpec

        model.task_ = "multitask"
        model.task_specs_ = [TaskSpec.from_dict(task) for task in record["tasks"]]
        model.label_delimiter_ = None
        model.thresholds_ = {
            task["name"]: np.asarray(task["thresholds"], dtype=np.float64)
            for task in record["tasks"]
            if "thresholds" in task
        }
        model.target_stats_ = {
            task["name"]: (task["target_mean"], task["target_std"])
            for task in record["tasks"]
            if "target_mean" in task
        }
        return
    model.task_ = record["kind"]
    model.label_delimiter_ = record.get("label_delimiter")
    thresholds = record.get("thresholds")
    model.thresholds_ = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    model.target_stats_ = (
        (record["target_mean"], record["target_std"]) if "target_mean" in record else None
    )
