"""``graft tune`` here: trials are run directories, a frozen-backbone search computes the
backbone's features once, the best trial is linked, a failing trial is a row of the table and
the study goes on, and a killed ``graft tune`` continues where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import graft
from graft.cli import app
from graft.tuning.study import tune

SPACE = (
    "strategy: feature-extract\nlr: {low: 1e-3, high: 3e-2, log: true}\nepochs: {low: 2, high: 4}\n"
)


@pytest.fixture()
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


@pytest.mark.slow
def test_a_frozen_backbone_search_runs_the_backbone_once_and_links_the_best(
    tiny_flowers, space_file, tmp_path
):
    out = tmp_path / "study"
    args = ["tune", str(tiny_flowers), "--out", str(out), "--trials", "3"]
    result = CliRunner().invoke(app, [*args, "--space", str(space_file), "--image-size", "64"])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "trials.json").read_text())
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 and rows[0]["defaults"]
    assert "graft's defaults" in result.output and "best:" in result.output
    # only the first trial ran the backbone over the 60 photos; the others read its features
    assert rows[0]["cache_misses"] == 60
    assert [r["cache_misses"] for r in rows[1:]] == [0, 0]
    assert all(r["seconds"] > 0 for r in rows)
    # every trial is a run directory; best links the highest validation score
    best = max(rows, key=lambda r: r["score"])
    assert os.readlink(out / "best") == best["run_dir"]
    model = graft.load(out / "best")
    assert model.metrics_["val"]["accuracy"] == pytest.approx(best["score"], abs=1e-6)
    assert model.config_.image_size == 64 and model.strategy_ == "feature-extract"
    assert len((out / "trials.csv").read_text().splitlines()) == 4
    page = (out / "search.html").read_text()
    assert "3 trials: 3 complete" in page and "<img" in page


def test_a_failing_trial_is_a_row_of_the_table_and_the_study_goes_on(tiny_flowers, tmp_path):
    space = {"strategy": "feature-extract", "epochs": 2, "augment": ["sideways"]}
    result = tune(tiny_flowers, out=tmp_path / "study", trials=3, space=space, image_size=64)
    states = [row["state"] for row in result.rows]
    assert states == ["COMPLETE", "FAIL", "FAIL"]  # the defaults, then two bad options
    assert all("augment" in row["error"] for row in result.rows[1:])
    assert result.best["run_dir"] == "trial-000" and (tmp_path / "study" / "best").is_dir()
    assert "1 complete, 0 pruned, 2 failed" in (tmp_path / "study" / "search.html").read_text()


@pytest.mark.slow
def test_a_killed_tune_continues_the_study_without_rewriting_a_trial(
    tiny_flowers, space_file, tmp_path
):
    out = tmp_path / "study"
    command = [sys.executable, "-c", "from graft.cli import main; main()", "tune"]
    command += [str(tiny_flowers), "--out", str(out), "--trials", "3", "--space", str(space_file)]
    command += ["--image-size", "64"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (out / "trial-001" / "trial.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # while its second trial trains
    process.wait()
    first = (out / "trial-000" / "model.safetensors").stat().st_mtime_ns
    result = tune(tiny_flowers, out=out, trials=4, space=space_file, image_size=64)
    assert [row["run_dir"] for row in result.rows] == [f"trial-{i:03d}" for i in range(4)]
    states = [row["state"] for row in result.rows]
    assert states[:2] == ["COMPLETE", "FAIL"] and set(states[2:]) <= {"COMPLETE", "PRUNED"}
    assert "interrupted" in result.rows[1]["error"]
    assert (out / "trial-000" / "model.safetensors").stat().st_mtime_ns == first
    # a study holding its trials already runs none, and new options were drawn after resuming
    again = tune(tiny_flowers, out=out, trials=4, space=space_file, image_size=64)
    assert len(again.rows) == 4
    assert result.rows[2]["params"] != result.rows[1]["params"]
    with pytest.raises(graft.RunError, match="study of other data"):
        tune(tmp_path, out=out, trials=4, space=space_file)


def test_without_optuna_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(graft.ConfigError, match=r'pip install "graft\[tune\]"'):
        tune(tmp_path, out=tmp_path / "study")
    from graft.tuning.ray_backend import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(graft.ConfigError, match=r'pip install "graft\[ray\]"'):
        require_ray()


def test_trial_resources_parse_or_say_what_they_take():
    from graft.tuning.ray_backend import parse_resources

    assert parse_resources("cpu=2,gpu=1") == {"cpu": 2.0, "gpu": 1.0}
    assert parse_resources(None) == {"cpu": 1.0}
    with pytest.raises(graft.ConfigError, match="like cpu=2,gpu=1"):
        parse_resources("cpus=two")
