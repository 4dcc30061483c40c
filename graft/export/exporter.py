"""Export a fitted model for production: ONNX or TorchScript, with its preprocessing beside it.

``graft export RUN --format onnx|torchscript`` writes a folder (``RUN/export`` unless told
otherwise) that needs neither graft's training code nor the original backbone files:

- ``model.onnx`` (through PyTorch's ``torch.export``-based ONNX exporter) or ``model.pt`` (a
  traced TorchScript module): backbone and head as one graph from preprocessed inputs to
  logits, with a dynamic batch dimension and, for text, a dynamic sequence length. An audio
  model with a spectrogram backbone is exported from the waveform (``waveforms``
  ``[batch, samples]``: decoded, mono, resampled and cropped or padded as ``export.json``'s
  preprocessing says), its log-mel frontend (STFT, mel filterbank, decibels, standardisation,
  resizing) inside the graph; a transformers audio model is refused, its feature extractor
  running in NumPy outside any graph;
- ``export.json``: the format, the input and output names, the classes, the task (and its
  decision thresholds or target scale), the preprocessing (image size, mean and standard
  deviation, or the tokenizer and maximum length) and the parity check's result;
- ``tokenizer/`` for text models: the tokenizer's own files.

Before anything is written where the user will look, the exported model runs on real inputs
and its logits are compared with the PyTorch model's: a maximum absolute difference above
:data:`PARITY_TOLERANCE` raises :class:`ExportError` and leaves no export behind. The folder
is built aside and renamed into place, so an interrupted export leaves nothing half-written.

:class:`ExportedEngine` runs such a folder on collated batches; ``graft predict --engine onnx``
uses it in place of the PyTorch modules, with the same preprocessing and the same answers.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graft.errors import ConfigError, RunError
from graft.export.engine import (
    AUDIO_INPUT,
    FORMATS,
    IMAGE_INPUT,
    MODEL_FILES,
    OUTPUT_NAME,
    PARITY_BATCH,
    PARITY_INPUTS,
    PARITY_TOLERANCE,
    TENSOR_INPUTS,
    ExportedEngine,
    ExportError,
    batch_tensors,
    model_hash,
    publish,
)
from graft.tasks.capabilities import ExportsItself, check_exportable, export_record, model_inputs
from graft.version import __version__


class LogitsModule(nn.Module):
    """Backbone and head as one module whose inputs are plain tensors, as exporters need."""

    def __init__(self, backbone: nn.Module, head: nn.Module, input_names: list[str]):
        super().__init__()
        self.backbone, self.head, self.input_names = backbone, head, input_names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if len(self.input_names) == 1 and self.input_names[0] in TENSOR_INPUTS:
            return self.head(self.backbone(tensors[0]))
        return self.head(self.backbone(dict(zip(self.input_names, tensors, strict=True))))


def _input_names(batch, modality: str = "image") -> list[str]:
    if isinstance(batch, dict):
        return list(batch)
    return [AUDIO_INPUT if modality == "audio" else IMAGE_INPUT]


def export_model(
    model,
    items: list[str],
    out: str | Path,
    format: str = "onnx",
    overwrite: bool = False,
    finish: Callable[[Path, dict], Any] | None = None,
) -> dict[str, Any]:
    """Export fitted ``model`` to the folder ``out`` and check it on ``items`` (real image
    paths or texts); return the record written to ``export.json``. ``finish(folder, record)``
    adds to the export before it is published, or raises to leave nothing written (int8
    quantization: :mod:`graft.export.quantize`)."""
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    check_exportable(model.fitted_task_)
    refusal = getattr(model.backbone_, "export_refusal", None)
    if refusal and not isinstance(model.fitted_task_, ExportsItself):  # its own export's say
        raise ConfigError(f"{model.backbone_.spec} cannot be exported: {refusal}")
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        raise RunError(f"{out} already exists: choose another --out or pass --overwrite")
    if out.exists() and any(out.iterdir()) and not (out / "export.json").is_file():
        raise RunError(f"{out} is not an export folder (no export.json): it is left alone")
    if not items:
        raise ConfigError("the parity check needs real inputs: give them with --check DATA")
    items = items[:: max(1, len(items) // PARITY_INPUTS)][:PARITY_INPUTS]
    task = model.fitted_task_
    if isinstance(task, ExportsItself):  # a model that is not one graph (detection)
        return task.export(model, items, out, format)
    batches = [model_inputs(task, batch) for batch in model.input_batches(items, PARITY_BATCH)]
    names = _input_names(batches[0], model.backbone_.modality)
    module = LogitsModule(model.backbone_, model.head_, names).cpu().eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    building.chmod(0o755)  # as a folder made by mkdir would be, not mkdtemp's private 0700
    try:
        start = time.perf_counter()
        model_file = building / MODEL_FILES[format]
        example = _example(batches)
        _write(module, example, names, model_file, format)
        seconds = time.perf_counter() - start
        difference = _parity(module, ExportedEngine(model_file, format, names), batches)
        if not difference <= PARITY_TOLERANCE:
            raise ExportError(
                f"the {format} export gives logits up to {difference:.3g} away from the PyTorch "
                f"model's on {len(items)} real inputs (tolerance {PARITY_TOLERANCE:g}); "
                "nothing was written"
            )
        record = _record(model, format, names, difference, len(items), seconds)
        record["model_sha256"] = model_hash(getattr(model, "run_dir_", None))
        if model.backbone_.modality == "text":
            _save_tokenizer(model.backbone_.preprocessing.tokenizer, building / "tokenizer")
            record["preprocessing"]["tokenizer"] = "tokenizer"
        if finish is not None:
            finish(building, record)
        publish(building, out, record)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return record


def parity_items(model, run_dir: Path, check: str | None = None, column: str | None = None):
    """Real inputs for the parity check: those in ``check`` (any input ``graft predict``
    takes), else the run's own validation data, else its training data, read as the task
    reads inputs to predict (:meth:`graft.tasks.base.Task.read_inputs`)."""
    from graft.runs.directory import read_json

    load_inputs = model.fitted_task_.read_inputs
    if check is not None:
        return load_inputs([check], model.backbone_.modality, column=column)
    arguments = read_json(Path(run_dir) / "config.json").get("arguments") or {}
    columns = arguments.get("columns", {})
    modality = model.backbone_.modality
    key = {"text": "text_column", "audio": "audio_column"}.get(modality, "image_column")
    column = columns.get(key)
    for key in ("val", "data"):
        recorded = arguments.get(key)
        if recorded and Path(recorded).exists():
            return load_inputs([recorded], model.backbone_.modality, column=column)
    raise ConfigError(
        f"{run_dir} records no data that is still on disk: give real inputs for the parity "
        "check with --check DATA"
    )


def _example(batches: list) -> Any:
    """A batch of at least two rows to trace or export with (torch.export would fix a
    dimension of size 1 as a constant)."""
    for batch in batches:
        if len(batch_tensors(batch)[0]) >= 2:
            return batch
    raise ConfigError("the parity check needs at least 2 real inputs")


def _write(module: nn.Module, example, names: list[str], path: Path, format: str) -> None:
    """Trace or export ``module`` on ``example`` to ``path``; an exporter's failure becomes one
    :class:`ExportError` line."""
    with exporter_errors(module.backbone.spec, format):
        if format == "onnx":
            _to_onnx(module, example, names, path)
        else:
            torch.jit.save(torch.jit.trace(module, batch_tensors(example), strict=False), path)


@contextlib.contextmanager
def exporter_errors(what: str, format: str = "onnx"):
    """Run an exporter quietly (its warnings, prints and INFO logs kept back); a missing
    package becomes a :class:`ConfigError` naming the extra, anything else the exporter
    raises one :class:`ExportError` line naming ``what`` it could not convert."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet():
            warnings.simplefilter("ignore")  # exporters' deprecation and tracer chatter
            yield
    except ImportError as error:
        raise ConfigError(
            f"--format {format} needs {error.name or 'the ONNX packages'}: "
            "pip install 'graft[export]'"
        ) from None
    except Exception as error:  # noqa: BLE001  (the exporters raise many kinds)
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ExportError(
            f"the {format} exporter could not convert {what}: "
            f"{type(error).__name__}: {message[:300]}"
        ) from None


