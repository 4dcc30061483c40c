"""A deleted kind leaves the rest working: on a copy of the ``graft`` package without
``graft/tasks/detection/``, ``graft --help`` answers, a classification fit trains and predicts,
and asking for detection says in one line that the kind is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, write_csv

WORDS = {"good": "positive", "great": "positive", "bad": "negative", "awful": "negative"}


@pytest.fixture(scope="module")
def without_detection(tmp_path_factory):
    """A folder holding a copy of ``graft`` whose detection package is deleted, and the
    environment that imports graft from it."""
    folder = tmp_path_factory.mktemp("without-detection")
    shutil.copytree(ROOT / "graft", folder / "graft", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(folder / "graft" / "tasks" / "detection")
    env = dict(os.environ, PYTHONPATH=str(folder), HF_HUB_OFFLINE="1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    return folder, env


def graft_command(folder, env, *args: str) -> subprocess.CompletedProcess:
    """``graft ARGS`` run with the copy of graft in ``folder`` (checked to be the one used)."""
    code = (
        "import sys, graft\n"
        f"assert graft.__file__.startswith({str(folder)!r}), graft.__file__\n"
        "from graft.cli import main\n"
        "sys.argv = ['graft', *sys.argv[1:]]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def reviews(path):
    rows = [
        {"text": f"a {word} film, number {n}", "label": label}
        for n in range(6)
        for word, label in WORDS.items()
    ]
    return write_csv(path, rows, ("text", "label"))


def test_graft_help_answers_without_the_detection_kind(without_detection):
    folder, env = without_detection
    assert not (folder / "graft" / "tasks" / "detection").exists()
    done = graft_command(folder, env, "--help")
    assert done.returncode == 0, done.stderr
    assert "fit" in done.stdout


def test_asking_for_detection_says_in_one_line_that_it_is_not_installed(without_detection):
    folder, env = without_detection
    data = reviews(folder / "reviews.csv")
    done = graft_command(folder, env, "fit", str(data), "--task", "detection")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    message = " ".join(line.strip() for line in lines)  # rich may wrap the one line
    assert "the detection kind of task is not installed" in message
    assert "graft.tasks.detection" in message


@pytest.mark.slow
def test_a_classification_fit_trains_and_predicts_without_the_detection_kind(without_detection):
    folder, env = without_detection
    data, out = reviews(folder / "train.csv"), folder / "run"
    fit = ["fit", str(data), "--strategy", "feature-extract", "--epochs", "2", "--out", str(out)]
    done = graft_command(folder, env, *fit)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "metrics.json").is_file()
    done = graft_command(folder, env, "predict", str(out), "a great film", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "positive" in done.stdout or "negative" in done.stdout
