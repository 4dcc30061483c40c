"""int8 quantization of an ONNX export, kept only when it keeps the model's accuracy.

``graft export RUN --quantize int8`` writes the float export as usual, then quantizes it with
ONNX Runtime's tools (:mod:`onnxruntime.quantization`):

- ``dynamic``: int8 weights with a scale per output channel, activations quantized on the fly
  per batch (``quantize_dynamic``, ``per_channel=True``); no calibration data, suited to
  transformers' matrix products (see :func:`_dynamic` for why per channel);
- ``static``: int8 weights and activations with fixed scales (``quantize_static``, QDQ
  format, per-channel weights), calibrated by min-max on up to :data:`CALIBRATION_INPUTS` of the
  run's own training inputs (a :class:`CalibrationDataReader`);
- ``auto`` (the default): ``dynamic`` for text models, ``static`` for image and audio ones,
  whose convolutions ONNX Runtime runs dynamically quantized (``ConvInteger``) several times
  *slower* than in float (bench/RESULTS.md), and statically quantized about twice as fast.

Both models are then scored on the run's validation data (the data ``graft fit`` held out, or
split off again with the run's seed): the task's headline metric (accuracy; micro-F1 for
multi-label), in points. When int8 loses more than ``tolerance`` points
(:data:`TOLERANCE`), :class:`ExportError` says so with both figures and nothing is written; an
accepted int8 model (``model.int8.onnx``) becomes the file the export answers with, the float
model stays beside it, and both figures are in ``export.json`` under ``quantization``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from graft.errors import ConfigError
from graft.export.engine import ExportedEngine, ExportError, batch_tensors
from graft.tasks.capabilities import infer_exported, join, model_inputs

QUANTIZATIONS = ("int8",)
CALIBRATIONS = ("auto", "dynamic", "static")
#: The accuracy points int8 may lose against the float export on the validation data. One
#: point: int8 usually costs a few tenths, and one point is within the sampling error of a
#: few hundred validation examples, so a larger loss is the quantization's, not chance's.
TOLERANCE = 1.0
#: How many training inputs calibrate static quantization's activation ranges.
CALIBRATION_INPUTS = 128
#: Kinds whose headline metric is a share (accuracy, F1) that can be compared in points.
QUANTIZABLE_KINDS = ("multiclass", "multilabel")
INT8_FILE = "model.int8.onnx"
BATCH = 32


def check_quantization(
    model: Any, dtype: str, calibration: str, format: str, tolerance: float
) -> str:
    """Refuse options :func:`quantize_export` cannot honour, before anything is exported;
    the calibration to use (``auto`` resolved by the model's modality)."""
    if dtype not in QUANTIZATIONS:
        raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}, got {dtype!r}")
    if calibration not in CALIBRATIONS:
        raise ConfigError(
            f"--calibration must be one of {', '.join(CALIBRATIONS)}, got {calibration!r}"
        )
    if format != "onnx":
        raise ConfigError("--quantize int8 quantizes ONNX exports: use --format onnx")
    if not tolerance >= 0:
        raise ConfigError(f"--tolerance must be zero or more accuracy points, got {tolerance}")
    kind = model.fitted_task_.kind
    if kind not in QUANTIZABLE_KINDS:
        raise ConfigError(
            f"--quantize int8 is checked by accuracy on classification models; a {kind} model "
            "is exported in float only"
        )
    if calibration == "auto":
        return "dynamic" if model.backbone_.modality == "text" else "static"
    return calibration


def quantize_export(
    model: Any,
    building: Path,
    record: dict,
    data: tuple[Any, Any],
    calibration: str = "dynamic",
    tolerance: float = TOLERANCE,
) -> dict:
    """Quantize the float ``model.onnx`` in the export folder ``building`` to int8, score both
    on the validation part of ``data`` (training and validation :class:`LabelledData`) and
    keep int8 (``record`` updated to answer with it) unless it loses more than ``tolerance``
    points: then :class:`ExportError`. Returns the ``quantization`` record."""
    train, val = data
    names, source = record["inputs"], building / record["file"]
    target = building / INT8_FILE
    start = time.perf_counter()
    quantize_model(model, source, target, names, calibration, train.items)
    seconds = time.perf_counter() - start
    task = model.fitted_task_
    scores = {
        "float": engine_score(model, ExportedEngine(source, "onnx", names), val),
        "int8": engine_score(model, ExportedEngine(target, "onnx", names), val),
    }
    loss = scores["float"] - scores["int8"]
    metric = task.headline.replace("_", "-")
    if loss > tolerance:
        scored = "training" if train is val else "validation"
        other = "dynamic" if calibration == "static" else "static"
        raise ExportError(
            f"int8 ({calibration}) loses {loss:.2f} points of {metric} on {len(val)} {scored} "
            f"inputs ({scores['float']:.2f} float, {scores['int8']:.2f} int8; --tolerance "
            f"{tolerance:g}): nothing was written; try --calibration {other} or a larger "
            "--tolerance"
        )
    quantization = {
        "dtype": "int8",
        "calibration": calibration,
        "calibration_inputs": min(len(train), CALIBRATION_INPUTS) if calibration == "static" else 0,
        "float_file": record["file"],
        "metric": task.headline,
        "float_score": round(scores["float"], 4),
        "int8_score": round(scores["int8"], 4),
        "points_lost": round(loss, 4),
        "tolerance": tolerance,
        "validation_inputs": len(val),
        "scored_on": "training data" if train is val else "validation data",
        "seconds": round(seconds, 3),
    }
    record.update(file=INT8_FILE, quantization=quantization)
    return quantization


