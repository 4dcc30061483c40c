"""Checkpoints every epoch: a fit killed with SIGKILL resumes to an uninterrupted fit's result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import graft
from graft.data import load_data
from graft.errors import RunError
from tests.conftest import copy_flowers

FIT_OPTIONS = dict(strategy="fine-tune", head_epochs=6, epochs=3, batch_size=8, seed=3)


def cli_options(options: dict) -> list[str]:
    return [part for k, v in options.items() for part in (f"--{k.replace('_', '-')}", str(v))]


def graft_command(*arguments: str) -> list[str]:
    """The installed ``graft`` script (DDP's launcher runs the same command once per device)."""
    script = Path(sys.executable).parent / "graft"
    if not script.is_file():
        pytest.skip(f"the graft script is not installed beside {sys.executable}")
    return [str(script), *arguments]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return copy_flowers(tmp_path_factory.mktemp("resume"), {"train": 12, "val": 6})


def kill_when(process: subprocess.Popen, ready: Path, delay: float, limit: float = 300) -> None:
    """SIGKILL ``process`` ``delay`` seconds after ``ready`` appears (it must still run)."""
    deadline = time.monotonic() + limit
    while not ready.exists():
        assert process.poll() is None, "the fit ended before the kill"
        assert time.monotonic() < deadline, f"{ready} never appeared"
        time.sleep(0.05)
    time.sleep(delay)
    assert process.poll() is None, "the fit ended before the kill"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_fit(photos, tmp_path):
    reference = graft.fit(photos, out=tmp_path / "reference", progress=False, **FIT_OPTIONS)

    run = tmp_path / "killed"
    command = graft_command("fit", str(photos), "--out", str(run), "--no-progress")
    process = subprocess.Popen(command + cli_options(FIT_OPTIONS), stderr=subprocess.DEVNULL)
    # Killed during the second epoch of the fine-tuning phase, after the head phase finished.
    kill_when(process, run / "checkpoints" / "finetune" / "last.ckpt", delay=1.0)
    assert (run / "checkpoints" / "head" / "done.json").is_file()
    assert not (run / "model.safetensors").exists()
    with pytest.raises(RunError, match="did not finish.*--resume"):
        graft.load(run)

    resumed = subprocess.run(graft_command("fit", "--resume", str(run), "--no-progress"))
    assert resumed.returncode == 0
    history = json.loads((run / "history.json").read_text())
    assert [(r["phase"], r["epoch"]) for r in history] == [
        (r["phase"], r["epoch"]) for r in reference.history_
    ]
    for ours, theirs in zip(history, reference.history_, strict=True):
        assert ours["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-4, abs=1e-6)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] == reference.metrics_["val"]["accuracy"]
    assert metrics["val"]["confusion_matrix"] == reference.metrics_["val"]["confusion_matrix"]
    again = graft.load(run)
    np.testing.assert_allclose(
        again.predict_proba(photos / "val"), reference.predict_proba(photos / "val"), atol=1e-4
    )
    assert not (run / "checkpoints").exists()  # dropped once the run finished


def test_resume_refuses_a_finished_or_missing_run(photos, tmp_path):
    run = tmp_path / "done"
    graft.fit(photos, strategy="feature-extract", epochs=2, out=run, progress=False)
    with pytest.raises(RunError, match="has finished"):
        graft.resume(run)
    with pytest.raises(RunError, match="no such run directory"):
        graft.resume(tmp_path / "nothing")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(photos, tmp_path):
    options = dict(strategy="fine-tune", head_epochs=6, epochs=2, batch_size=8)
    single = graft.fit(photos, out=tmp_path / "single", progress=False, **options)
    run = tmp_path / "ddp"
    command = graft_command(
        "fit", str(photos), "--out", str(run), "--devices", "2", "--distributed", "ddp",
        "--no-progress", *cli_options(options),
    )  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout.count("run saved to") == 1  # one process reports and writes
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["devices"], config["distributed"]) == (2, "ddp")
    distributed = json.loads((run / "metrics.json").read_text())["val"]["accuracy"]
    assert distributed >= single.metrics_["val"]["accuracy"] - 0.1
    assert distributed >= 0.5  # 30 validation photos of 5 classes


@pytest.mark.slow
def test_a_second_fit_on_a_run_being_written_is_refused(photos, tmp_path):
    from graft.runs.directory import run_lock

    run = tmp_path / "busy"
    first = subprocess.Popen(
        graft_command(
            "fit", str(photos), "--out", str(run), "--no-progress", *cli_options(FIT_OPTIONS)
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "config.json").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run(
            graft_command("fit", str(photos), "--out", str(run), "--overwrite", "--no-progress"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert f"graft process {first.pid} is writing this run now" in " ".join(
            second.stderr.split()
        )
        assert first.poll() is None  # the first fit goes on
    finally:
        first.kill()
        first.wait()
    with run_lock(run):  # SIGKILL freed the lock: a resume could take the run now
        assert json.loads((run / "config.json").read_text())["status"] == "running"


@pytest.mark.slow
def test_same_seed_same_metrics_and_the_run_records_versions_and_data_hash(photos, tmp_path):
    options = dict(strategy="fine-tune", head_epochs=3, epochs=1, batch_size=8, seed=5)
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        graft.fit(photos, out=run, progress=False, num_workers=0, **options)
    first, second = (json.loads((run / "metrics.json").read_text()) for run in runs)
    assert first == second  # identical on the CPU, not merely close
    config = json.loads((runs[0] / "config.json").read_text())
    assert {"graft", "torch", "timm", "transformers"} <= set(config["versions"])
    hashes = config["data"]["content_sha256"]
    assert set(hashes) == {"train", "val"} and all(len(h) == 64 for h in hashes.values())
    assert json.loads((runs[1] / "config.json").read_text())["data"]["content_sha256"] == hashes
    changed = load_data(photos / "train")
    changed.labels = changed.labels.copy()
    changed.labels[0] = (changed.labels[0] + 1) % len(changed.classes)
    assert changed.content_hash() != hashes["train"]


def test_a_crash_while_saving_keeps_the_previous_model_file(photos, tmp_path, monkeypatch):
    from graft.runs import directory as runs

    run = tmp_path / "saved"
    model = graft.fit(photos, strategy="feature-extract", epochs=2, out=run, progress=False)
    before = (run / "model.safetensors").read_bytes()

    def crash_midway(tensors, path, metadata=None):
        Path(path).write_bytes(b"half a model")  # what a crash leaves in the temporary file
        raise OSError("disk full")

    monkeypatch.setattr(runs, "save_file", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        model.save(run, overwrite=True)
    assert (run / "model.safetensors").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # no debris either
    np.testing.assert_array_equal(
        graft.load(run).predict_proba(photos / "val"), model.predict_proba(photos / "val")
    )


def test_a_run_from_an_incompatible_graft_says_which_version_wrote_it(photos, tmp_path):
    run = tmp_path / "old"
    graft.fit(photos, strategy="feature-extract", epochs=1, out=run, progress=False)
    config = json.loads((run / "config.json").read_text())
    config["format_version"], config["versions"]["graft"] = 99, "9.9.0"
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="written by graft 9.9.0 in run format 99"):
        graft.load(run)
