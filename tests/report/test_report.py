"""The run report on a real fit, and the calibration and error lists it draws from."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import graft
from graft.cli import app
from graft.evaluation.metrics import calibration, confident_errors


@pytest.fixture(scope="module")
def run(tiny_flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    graft.fit(tiny_flowers, strategy="feature-extract", epochs=4, out=out, progress=False)
    return out


def test_every_fit_writes_a_self_contained_report(run):
    page = (run / "report.html").read_text()
    for heading in (
        "Run",
        "Decisions",
        "Metrics",
        "Learning curves",
        "Confusion matrix (val)",
        "Per class (val)",
        "Calibration (val)",
        "Most confidently wrong (val)",
        "Settings",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert "<script" not in page and not re.search(r"(src|href)=\"(https?:)?//", page)
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 3  # curves, matrix, diagram
    metrics = json.loads((run / "metrics.json").read_text())["val"]
    assert f"<b>{metrics['calibration']['ece']:.4f}</b>" in page
    errors = metrics["confident_errors"]
    assert 1 <= len(errors) <= 8
    assert page.count('src="data:image/jpeg;base64,') == len(errors)  # a thumbnail each
    assert "efficientnet_lite0" in page and "feature-extract" in page


def test_graft_report_rebuilds_it(run):
    (run / "report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert "<h2>Calibration (val)</h2>" in (run / "report.html").read_text()
    result = CliRunner().invoke(app, ["report", str(run.parent / "nothing-here")])
    assert "not a graft run (config.json is missing)" in str(result.exception)


def test_calibration_against_a_direct_computation():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(400, 4, generator=generator) * 2
    labels = torch.randint(0, 4, (400,), generator=generator)
    result = calibration(logits, labels, bins=10)
    probabilities = torch.softmax(logits, -1).numpy()
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels.numpy()
    bins = np.minimum(np.floor(confidence * 10).astype(int), 9)  # [k/10, (k+1)/10)
    ece = sum(
        (bins == k).mean() * abs(correct[bins == k].mean() - confidence[bins == k].mean())
        for k in range(10)
        if (bins == k).any()
    )
    assert result["ece"] == pytest.approx(ece, abs=1e-5)
    assert sum(b["count"] for b in result["bins"]) == 400
    assert [b["count"] for b in result["bins"]] == np.bincount(bins, minlength=10).tolist()


def test_confident_errors_are_the_most_probable_mistakes():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8], [0.95, 0.05]]))
    labels = torch.tensor([1, 1, 1, 0, 0])  # wrong: rows 0 (0.9), 2 (0.6) and 3 (0.8)
    found = confident_errors(logits, labels, ["cat", "dog"], ["a", "b", "c", "d", "e"], count=2)
    assert [e["item"] for e in found] == ["a", "d"]
    assert found[0] == {"item": "a", "label": "dog", "predicted": "cat", "probability": 0.9}


@pytest.mark.parametrize("logger", ["tensorboard", "mlflow"])
def test_training_curves_also_go_to_the_chosen_logger(tiny_flowers, tmp_path, logger):
    out = tmp_path / "run"
    graft.fit(
        tiny_flowers, strategy="feature-extract", epochs=2, out=out, progress=False, logger=logger
    )
    assert (out / "logs" / "head" / "metrics.csv").is_file()  # the CSV logs stay
    if logger == "tensorboard":
        assert list((out / "logs" / "tensorboard" / "head").glob("events.out.tfevents.*"))
    else:
        metrics = list((out / "logs" / "mlruns").rglob("metrics/val_loss"))
        assert metrics and len(metrics[0].read_text().splitlines()) == 2  # one line per epoch


def test_an_unknown_logger_is_a_clear_error(tiny_flowers):
    with pytest.raises(graft.ConfigError, match="--logger must be one of csv, tensorboard"):
        graft.fit(tiny_flowers, strategy="feature-extract", epochs=1, logger="wandb")