def quantize_model(
    model: Any, source: Path, target: Path, names: list[str], calibration: str, train: list
) -> None:
    """Write the int8 version of the float ONNX model ``source`` to ``target``; ``static``
    calibrates on up to :data:`CALIBRATION_INPUTS` of the items ``train``."""
    with _quiet():
        if calibration == "static":
            reader = InputsReader(model, names, _spread(train, CALIBRATION_INPUTS))
            _static(source, target, reader)
        else:
            _dynamic(source, target)


def engine_score(model: Any, engine: Any, data: Any) -> float:
    """The task's headline metric, in points, of ``engine`` (any callable from a batch of
    :func:`~graft.tasks.capabilities.model_inputs` to logits) on labelled ``data``."""
    task = model.fitted_task_
    batches = model.input_batches(data.items, BATCH)
    outputs = join(task, [infer_exported(task, engine, batch) for batch in batches])
    return 100 * float(task.score(task.metrics(outputs, data)))


def _spread(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items`` (all of them when fewer)."""
    return list(items[:: max(1, len(items) // count)][:count])


class InputsReader:
    """ONNX Runtime's ``CalibrationDataReader`` over real inputs: the run's preprocessing,
    batch by batch, as the export's named NumPy inputs."""

    def __init__(self, model: Any, names: list[str], items: list):
        self.model, self.names, self.items = model, names, items
        self.batches = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.batches is None:
            task = self.model.fitted_task_
            batches = self.model.input_batches(self.items, 8)
            self.batches = (model_inputs(task, batch) for batch in batches)
        batch = next(self.batches, None)
        if batch is None:
            return None
        return {n: t.numpy() for n, t in zip(self.names, batch_tensors(batch), strict=True)}

    def rewind(self) -> None:
        self.batches = None


def _prepared(source: Path) -> Path:
    """The float model after ONNX Runtime's recommended pre-processing (shape inference and
    graph optimisation), or itself when that fails on this graph."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = source.with_name(f"{source.stem}.prepared.onnx")
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001  (an optional step: quantization works without it)
        prepared.unlink(missing_ok=True)
        return source
    return prepared


def _dynamic(source: Path, target: Path) -> None:
    """Dynamic int8 with per-channel weights: one scale per output column of each weight
    matrix rather than one per matrix, whose range a few large columns would otherwise set for
    all (in minilm's feed-forward output matrices the largest column spans 5 to 42 times the
    median column's range). Measured on minilm (bench/RESULTS.md, SST-2): one scale per matrix
    changed 148 of 2,000 of the float model's answers and lost 1.4 points on the 500
    validation sentences; per channel changes 81 and loses 0.2, at the same speed (2.2x ONNX
    float, one thread)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    prepared = _prepared(source)
    try:
        quantize_dynamic(prepared, target, weight_type=QuantType.QInt8, per_channel=True)
    except Exception as error:  # noqa: BLE001  (the quantizer raises many kinds)
        raise ExportError(f"ONNX Runtime could not quantize {source.name}: {error}") from None
    finally:
        if prepared != source:
            prepared.unlink(missing_ok=True)


def _static(source: Path, target: Path, reader: InputsReader) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    prepared = _prepared(source)
    try:
        quantize_static(
            prepared,
            target,
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    except ExportError:
        raise
    except Exception as error:  # noqa: BLE001  (the quantizer raises many kinds)
        raise ExportError(f"ONNX Runtime could not quantize {source.name}: {error}") from None
    finally:
        if prepared != source:
            prepared.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet():
    """The quantizer logs and prints each node it handles: keep it to warnings meanwhile."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def validation_data(model: Any, run_dir: Path) -> tuple[Any, Any]:
    """The run's training and validation data, labelled and indexed into its classes, read as
    the fit read them (the validation data it was given or found, else split off the training
    data again with the run's recorded seed and fraction). A run without validation data (few
    labels: every example trained) gives its training data twice: what the check measures is
    int8's loss against float on the same inputs, which training inputs show too."""
    from graft.runs.directory import read_json
    from graft.tasks import read_task_data

    record = read_json(Path(run_dir) / "config.json")
    arguments = record.get("arguments")
    if not arguments or not Path(arguments["data"]).exists():
        raise ConfigError(
            f"{run_dir}: the int8 accuracy check needs the run's data, which it cannot read "
            "back (fitted on in-memory data, or moved since)"
        )
    names = ("text_column", "image_column", "label_column", "audio_column")
    columns = {name: arguments.get("columns", {}).get(name) for name in names}
    kind, splits = read_task_data(
        model.config_, arguments["data"], arguments.get("val"), None, columns
    )
    train, val = splits.train, splits.val
    split = record.get("split") or {}
    if val is None and "val_fraction" in split:
        train_idx, val_idx = kind.split(train, split["val_fraction"], split["seed"])
        train, val = train.subset(train_idx), train.subset(val_idx)
    task = model.fitted_task_
    if val is None:  # few labels, every example trained: int8 is compared with float on them
        train = task.relabel(train)
        return train, train
    return task.relabel(train), task.relabel(val)
