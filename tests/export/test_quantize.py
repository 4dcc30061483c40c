"""int8 quantization of an export, checked by accuracy on the run's validation data, and the
``auto`` engine that answers with a run's export when it has a current one."""

from __future__ import annotations

import json
import warnings

import onnx
import pytest
import torch
from typer.testing import CliRunner

import graft
from graft.cli import app
from graft.errors import ConfigError, RunError
from graft.export.engine import ExportedEngine, ExportError
from graft.export.exporter import export_model, parity_items
from graft.export.quantize import check_quantization, validation_data
from graft.runs.persistence import describe_engine
from graft.tasks.capabilities import infer_exported, join
from tests.conftest import write_sst2

EXPORTED = "torch" if torch.cuda.is_available() else "onnx"  # auto keeps torch on a GPU


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantize-text")
    train = write_sst2("train.csv", 300, folder / "train.csv")
    val = write_sst2("test.csv", 300, folder / "val.csv")  # SST-2's labelled dev sentences
    out = folder / "sst2"
    graft.fit(train, val, strategy="feature-extract", epochs=3, out=out, progress=False)
    return out


def _answers(model, path, data) -> torch.Tensor:
    """The classes an ONNX file of ``model``'s export gives the labelled ``data``."""
    task = model.fitted_task_
    engine = ExportedEngine(path, "onnx", ["input_ids", "token_type_ids", "attention_mask"])
    batches = model.input_batches(data.items, 32)
    return join(task, [infer_exported(task, engine, batch) for batch in batches]).argmax(1)


@pytest.fixture(scope="module")
def image_run(tiny_flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("quantize-image") / "flowers"
    graft.fit(tiny_flowers, strategy="feature-extract", epochs=2, out=out, progress=False)
    return out


@pytest.mark.slow
def test_an_int8_text_export_within_the_tolerance_answers_by_default(text_run):
    result = CliRunner().invoke(app, ["export", str(text_run), "--quantize", "int8"])
    assert result.exit_code == 0, result.output
    assert "int8 (dynamic) kept: accuracy" in " ".join(result.output.split())
    folder = text_run / "export"
    record = json.loads((folder / "export.json").read_text())
    quantization = record["quantization"]
    assert record["file"] == "model.int8.onnx" and quantization["float_file"] == "model.onnx"
    assert (folder / "model.int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size / 2
    assert quantization["calibration"] == "dynamic" and quantization["validation_inputs"] == 300
    assert quantization["points_lost"] <= quantization["tolerance"] == 1.0
    assert quantization["scored_on"] == "validation data"
    # weights quantized per output column: one zero point per column of each weight matrix
    graph = onnx.load(folder / "model.int8.onnx").graph
    dims = {tensor.name: list(tensor.dims) for tensor in graph.initializer}
    products = [node for node in graph.node if node.op_type == "MatMulInteger"]
    assert len(products) == 37  # 6 layers x (query, key, value, output, 2 feed-forward), head
    assert all(dims[node.input[3]] == dims[node.input[1]][1:] for node in products)
    # ... which changes 6 of the float model's 300 answers here (15 with one scale per matrix)
    torch_model = graft.load(text_run, engine="torch")
    val = validation_data(torch_model, text_run)[1]
    float_answers = _answers(torch_model, folder / "model.onnx", val)
    assert (_answers(torch_model, folder / "model.int8.onnx", val) != float_answers).sum() <= 9
    model = graft.load(text_run)  # auto
    assert model.engine_name_ == EXPORTED
    if EXPORTED == "onnx":
        assert describe_engine(model) == f"onnx int8 ({folder})"
    texts = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate."]
    assert model.predict(texts) == torch_model.predict(texts)
    answer = CliRunner().invoke(app, ["predict", str(text_run), texts[0]])
    assert answer.exit_code == 0 and f"engine: {describe_engine(model)}" in answer.output


@pytest.mark.slow
def test_int8_beyond_the_tolerance_is_refused_and_writes_nothing(image_run):
    command = ["export", str(image_run), "--quantize", "int8", "--calibration", "dynamic"]
    result = CliRunner().invoke(app, [*command, "--tolerance", "0"])
    assert isinstance(result.exception, ExportError)  # `graft` prints it as one line, exit 2
    message = str(result.exception)
    assert "int8 (dynamic) loses more than 0 points of accuracy on 20 validation" in message
    assert "with every recipe tried (" in message and " float; int8: dynamic " in message
    assert "; dynamic-float-head " in message  # each rung of the dynamic ladder, with its figure
    assert "; --tolerance 0): nothing was written" in message
    assert not (image_run / "export").exists()
    # the default for an image model: static, calibrated on the run's own photos, accepted
    result = CliRunner().invoke(app, ["export", str(image_run), "--quantize", "int8"])
    assert result.exit_code == 0, result.output
    quantization = json.loads((image_run / "export" / "export.json").read_text())["quantization"]
    assert quantization["calibration"] == "static" and quantization["calibration_inputs"] == 40
    assert quantization["points_lost"] <= 1.0 and quantization["recipe"].startswith("static")
    assert quantization["speed"]["inputs"] == 20 and quantization["speed"]["speedup"] > 0


def test_quantization_options_are_checked_first(image_run):
    model = graft.load(image_run, engine="torch")
    with pytest.raises(ConfigError, match="--quantize must be one of int8, got 'int4'"):
        check_quantization(model, "int4", "auto", "onnx", 1.0)
    with pytest.raises(ConfigError, match="quantizes ONNX exports: use --format onnx"):
        check_quantization(model, "int8", "auto", "torchscript", 1.0)
    with pytest.raises(ConfigError, match="--calibration must be one of auto, dynamic, static"):
        check_quantization(model, "int8", "percentile", "onnx", 1.0)
    assert check_quantization(model, "int8", "auto", "onnx", 0.0) == "static"


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="auto keeps torch where a GPU is visible")
def test_auto_uses_a_current_export_only(image_run, tmp_path):
    folder = tmp_path / "export"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no export: torch, silently
        assert graft.load(image_run, export=folder).engine_name_ == "torch"
    model = graft.load(image_run, engine="torch")
    export_model(model, parity_items(model, image_run), folder, "onnx")
    auto = graft.load(image_run, export=folder)
    assert auto.engine_name_ == EXPORTED and describe_engine(model) == "torch"
    record = json.loads((folder / "export.json").read_text())
    record["model_sha256"] = "0" * 64  # as if the run had been trained again since
    (folder / "export.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="exported from another model .* predicting with torch"):
        stale = graft.load(image_run, export=folder)
    assert stale.engine_name_ == "torch" and stale.engine_ is None
    with pytest.raises(RunError, match="exported from another model"):
        graft.load(image_run, engine="onnx", export=folder)  # asked for by name: refused
