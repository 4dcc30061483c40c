"""int8 quantization of an ONNX export, kept only when it keeps the model's accuracy.

``graft export RUN --quantize int8`` writes the float export as usual, then quantizes it with
ONNX Runtime's tools (:mod:`onnxruntime.quantization`) by a *ladder* of recipes
(:mod:`graft.export.recipes`), fastest first, and keeps the first one that loses at most
``tolerance`` points (:data:`TOLERANCE`) of the run's validation metric:

- ``static`` (images and audio): QDQ, per-channel int8 weights, uint8 activations calibrated
  on the run's own training inputs (a :class:`CalibrationDataReader`); then the same with the
  input stem and the classifier in float, on more calibration inputs, by percentile;
- ``dynamic`` (text): int8 matrix products with a weight scale per output column, activations
  quantized per batch; then the same with the classifier in float;
- ``auto`` (the default): ``dynamic`` for text models, ``static`` for image and audio ones,
  whose convolutions ONNX Runtime quantizes dynamically (``ConvInteger``) with one weight scale
  per tensor, which loses tens of points on depthwise convolutions and runs several times
  *slower* than float (bench/RESULTS.md).

Each recipe's model is scored on the run's validation data (the data ``graft fit`` held out,
or split off again with the run's seed; the training data when every example trained): the
task's headline metric (accuracy; micro-F1 for multi-label), in points. When every recipe
loses more than ``tolerance``, :class:`ExportError` gives each one's figure and nothing is
written; a kept int8 model (``model.int8.onnx``) becomes the file the export answers with, the
float model stays beside it, and ``export.json`` says under ``quantization`` which recipe was
kept, the recipes tried, both scores and the int8 speed-up against float.
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
from graft.export.recipes import ladder, quantize_with
from graft.tasks.capabilities import infer_exported, join, model_inputs

QUANTIZATIONS = ("int8",)
CALIBRATIONS = ("auto", "dynamic", "static")
#: The accuracy points int8 may lose against the float export on the validation data. One
#: point: int8 usually costs a few tenths, and one point is within the sampling error of a
#: few hundred validation examples, so a larger loss is the quantization's, not chance's.
TOLERANCE = 1.0
#: Kinds whose headline metric is a share (accuracy, F1) that can be compared in points.
QUANTIZABLE_KINDS = ("multiclass", "multilabel")
INT8_FILE = "model.int8.onnx"
BATCH = 32
#: The int8 speed-up is timed on one batch of this many validation inputs, best of SPEED_RUNS.
SPEED_INPUTS = 32
SPEED_RUNS = 3


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
    """Quantize the float ``model.onnx`` in the export folder ``building`` to int8 by the
    recipes of ``calibration``'s ladder (:func:`graft.export.recipes.ladder`), fastest first,
    each scored on the validation part of ``data`` (training and validation
    :class:`LabelledData`); keep the first that loses at most ``tolerance`` points (``record``
    updated to answer with it, its speed against float measured), else :class:`ExportError`
    with every recipe's figure. Returns the ``quantization`` record."""
    train, val = data
    names, source = record["inputs"], building / record["file"]
    target = building / INT8_FILE
    float_engine = ExportedEngine(source, "onnx", names)
    float_score = engine_score(model, float_engine, val)
    start = time.perf_counter()
    recipes = ladder(calibration, len(train))
    tried = _climb(model, (source, target), names, recipes, data, (float_score, tolerance))
    seconds = time.perf_counter() - start
    chosen = tried[-1]
    scored = "training" if train is val else "validation"
    if chosen["points_lost"] > tolerance:
        figures = "; ".join(f"{t['recipe']} {t['int8_score']:.2f}" for t in tried)
        raise ExportError(
            f"int8 ({calibration}) loses more than {tolerance:g} points of "
            f"{model.fitted_task_.headline.replace('_', '-')} on {len(val)} {scored} inputs "
            f"with every recipe tried ({float_score:.2f} float; int8: {figures}; --tolerance "
            f"{tolerance:g}): nothing was written; try --calibration "
            f"{'dynamic' if calibration == 'static' else 'static'} or a larger --tolerance"
        )
    quantization = {
        "dtype": "int8",
        **chosen["recipe_record"],
        "float_file": record["file"],
        "metric": model.fitted_task_.headline,
        "float_score": round(float_score, 4),
        "int8_score": chosen["int8_score"],
        "points_lost": chosen["points_lost"],
        "tolerance": tolerance,
        "validation_inputs": len(val),
        "scored_on": f"{scored} data",
        "tried": [{k: v for k, v in t.items() if k != "recipe_record"} for t in tried],
        "seconds": round(seconds, 3),
        "speed": measure_speed(model, float_engine, ExportedEngine(target, "onnx", names), val),
    }
    record.update(file=INT8_FILE, quantization=quantization)
    return quantization


