"""The command line, end to end on real data: fit, evaluate, predict, models, and its errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from graft.cli import app, main

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_run(tiny_flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = runner.invoke(
        app,
        [
            "fit",
            str(tiny_flowers),
            "--strategy",
            "feature-extract",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.slow
def test_fit_prints_the_evaluation_and_writes_the_run(cli_run):
    out, output = cli_run
    assert "val metrics: accuracy" in output and "macro-F1" in output
    assert "feature cache:" in output and str(out) in output.replace("\n", "")
    assert (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_evaluate_json(cli_run, tiny_flowers):
    out, _ = cli_run
    result = runner.invoke(app, ["evaluate", str(out), str(tiny_flowers / "val"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["num_examples"] == 20 and 0.0 <= metrics["accuracy"] <= 1.0
    assert len(metrics["confusion_matrix"]) == 5


@pytest.mark.slow
def test_predict_json_top_k(cli_run, tiny_flowers):
    out, _ = cli_run
    photo = next((tiny_flowers / "val" / "sunflowers").iterdir())
    result = runner.invoke(app, ["predict", str(out), str(photo), "--top-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.strip().splitlines()[0])
    assert answer["input"] == str(photo)
    probabilities = [p["probability"] for p in answer["predictions"]]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)


def test_models_lists_the_offline_backbones():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "minilm"):
        assert name in result.output


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["fit", "/no/such/folder"], "no such file or folder"),
        (["fit", "{data}", "--model", "resnet5O"], "unknown model"),
        (["fit", "{data}", "--lr", "-1"], "--lr must be positive"),
        (["evaluate", "/no/such/run", "{data}"], "no such run directory"),
        (["fit", "{data}", "--model", "efficientnet_lite"], "Did you mean: efficientnet_lite4"),
        (["fit", "{data}", "--batch-size", "0"], "--batch-size must be a positive integer"),
        (
            ["fit", "{data}", "--strategy", "feature-extract", "--lora-rank", "4"],
            "--lora-rank configure --strategy lora, not feature-extract",
        ),
        (["fit", "{data}", "--logger", "wandb"], "--logger must be one of csv"),
        (["export", "/no/such/run"], "no such run directory"),
        (["report", "/no/such/run"], "not a graft run"),
        (["predict", "/no/such/run", "x.jpg", "--engine", "tflite"], "--engine must be one of"),
        (["serve", "/no/such/run", "--top-k", "0"], "--top-k must be positive"),
    ],
)
def test_errors_are_one_clear_line_and_exit_code_2(
    arguments, message, tiny_flowers, capsys, monkeypatch
):
    arguments = [a.replace("{data}", str(tiny_flowers)) for a in arguments]
    monkeypatch.setattr("sys.argv", ["graft", *arguments])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in " ".join(error.split()) and "Traceback" not in error


def test_an_error_with_square_brackets_prints_them(tmp_path, capsys, monkeypatch):
    """rich reads ``[x, y, w, h]`` as markup: graft's one-line errors print it as written."""
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    coco = tmp_path / "boxes.json"
    coco.write_text(
        '{"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],'
        ' "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2]}],'
        ' "categories": [{"id": 1, "name": "cat"}]}'
    )
    monkeypatch.setattr("sys.argv", ["graft", "fit", str(coco), "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "[x, y, w, h]" in error and "Traceback" not in error