@contextlib.contextmanager
def _quiet():
    """The ONNX tools log every graph rewrite at INFO: keep them to warnings meanwhile."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _to_onnx(module: nn.Module, example, names: list[str], path: Path) -> None:
    """ONNX through ``torch.export``: dynamic batch, and dynamic sequence length for text."""
    batch = torch.export.Dim("batch", min=1)
    sequence = torch.export.Dim("sequence", min=1)
    shapes = [{0: batch} if name in TENSOR_INPUTS else {0: batch, 1: sequence} for name in names]
    torch.onnx.export(
        module,
        batch_tensors(example),
        path,
        input_names=names,
        output_names=[OUTPUT_NAME],
        dynamic_shapes=(tuple(shapes),),  # forward(*tensors): one entry, the varargs
        dynamo=True,
        external_data=False,
        verbose=False,
    )


@torch.inference_mode()
def _parity(module: nn.Module, engine: ExportedEngine, batches: list) -> float:
    """The largest absolute difference of logits between ``module`` and ``engine``; batches
    of varying size (and, for text, length) test the dynamic dimensions."""
    worst = 0.0
    for batch in batches:
        expected = module(*batch_tensors(batch)).float()
        worst = max(worst, float((engine(batch) - expected).abs().max()))
    return worst


def _record(model, format: str, names: list[str], difference: float, count: int, seconds: float):
    task = export_record(model.fitted_task_)
    return {
        "format": format,
        "file": MODEL_FILES[format],
        "inputs": names,
        "dynamic": {n: ["batch"] if n in TENSOR_INPUTS else ["batch", "sequence"] for n in names},
        "output": OUTPUT_NAME,
        "classes": list(model.classes_),
        "task": task,
        "backbone": model.backbone_.spec,
        "preprocessing": model.backbone_.preprocessing.to_dict(),
        "parity": {
            "max_abs_logit_difference": difference,
            "tolerance": PARITY_TOLERANCE,
            "inputs": count,
        },
        "export_seconds": round(seconds, 3),
        "versions": export_versions(format),
    }


def export_versions(format: str = "onnx") -> dict[str, str]:
    """The versions an export depends on (recorded in its ``export.json``)."""
    versions = {"graft": __version__, "torch": torch.__version__}
    if format == "onnx":
        import onnx
        import onnxruntime

        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    return versions


def _save_tokenizer(source: str, folder: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
