"""The int8 recipes :mod:`graft.export.quantize` tries, fastest first, and how each one calls
ONNX Runtime's quantizer (:mod:`onnxruntime.quantization`).

Why a ladder and not one recipe (bench/RESULTS.md, "int8 that keeps its accuracy"): a recipe
that keeps a model's accuracy on one run can lose it on another, and what rescues it differs
by model and data. What was measured on EfficientNet-Lite and MiniLM:

- ONNX Runtime's dynamic quantization of a convolution (``ConvInteger``) has one weight scale
  per *tensor* whatever ``per_channel`` says; after BatchNorm is folded into them the
  depthwise 3x3 filters of EfficientNet-Lite span channel ranges 6 to 18 times apart (median
  to largest), so a per-tensor scale leaves the small channels a handful of levels: the
  user's 3-class flower run lost 35.8 points dynamic (7.5 with the depthwise convolutions in
  float), and static with per-tensor weights lost 36.7. It is also 5 to 10 times *slower*
  than float. So images are never quantized dynamically by default.
- Static QDQ with per-channel weights keeps most runs within a point; where it does not, the
  rest of the error sits at the two ends: the first convolution (raw pixels, three input
  channels) and the head, whose few logits decide the answer; keeping those two in float
  costs little speed. Calibrating on more inputs, and by percentile rather than min-max
  (outliers no longer set a layer's whole range), help the runs whose activations have a
  long tail.
- Text (MiniLM): dynamic int8 of the matrix products with a scale per output column is within
  tenths of a point at about twice float's speed; the classifier in float is the next rung.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft.export.engine import ExportError


@dataclass(frozen=True)
class Recipe:
    """One way to quantize: ``calibration`` (``static`` or ``dynamic``), which layers stay in
    float (``float_layers``: ``ends`` = the input stem up to its first convolution and the
    classifier; ``head`` = the classifier only), how many training inputs calibrate static
    activation ranges and by which method (``minmax`` or ``percentile``)."""

    name: str
    calibration: str
    description: str
    float_layers: str = ""
    calibration_inputs: int = 0
    method: str = "minmax"

    def record(self, train_size: int) -> dict[str, Any]:
        """What ``export.json`` says of the recipe."""
        inputs = min(train_size, self.calibration_inputs) if self.calibration == "static" else 0
        return {
            "recipe": self.name,
            "calibration": self.calibration,
            "calibration_inputs": inputs,
            "calibration_method": self.method if self.calibration == "static" else None,
            "float_layers": self.float_layers or None,
            "recipe_description": self.description,
        }


#: Static rungs, fastest first: all layers int8 on 128 inputs; then the two ends in float;
#: then more calibration inputs; then percentile calibration (slowest to calibrate).
STATIC_LADDER = (
    Recipe(
        "static",
        "static",
        "QDQ, per-channel int8 weights, uint8 activations calibrated by min-max on 128 inputs",
        calibration_inputs=128,
    ),
    Recipe(
        "static-float-ends",
        "static",
        "as static, with the input stem and the classifier kept in float",
        float_layers="ends",
        calibration_inputs=128,
    ),
    Recipe(
        "static-float-ends-512",
        "static",
        "as static-float-ends, calibrated on 512 inputs",
        float_layers="ends",
        calibration_inputs=512,
    ),
    Recipe(
        "static-float-ends-percentile",
        "static",
        "as static-float-ends, activation ranges at the 99.999th percentile of 256 inputs",
        float_layers="ends",
        calibration_inputs=256,
        method="percentile",
    ),
)
#: Dynamic rungs (text): matrix products int8 with per-column weight scales; then the
#: classifier in float.
DYNAMIC_LADDER = (
    Recipe("dynamic", "dynamic", "int8 weights per output column, activations per batch"),
    Recipe(
        "dynamic-float-head",
        "dynamic",
        "as dynamic, with the classifier kept in float",
        float_layers="head",
    ),
)


def ladder(calibration: str, train_size: int) -> list[Recipe]:
    """The recipes to try for ``calibration`` (``static`` or ``dynamic``), fastest first;
    a rung calibrated on more inputs than the ``train_size`` the run has is dropped when the
    rung before it already saw them all (it would repeat that rung)."""
    if calibration == "dynamic":
        return list(DYNAMIC_LADDER)
    rungs: list[Recipe] = []
    for recipe in STATIC_LADDER:
        same = [
            r
            for r in rungs
            if (r.float_layers, r.method) == (recipe.float_layers, recipe.method)
            and r.calibration_inputs >= min(train_size, recipe.calibration_inputs)
        ]
        if not same:
            rungs.append(recipe)
    return rungs


def float_nodes(model_path: Path, layers: str) -> list[str]:
    """Names of the nodes of the ONNX model that ``layers`` keeps in float: ``head``, the
    matrix product or Gemm that makes the logits (the last one); ``ends``, that and every node
    up to and including the first convolution (the image stem; for audio, the spectrogram
    frontend before it too)."""
    import onnx

    if not layers:
        return []
    nodes = list(onnx.load(str(model_path), load_external_data=False).graph.node)
    products = [n.name for n in nodes if n.op_type in ("MatMul", "Gemm")]
    names = products[-1:]
    if layers == "ends":
        convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
        if convs:
            names = [n.name for n in nodes[: convs[0] + 1]] + names
    return names


def quantize_with(recipe: Recipe, source: Path, target: Path, reader: Any | None) -> None:
    """Write ``source`` (a float ONNX model, pre-processed) quantized by ``recipe`` to
    ``target``; ``reader`` feeds static calibration."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    exclude = float_nodes(source, recipe.float_layers)
    try:
        if recipe.calibration == "dynamic":
            quantize_dynamic(
                source,
                target,
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=exclude,
            )
            return
        percentile = recipe.method == "percentile"
        method = CalibrationMethod.Percentile if percentile else CalibrationMethod.MinMax
        quantize_static(
            source,
            target,
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=method,
            extra_options={"CalibPercentile": 99.999} if percentile else {},
        )
    except ExportError:
        raise
    except Exception as error:  # noqa: BLE001  (the quantizer raises many kinds)
        raise ExportError(f"ONNX Runtime could not quantize {source.name}: {error}") from None
