"""Export to ONNX and TorchScript on real models and data: parity with PyTorch at export,
the same answers from ``graft predict --engine onnx``, and clear refusals."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import graft
from graft.cli import app
from graft.errors import DataError, RunError
from graft.export import exporter as export_module
from graft.export.engine import ExportError
from graft.export.exporter import export_model, parity_items
from tests.conftest import write_sst2


@pytest.fixture(scope="module")
def image_run(tiny_flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "flowers"
    graft.fit(tiny_flowers, strategy="feature-extract", epochs=3, out=out, progress=False)
    return out, sorted(str(p) for p in (tiny_flowers / "val").rglob("*.jpg"))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export-text")
    train = write_sst2("train.csv", 120, folder / "train.csv")
    out = folder / "sst2"
    graft.fit(train, strategy="feature-extract", epochs=3, out=out, progress=False)
    with open(train, newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return out, texts


@pytest.mark.slow
def test_onnx_export_of_an_image_model_matches_pytorch(image_run):
    run, photos = image_run
    result = CliRunner().invoke(app, ["export", str(run), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "export" / "export.json").read_text())
    assert record["parity"]["max_abs_logit_difference"] <= 1e-4
    assert record["parity"]["inputs"] >= 16  # real photos of the run's own data
    assert record["inputs"] == ["pixels"] and record["dynamic"] == {"pixels": ["batch"]}
    assert record["preprocessing"]["input_size"] == [224, 224]
    assert record["classes"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    torch_model, onnx_model = graft.load(run, engine="torch"), graft.load(run, engine="onnx")
    assert graft.load(run).engine_name_ == ("torch" if torch.cuda.is_available() else "onnx")
    np.testing.assert_allclose(
        onnx_model.predict_proba(photos), torch_model.predict_proba(photos), atol=1e-5
    )
    assert onnx_model.predict(photos) == torch_model.predict(photos)
    answers = {}
    for engine in ("torch", "onnx"):
        result = CliRunner().invoke(
            app, ["predict", str(run), *photos[:3], "--top-k", "2", "--json", "--engine", engine]
        )
        assert result.exit_code == 0, result.output
        answers[engine] = [json.loads(line) for line in result.output.splitlines()]
    for onnx_row, torch_row in zip(answers["onnx"], answers["torch"], strict=True):
        assert [p["label"] for p in onnx_row["predictions"]] == [
            p["label"] for p in torch_row["predictions"]
        ]


@pytest.mark.slow
@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_text_export_takes_any_batch_and_sequence_length(text_run, format, tmp_path):
    run, texts = text_run
    folder = tmp_path / format
    model = graft.load(run)
    record = export_model(model, texts, folder, format)
    assert record["inputs"][0] == "input_ids" and "attention_mask" in record["inputs"]
    assert record["dynamic"]["input_ids"] == ["batch", "sequence"]
    assert (folder / "tokenizer" / "tokenizer_config.json").is_file()  # self-contained
    assert record["preprocessing"]["tokenizer"] == "tokenizer"
    exported = graft.load(run, engine=format, export=folder)
    for batch in ([texts[0]], texts[:5], texts[5:37]):  # 1, 5 and 32 rows, varied lengths
        np.testing.assert_allclose(
            exported.predict_proba(batch), model.predict_proba(batch), atol=1e-5
        )


@pytest.mark.slow
def test_a_failed_parity_check_writes_nothing(image_run, monkeypatch, tmp_path):
    run, photos = image_run
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(ExportError, match="logits up to .* nothing was written"):
        export_model(graft.load(run), photos, tmp_path / "out", "onnx")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its half-built twin


def test_export_refusals_are_clear(image_run, tmp_path):
    run, photos = image_run
    model = graft.load(run)
    (tmp_path / "taken").mkdir()
    with pytest.raises(RunError, match="already exists: choose another --out or pass"):
        export_model(model, photos, tmp_path / "taken", "onnx")
    result = CliRunner().invoke(app, ["export", str(run), "--format", "tflite"])
    assert "--format must be one of onnx, torchscript" in str(result.exception)
    with pytest.raises(RunError, match="no exported model .* graft export RUN --format onnx"):
        graft.load(run, engine="onnx", export=tmp_path / "missing")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(RunError, match="not an export folder .* left alone"):
        export_model(model, photos, tmp_path / "mine", "onnx", overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"
    with pytest.raises(DataError, match="no-such-folder: no such image file or folder"):
        parity_items(model, run, str(tmp_path / "no-such-folder"))


def test_an_export_of_an_older_model_is_refused(image_run, tmp_path):
    run, photos = image_run
    folder = tmp_path / "old"
    record = export_model(graft.load(run), photos, folder, "torchscript")
    assert len(record["model_sha256"]) == 64
    record["model_sha256"] = "0" * 64  # as if the run had been trained again since
    (folder / "export.json").write_text(json.dumps(record))
    with pytest.raises(RunError, match="exported from another model .* --overwrite"):
        graft.load(run, engine="torchscript", export=folder)
