"""int8 that keeps its accuracy on any run: the ladder of recipes (graft/export/recipes.py),
tried fastest first until one is within the tolerance, on a few-labels feature-extract run
(the issue's case, scored on its training photos) and on a fine-tuned run, with the recipe,
the recipes tried and the speed-up recorded in ``export.json``."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest
from typer.testing import CliRunner

import graft
from graft.cli import app
from graft.export.exporter import export_model, parity_items
from graft.export.recipes import DYNAMIC_LADDER, STATIC_LADDER, float_nodes, ladder
from tests.conftest import EXAMPLES

THREE = ("daisy", "roses", "tulips")


def _export_int8(run) -> tuple[dict, str]:
    result = CliRunner().invoke(app, ["export", str(run), "--quantize", "int8"])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "export" / "export.json").read_text())
    return record, " ".join(result.output.split())


@pytest.fixture(scope="module")
def few_labels_run(tmp_path_factory):
    """The issue's case, smaller: 3 classes of 20 flower photos, no validation folder (few
    labels: every photo trains), feature extraction."""
    data = tmp_path_factory.mktemp("int8-few") / "flowers"
    for name in THREE:
        (data / name).mkdir(parents=True)
        for photo in sorted((EXAMPLES / "train" / name).iterdir())[:20]:
            shutil.copy(photo, data / name / photo.name)
    out = data.parent / "run"
    graft.fit(data, strategy="feature-extract", out=out, progress=False)
    return out


@pytest.mark.slow
def test_a_few_labels_feature_extract_run_exports_to_int8_within_the_tolerance(few_labels_run):
    record, output = _export_int8(few_labels_run)
    q = record["quantization"]
    assert record["file"] == "model.int8.onnx"
    assert q["recipe"] in [r.name for r in STATIC_LADDER] and q["calibration"] == "static"
    assert q["points_lost"] <= q["tolerance"] == 1.0
    assert q["scored_on"] == "training data" and q["validation_inputs"] == 60
    assert q["calibration_inputs"] == 60  # every photo: fewer than the 128 a static rung asks
    assert q["tried"][-1]["recipe"] == q["recipe"]
    assert all(t["points_lost"] > 1.0 for t in q["tried"][:-1])  # stopped at the first kept
    assert q["speed"]["speedup"] > 0 and q["speed"]["inputs"] == 32
    assert f"int8 ({q['recipe']}" in output and "float's speed" in output
    assert "on 60 training inputs" in output


@pytest.mark.slow
def test_a_fine_tuned_run_exports_to_int8_within_the_tolerance(tiny_flowers, tmp_path):
    out = tmp_path / "fine-tuned"
    graft.fit(
        tiny_flowers / "train",
        tiny_flowers / "val",
        strategy="fine-tune",
        epochs=1,
        head_epochs=1,
        out=out,
        progress=False,
    )
    record, output = _export_int8(out)
    q = record["quantization"]
    assert q["points_lost"] <= 1.0 and q["scored_on"] == "validation data"
    assert q["validation_inputs"] == 20 and q["recipe"] in [r.name for r in STATIC_LADDER]
    assert "kept: accuracy" in output


@pytest.mark.slow
def test_the_ladder_climbs_past_a_recipe_beyond_the_tolerance(few_labels_run, monkeypatch):
    """A first rung that loses (dynamic int8 of the depthwise convolutions, tens of points
    here) is recorded and the next one kept."""
    import graft.export.quantize as quantize

    static = ladder("static", 60)[0]
    monkeypatch.setattr(quantize, "ladder", lambda calibration, size: [DYNAMIC_LADDER[0], static])
    folder = few_labels_run / "export"
    shutil.rmtree(folder, ignore_errors=True)
    record, output = _export_int8(few_labels_run)
    q = record["quantization"]
    assert [t["recipe"] for t in q["tried"]] == ["dynamic", "static"] and q["recipe"] == "static"
    assert q["tried"][0]["points_lost"] > 5.0 >= 1.0 >= q["points_lost"]
    assert "int8 (static, after 1 beyond the tolerance) kept" in output


def test_the_ladder_skips_rungs_that_would_repeat_one():
    assert [r.name for r in ladder("static", 60)] == [
        "static",
        "static-float-ends",
        "static-float-ends-percentile",
    ]  # 60 inputs: calibrating on "512" would be calibrating on the same 60 again
    assert [r.name for r in ladder("static", 1000)] == [r.name for r in STATIC_LADDER]
    assert [r.name for r in ladder("dynamic", 60)] == ["dynamic", "dynamic-float-head"]
    assert ladder("static", 300)[2].record(300)["calibration_inputs"] == 300


def test_the_layers_kept_in_float_are_the_stem_and_the_classifier(tiny_flowers, tmp_path):
    out = tmp_path / "run"
    graft.fit(tiny_flowers, strategy="feature-extract", epochs=1, out=out, progress=False)
    model = graft.load(out, engine="torch")
    record = export_model(model, parity_items(model, out), tmp_path / "export", "onnx")
    path = tmp_path / "export" / record["file"]
    nodes = list(onnx.load(path).graph.node)
    head = float_nodes(path, "head")
    assert (
        len(head) == 1
        and head[0] == [n.name for n in nodes if n.op_type == "Gemm" or n.op_type == "MatMul"][-1]
    )
    ends = float_nodes(path, "ends")
    first_conv = next(n for n in nodes if n.op_type == "Conv")
    assert ends[-1] == head[0] and first_conv.name in ends
    assert sum(n.op_type == "Conv" for n in nodes if n.name in ends) == 1
    assert float_nodes(path, "") == []
