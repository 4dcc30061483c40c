"""Detection end to end on Penn-Fudan: a short fit beats its measured floor, the run restores
to identical boxes, ``graft predict`` prints JSON and draws, the report draws its sections,
``graft serve`` answers boxes, ONNX keeps the boxes and scores, instance segmentation answers
masks, and ranking puts the pretrained backbone above its random-weights twin."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import graft
from graft.cli import app, main
from graft.tasks.detection import read_detection
from tests.conftest import SHARED

PENNFUDAN = SHARED / "pennfudan"
runner = CliRunner()
#: The short fit below: 60 training and 20 validation images at a shorter side of 256, 2 epochs
#: of heads then 2 of the whole network (graft's detection defaults otherwise).
FIT = dict(task="detection", image_size=256, head_epochs=2, epochs=2, seed=0, progress=False)
#: The floor of its validation mAP@.5: what a quarter of the data does with half the epochs
#: (16 training images, one epoch a phase: 0.309 on the 8 first validation images,
#: ``bench/detection.py --quick --image-size 256``); an untrained head scores 0.0.
FLOOR_MAP_50 = 0.30

pytestmark = pytest.mark.slow


def refused(arguments: list[str], capsys, monkeypatch) -> str:
    """The one-line error ``graft ARGUMENTS`` prints (exit status 2, no traceback)."""
    monkeypatch.setattr("sys.argv", ["graft", *arguments])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in error
    return error


def _pennfudan():
    if not (PENNFUDAN / "annotations_train.json").is_file():
        pytest.skip(f"shared dataset {PENNFUDAN} is not available")
    train = read_detection(PENNFUDAN / "annotations_train.json")
    val = read_detection(PENNFUDAN / "annotations_val.json")
    return train.subset(range(0, 120, 2)), val.subset(range(0, 50, 2)[:20])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    train, val = _pennfudan()
    out = tmp_path_factory.mktemp("detection") / "run"
    model = graft.fit(train, val, out=out, **FIT)
    return model, out, val


def test_a_short_fit_beats_the_floor_and_keeps_its_best_epoch(fitted):
    model, out, _ = fitted
    metrics = model.metrics_["val"]
    assert metrics["map_50"] >= FLOOR_MAP_50, metrics
    assert 0.0 <= metrics["map"] <= metrics["map_50"] and metrics["num_objects"] > 0
    assert set(metrics["per_class"]) == {"person"} and metrics["pr_curves"]["person"]["recall"]
    assert [r["phase"] for r in model.history_] == ["head"] * 2 + ["finetune"] * 2
    assert all("val_score" in r and "val_map_50" in r for r in model.history_)
    assert model.config_.batch_size == 4 and model.config_.lr == 1e-3  # detection defaults
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == {"train": 60, "val": 20}
    assert summary["annotations"]["train"]["boxes"] == sum(
        len(t) for t in model.splits_.train.targets
    )


def test_the_run_restores_to_identical_boxes(fitted):
    model, out, val = fitted
    images = val.images[:4]
    restored = graft.load(out)
    assert restored.task_ == "detection" and restored.classes_ == ["person"]
    low = {"score_threshold": 0.05}
    assert restored.predict(images, **low) == model.predict(images, **low)
    assert restored.evaluate(val)["map"] == pytest.approx(model.metrics_["val"]["map"], abs=1e-6)


def test_predict_prints_json_boxes_and_draws_them(fitted, tmp_path, capsys, monkeypatch):
    model, out, val = fitted
    image = val.images[0]
    result = runner.invoke(app, ["predict", str(out), image, "--json", "--score-threshold", "0.3"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[0])
    assert record["input"] == image and isinstance(record["predictions"], list)
    width, height = val.targets[0].width, val.targets[0].height
    for found in record["predictions"]:
        assert set(found) == {"label", "score", "box"} and found["label"] == "person"
        x1, y1, x2, y2 = found["box"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height and found["score"] >= 0.3
    drawn = tmp_path / "drawn"
    result = runner.invoke(app, ["predict", str(out), image, "--draw", str(drawn)])
    assert result.exit_code == 0 and "person" in result.output
    (png,) = drawn.iterdir()
    from PIL import Image

    assert Image.open(png).size == (width, height)
    error = refused(["predict", str(out), image, "--score-threshold", "2"], capsys, monkeypatch)
    assert "between 0 and 1" in error


def test_the_report_draws_the_detection_sections(fitted):
    _, out, _ = fitted
    page = (out / "report.html").read_text()
    for heading in ("Average precision per class and object size", "Precision-recall per class"):
        assert heading in page
    assert "detector" in page and "fasterrcnn" in page


def test_serve_answers_boxes_and_the_page_draws_them(fitted):
    from fastapi.testclient import TestClient

    from graft.serve import create_app

    model, _, val = fitted
    with TestClient(create_app(model)) as client:
        with open(val.images[0], "rb") as handle:
            response = client.post("/predict", files={"file": handle})
        assert response.status_code == 200, response.text
        (answer,) = response.json()["predictions"]
        expected = model.predict([val.images[0]])[0]
        assert answer == {"detections": expected}
        assert "showBoxes" in client.get("/").text


def test_onnx_export_keeps_the_boxes_and_scores(fitted, tmp_path, capsys, monkeypatch):
    model, out, val = fitted
    check = str(PENNFUDAN / "annotations_val.json")  # the fit's data were held in memory
    command = ["export", str(out), "--out", str(tmp_path / "export"), "--check", check]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "export" / "export.json").read_text())
    assert record["parity"]["max_abs_box_difference"] <= record["parity"]["box_tolerance"]
    assert record["task"]["kind"] == "detection" and record["outputs"][:3] == [
        "boxes",
        "labels",
        "scores",
    ]
    exported = graft.load(out, engine="onnx", export=tmp_path / "export")
    images = val.images[:3]
    for ours, theirs in zip(exported.predict(images), model.predict(images), strict=True):
        assert [a["label"] for a in ours] == [a["label"] for a in theirs]
        for a, b in zip(ours, theirs, strict=True):
            assert (
                np.allclose(a["box"], b["box"], atol=0.05) and abs(a["score"] - b["score"]) < 1e-3
            )
    command = ["export", str(out), "--format", "torchscript", "--out", str(tmp_path / "ts")]
    assert "ONNX only" in refused([*command, "--check", check], capsys, monkeypatch)


def test_instance_segmentation_answers_masks(tmp_path):
    from pycocotools import mask as coco_mask

    train, val = _pennfudan()
    model = graft.fit(
        train.subset(range(8)),
        val.subset(range(4)),
        task="instance-segmentation",
        strategy="feature-extract",
        epochs=1,
        image_size=192,
        progress=False,
        out=tmp_path / "run",
    )
    metrics = model.metrics_["val"]
    assert {"map", "mask_map", "mask_map_50"} <= set(metrics)
    assert "mask_ap" in metrics["per_class"]["person"]
    (found,) = model.predict([val.images[0]], score_threshold=0.0)
    target = val.targets[0]
    for answer in found:
        assert coco_mask.decode(answer["mask"]).shape == (target.height, target.width)
    restored = graft.load(tmp_path / "run")
    assert restored.task_ == "instance-segmentation"
    assert restored.predict([val.images[0]], score_threshold=0.0) == [found]


def test_rank_puts_pretrained_features_above_random_ones(tmp_path):
    train, val = _pennfudan()
    result = runner.invoke(
        app,
        [
            "rank",
            str(PENNFUDAN),
            "--models",
            "scratch:efficientnet_lite0,efficientnet_lite0",
            "--out",
            str(tmp_path / "rank.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    ranking = json.loads((tmp_path / "rank.json").read_text())
    assert [row["model"] for row in ranking["ranking"]] == [
        "efficientnet_lite0",
        "scratch:efficientnet_lite0",
    ]
    assert ranking["examples"] == {"train": 120, "val": 50}
    assert ranking["ranking"][0]["knn_accuracy"] > ranking["ranking"][1]["knn_accuracy"]


def test_broken_annotations_fail_fit_in_one_line(tmp_path, capsys, monkeypatch):
    train, _ = _pennfudan()
    folder = tmp_path / "broken"
    folder.mkdir()
    image = Path(train.images[0])
    shutil.copy(image, folder / image.name)
    annotations = {
        "images": [{"id": 1, "file_name": image.name}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, "x", 5, 5]}],
        "categories": [{"id": 1, "name": "person"}],
    }
    (folder / "instances.json").write_text(json.dumps(annotations))
    arguments = ["fit", str(folder / "instances.json"), "--out", str(tmp_path / "r")]
    error = refused(arguments, capsys, monkeypatch)
    assert "instances.json" in error.replace(" ", "") and "annotation 1" in error  # wrapped
