"""Saving a fitted model to a run directory and restoring it, with identical predictions.

What depends on the kind of task (its record in ``config.json``, ``labels.json``, its extra
trained modules such as learned loss weights) comes from the task itself
(:class:`graft.tasks.base.Task`); this module writes and reads the rest: the backbone (its
trained weights, only its LoRA adapters, or only the fingerprint of pretrained weights it kept
frozen), the head, the preprocessing, the settings and the fit's JSON records.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from graft.backbones import preprocessing_from_dict
from graft.backbones.lora import LoraSettings, adapter_state, inject_lora
from graft.config import FitConfig
from graft.errors import ConfigError, RunError
from graft.runs.directory import (
    FORMAT_VERSION,
    prepare_run_dir,
    read_json,
    read_weights,
    write_json,
    write_weights,
)
from graft.strategies import STRATEGIES
from graft.tasks import task_class
from graft.tasks.capabilities import (
    ExportsItself,
    check_exportable,
    labels_record,
    networks,
    restore_backbone,
)
from graft.version import __version__

#: ``auto``: the run's export when it can answer for the run's current weights (see
#: :func:`choose_engine`), else the PyTorch modules.
ENGINES = ("auto", "torch", "onnx", "torchscript")
#: The JSON records of a fit, each ``<name>.json``, kept on the model as ``<name>_``.
RECORDS = ("metrics", "history", "summary")


def versions() -> dict[str, str]:
    """The versions of graft and the libraries whose behaviour a run depends on."""
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


def save_model(model: Any, path: Path, overwrite: bool) -> Path:
    """Write ``model`` to ``path``: weights last, so a folder with weights is complete.

    A backbone with LoRA adapters is saved as its adapters alone (``adapter.*``), with the
    fingerprint of the pretrained weights under them; a frozen one as its fingerprint only.
    """
    path = prepare_run_dir(path, overwrite)
    backbone, task = model.backbone_, model.fitted_task_
    adapter = backbone.adapter
    frozen = STRATEGIES[model.strategy_].frozen_backbone or adapter is not None
    tensors = {f"head.{k}": v for k, v in model.head_.state_dict().items()}
    for name, network in networks(task).items():  # a task's learned loss weights
        tensors.update({f"{name}.{k}": v for k, v in network.state_dict().items()})
    if adapter is not None:
        state = adapter_state(backbone.state_dict())
        tensors.update({f"adapter.{k}": v for k, v in state.items()})
    elif not frozen:
        tensors.update({f"backbone.{k}": v for k, v in backbone.state_dict().items()})
    config = {
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        "config": model.config_.to_dict(),
        "params": model.config.to_dict(),
        "backbone": backbone.spec,
        "backbone_fingerprint": backbone.fingerprint(base_only=True) if frozen else None,
        "adapter": adapter.to_dict() if adapter is not None else None,
        "feature_dim": getattr(backbone, "feature_dim", None),
        "head": {"dropout": getattr(getattr(model.head_, "dropout", None), "p", 0.0)},
        "task": task.record(),
        **_data_record(model),
    }
    if getattr(model, "arguments_", None) is not None:
        config["arguments"] = model.arguments_
    write_json(path / "config.json", config)
    write_json(path / "labels.json", labels_record(task))
    write_json(path / "preprocessing.json", backbone.preprocessing.to_dict())
    for name in RECORDS:
        if hasattr(model, f"{name}_"):
            write_json(path / f"{name}.json", getattr(model, f"{name}_"))
    write_weights(
        path / "model.safetensors",
        tensors,
        {"graft_version": __version__, "format_version": str(FORMAT_VERSION)},
    )
    return path


def _data_record(model: Any) -> dict:
    """Where a fitted model's data came from, their content hashes and the split."""
    if not hasattr(model, "splits_"):
        return {}
    splits, split = model.splits_, model.split_
    parts = (("train", splits.train), ("val", splits.val), ("test", splits.test))
    return {
        "data": {
            "train": splits.train.source,
            "val": None
            if splits.val is None  # few labels: every example trains (split records why)
            else f"{split.get('kind', 'stratified')} split of train"
            if split
            else splits.val.source,
            "test": splits.test.source if splits.test else None,
            "content_sha256": {
                name: part.content_hash() for name, part in parts if part is not None
            },
        },
        "split": split,
    }