def _climb(model, files, names, recipes, data, bar) -> list[dict]:
    """Quantize ``files`` (float source, int8 target) by each of ``recipes`` in turn until one
    loses at most ``bar`` (float score, tolerance) allows: the figures of each recipe tried
    (the last is the one kept, or the last that failed too)."""
    (source, target), (float_score, tolerance) = files, bar
    train, val = data
    tried = []
    prepared = _prepared(source)
    try:
        for recipe in recipes:
            start = time.perf_counter()
            quantize_model(model, prepared, target, names, recipe, train.items)
            score = engine_score(model, ExportedEngine(target, "onnx", names), val)
            tried.append(
                {
                    "recipe": recipe.name,
                    "int8_score": round(score, 4),
                    "points_lost": round(float_score - score, 4),
                    "seconds": round(time.perf_counter() - start, 3),
                    "recipe_record": recipe.record(len(train)),
                }
            )
            if float_score - score <= tolerance:
                break
    finally:
        if prepared != source:
            prepared.unlink(missing_ok=True)
    return tried


def quantize_model(
    model: Any, source: Path, target: Path, names: list[str], recipe: Any, train: list
) -> None:
    """Write the int8 version of the float ONNX model ``source`` to ``target`` by ``recipe``
    (a :class:`graft.export.recipes.Recipe`), a static one calibrated on up to its
    ``calibration_inputs`` of the items ``train``, spread over them."""
    with _quiet():
        reader = None
        if recipe.calibration == "static":
            reader = InputsReader(model, names, _spread(train, recipe.calibration_inputs))
        quantize_with(recipe, source, target, reader)


def measure_speed(model: Any, float_engine: Any, int8_engine: Any, data: Any) -> dict:
    """Milliseconds per input of the float and the int8 engine on one batch of up to
    :data:`SPEED_INPUTS` validation inputs (after a warm-up; the best of :data:`SPEED_RUNS`,
    the two engines in turn), and the int8 speed-up (above 1: faster than float)."""
    task = model.fitted_task_
    batch = next(iter(model.input_batches(list(data.items)[:SPEED_INPUTS], SPEED_INPUTS)))
    count = len(batch_tensors(model_inputs(task, batch))[0])
    best = {"float": float("inf"), "int8": float("inf")}
    engines = {"float": float_engine, "int8": int8_engine}
    for run in range(SPEED_RUNS + 1):
        for name, engine in engines.items():
            start = time.perf_counter()
            infer_exported(task, engine, batch)
            if run:  # the first run of each is the warm-up
                best[name] = min(best[name], time.perf_counter() - start)
    return {
        "inputs": count,
        "float_ms_per_input": round(1000 * best["float"] / count, 3),
        "int8_ms_per_input": round(1000 * best["int8"] / count, 3),
        "speedup": round(best["float"] / best["int8"], 2),
    }


def describe(quantization: dict) -> str:
    """The line ``graft export`` prints of a kept int8 model: its recipe, both scores and its
    speed against float (said plainly when slower)."""
    q, speed = quantization, quantization["speed"]
    inputs = f"{q['validation_inputs']} {q['scored_on'].split()[0]} inputs"
    beyond = len(q.get("tried", ())) - 1
    after = f", after {beyond} beyond the tolerance" if beyond > 0 else ""
    pace = f"{speed['speedup']:.2f}x float's speed"
    if speed["speedup"] < 1:
        pace += ": slower than the float model"
    return (
        f"int8 ({q['recipe']}{after}) kept: {q['metric']} {q['int8_score']:.2f} against "
        f"{q['float_score']:.2f} float on {inputs} "
        f"(tolerance {q['tolerance']:g} points); {pace} ({speed['int8_ms_per_input']:.1f} "
        f"against {speed['float_ms_per_input']:.1f} ms an input)"
    )


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