def check_engine(engine: str) -> None:
    """Refuse an engine :func:`restore_model` cannot predict with."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def read_record(path: Path) -> dict:
    """``config.json`` of a finished run this graft can read (RunError otherwise)."""
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    record = read_json(path / "config.json")
    if record.get("status") == "running" and not (path / "model.safetensors").is_file():
        raise RunError(
            f"{path}: this run did not finish (it has no model.safetensors); "
            f"finish it with: graft fit --resume {path}"
        )
    written_by = record.get("versions", {}).get("graft", "an unknown version")
    if record.get("format_version") != FORMAT_VERSION:
        raise RunError(
            f"{path}: written by graft {written_by} in run format "
            f"{record.get('format_version')}; this graft ({__version__}) reads format "
            f"{FORMAT_VERSION}"
        )
    return record


def hyperparameters(record: dict) -> dict:
    """The hyperparameters a run was fitted with (as given; older runs kept only the
    resolved ones), with the options of its own kind of task only (runs written before each
    kind declared its options kept every kind's)."""
    values = record.get("params") or record["config"]
    return FitConfig.from_dict(values, _kind(record), given=True).to_dict()


def _kind(record: dict) -> str:
    """The kind of task of a run's record (the oldest runs were all multiclass)."""
    return (record.get("task") or {}).get("kind", "multiclass")


def restore_model(model: Any, path: Path, record: dict, engine: str = "torch", export=None):
    """Fill the blank estimator ``model`` (made with :func:`hyperparameters`) with the fitted
    state of the run at ``path``; ``engine="onnx"`` or ``"torchscript"`` predicts with the
    model ``graft export`` wrote (``export``, by default ``path/export``), ``"auto"`` with it
    when :func:`choose_engine` says so. ``engine_name_`` and ``export_dir_`` record which."""
    check_engine(engine)
    resolved = FitConfig.from_dict(record["config"], _kind(record))
    task_record = record.get("task") or {"kind": "multiclass"}
    task = task_class(task_record["kind"]).from_record(task_record, read_json(path / "labels.json"))
    folder = Path(export).expanduser() if export is not None else path / "export"
    automatic = engine == "auto"
    if automatic:
        engine = choose_engine(task, path, folder)
    if engine != "torch":
        try:
            check_exportable(task)
        except ConfigError:
            raise ConfigError(
                f"{path}: a {task.kind} model predicts with the torch engine only, not {engine}"
            ) from None
    weights = read_weights(path / "model.safetensors")
    backbone = _restore_backbone(path, record, resolved, weights, type(task))
    head = task.new_head(backbone, dropout=record["head"]["dropout"])
    head.load_state_dict(_prefixed(weights, "head."))
    for name, network in networks(task).items():
        network.load_state_dict(_prefixed(weights, f"{name}."))
    fill_fitted(model, task, backbone, head, resolved, record["backbone"])
    for name in RECORDS:
        if (path / f"{name}.json").is_file():
            setattr(model, f"{name}_", read_json(path / f"{name}.json"))
    model.run_dir_ = path
    if engine != "torch":
        try:
            _open_engine(model, task, folder, engine, path)
        except ConfigError as error:  # auto: an export this machine cannot run (no onnxruntime)
            if not automatic:
                raise
            warnings.warn(f"{folder}: {error}; predicting with torch", stacklevel=3)
    return model


def fill_fitted(model: Any, task: Any, backbone: Any, head: Any, config: Any, name: str) -> Any:
    """Make the blank estimator ``model`` a fitted one that predicts with torch: its task,
    backbone and head (in evaluation mode), the configuration they were made with and the
    backbone's ``name`` (a restored run's, or :func:`graft.zero_shot`'s, which trains nothing)."""
    model.fitted_task_, model.backbone_, model.head_ = task, backbone.eval(), head.eval()
    model.config_, model.model_ = config, name
    model.strategy_, model.lr_ = config.strategy, config.lr
    model.engine_name_, model.export_dir_ = "torch", None
    return model


def _open_engine(model: Any, task: Any, folder: Path, engine: str, run_dir: Path) -> None:
    """Answer with the export in ``folder`` (a kind's own engine, or the default one)."""
    from graft.export.engine import load_engine

    if isinstance(task, ExportsItself):  # a kind's own engine
        model.engine_ = task.exported_engine(folder, engine, run_dir)
    else:
        model.engine_, _ = load_engine(folder, engine, run_dir=run_dir)
    model.engine_name_, model.export_dir_ = engine, folder


def choose_engine(task: Any, run_dir: Path, folder: Path) -> str:
    """What ``engine="auto"`` predicts with: the export in ``folder`` (its format) when there
    is one, the task's kind can run it, it was exported from the run's current weights and no
    CUDA device is visible (the export runs on ONNX Runtime's CPU provider, slower than torch on
    a GPU); else ``torch``, with a warning when an export is there but stale."""
    import torch

    from graft.export.engine import model_hash

    if not (folder / "export.json").is_file() or torch.cuda.is_available():
        return "torch"
    try:
        check_exportable(task)
    except ConfigError:
        return "torch"
    record = read_json(folder / "export.json")
    exported_from = record.get("model_sha256")
    if exported_from and exported_from != model_hash(run_dir):
        warnings.warn(
            f"{folder} was exported from another model than the one now in {run_dir}: "
            f"predicting with torch; export it again with graft export {run_dir} --overwrite",
            stacklevel=4,
        )
        return "torch"
    return record.get("format", "onnx")


def describe_engine(model: Any) -> str:
    """The engine a loaded model answers with, as the commands print it: ``torch``, or the
    export's format, ``int8`` when quantized, and its folder (``onnx int8 (runs/a/export)``)."""
    name = getattr(model, "engine_name_", "torch")
    folder = getattr(model, "export_dir_", None)
    if name == "torch" or folder is None:
        return name
    quantized = (read_json(folder / "export.json").get("quantization") or {}).get("dtype")
    return f"{name}{' ' + quantized if quantized else ''} ({folder})"


def _restore_backbone(path: Path, record: dict, resolved: FitConfig, weights: dict, kind: type):
    """The run's backbone: pretrained weights it kept (checked by fingerprint), its adapters,
    or its trained weights; with the preprocessing it was trained with."""
    adapter = record.get("adapter")
    frozen = STRATEGIES[resolved.strategy].frozen_backbone
    pretrained = frozen or adapter is not None
    backbone = restore_backbone(kind, record["backbone"], pretrained)
    saved = preprocessing_from_dict(read_json(path / "preprocessing.json"))
    if saved.modality != "text":
        backbone.preprocessing = saved
    else:  # the tokenizer where this machine has it, the length the model was trained with
        backbone.preprocessing = dataclasses.replace(
            backbone.preprocessing, max_length=saved.max_length
        )
    if pretrained and backbone.fingerprint() != record["backbone_fingerprint"]:
        # (the fingerprint covers the preprocessing: compared after restoring it)
        raise RunError(
            f"{path}: the weights of backbone {record['backbone']} differ from those this "
            "run was trained on, so its head would give different answers"
        )
    if adapter is not None:
        inject_lora(backbone, LoraSettings.from_dict(adapter))
        _load_adapter(backbone, weights, path)
    elif not frozen:
        backbone.load_state_dict(_prefixed(weights, "backbone."), strict=True)
    return backbone


def _prefixed(weights: dict, prefix: str) -> dict:
    return {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}


def _load_adapter(backbone, weights: dict, path: Path) -> None:
    """Load the saved adapter tensors, which must be exactly those the backbone now holds."""
    saved = _prefixed(weights, "adapter.")
    expected = adapter_state(backbone.state_dict())
    if set(saved) != set(expected):
        raise RunError(
            f"{path}: model.safetensors holds {len(saved)} adapter tensors where the adapted "
            f"backbone {backbone.spec} has {len(expected)}; the run is damaged"
        )
    backbone.load_state_dict(saved, strict=False)
