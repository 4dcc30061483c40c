"""Source-free adaptation on real digits: a run fitted on MNIST adapts to unlabelled USPS after
the MNIST folders are deleted, through ``graft.adapt`` and ``graft adapt``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import graft
from graft.adaptation.pseudo_labels import EpochPseudoLabels
from graft.cli import app
from graft.errors import ConfigError, RunError
from graft.runs.directory import read_weights
from tests.adaptation.test_fit_adapted import FAST, _domain, _per_class


def _folder(data, root: Path) -> Path:
    for item, label in zip(data.items, data.labels, strict=True):
        folder = root / data.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(item, folder / Path(item).name)
    return root


def _hashes(run: Path) -> dict[str, str]:
    files = sorted(p for p in run.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A feature-extract run on 10 MNIST digits per class, whose source folders are gone."""
    root = tmp_path_factory.mktemp("source-free")
    mnist, usps = _domain("mnist"), _domain("usps")
    train = _folder(_per_class(mnist, 0, 10), root / "mnist-train")
    val = _folder(_per_class(mnist, 10, 5), root / "mnist-val")
    target = _folder(_per_class(usps, 0, 12), root / "usps")
    options = {**FAST, "strategy": "feature-extract", "epochs": 15}
    graft.fit(train, val, out=root / "run", **options)
    shutil.rmtree(train), shutil.rmtree(val)  # adaptation must not need them
    return root / "run", target


def test_source_free_adaptation_writes_a_new_run_that_loads_identically(source_run, tmp_path):
    run, target = source_run
    before = _hashes(run)
    adapted = graft.adapt(
        run, target, out=tmp_path / "adapted", epochs=2, target_test=target, progress=False
    )
    assert not (run.parent / "mnist-train").exists() and _hashes(run) == before
    record = adapted.metrics_["adaptation"]
    assert record["source_free"] and record["method"] == "self-training"
    assert record["target_items"] == 120 and record["domain_gap"] is None
    assert record["kept"] == "adapted"
    assert record["label_free"]["im"] > record["label_free_before"]["im"]  # label-free gain
    assert [row["epoch"] for row in adapted.history_] == [1, 2]
    assert all(row["train_pseudo_labelled"] == 1.0 for row in adapted.history_)  # SHOT labels all
    original, new = (
        read_weights(run / "model.safetensors"),
        read_weights(tmp_path / "adapted" / "model.safetensors"),
    )
    for name in ("head.linear.weight", "head.linear.bias"):  # the source hypothesis is kept
        torch.testing.assert_close(original[name], new[name], rtol=0, atol=0)
    assert any(name.startswith("backbone.") for name in new)  # the features trained
    loaded = graft.load(tmp_path / "adapted")
    inputs = sorted(str(p) for p in target.rglob("*.png"))[:40]
    np.testing.assert_allclose(
        loaded.predict_proba(inputs), adapted.predict_proba(inputs), atol=1e-6
    )
    assert 0 <= adapted.metrics_["target_test"]["accuracy"] <= 1
    assert "without source data" in (tmp_path / "adapted" / "report.html").read_text()


def test_source_free_refuses_to_overwrite_or_to_use_source_methods(source_run, tmp_path):
    run, target = source_run
    with pytest.raises(RunError, match="not empty"):
        graft.adapt(run, target, out=run)
    with pytest.raises(ConfigError, match="--adapt cdan needs the source data"):
        graft.adapt(run, target, out=tmp_path / "new", method="cdan")
    with pytest.raises(ConfigError, match="--epochs must be a positive"):
        graft.adapt(run, target, out=tmp_path / "new", epochs=0)


def test_cli_adapts_a_run_without_its_source_data(source_run, tmp_path):
    run, target = source_run
    out = tmp_path / "cli-adapted"
    arguments = ["adapt", str(run), "--target-unlabeled", str(target), "--out", str(out)]
    result = CliRunner().invoke(
        app, [*arguments, "--adapt", "mcc", "--epochs", "1", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the table wraps at the terminal's width
    assert "without source data" in text and str(out) in "".join(result.output.split())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["adaptation"]["method"] == "mcc"
    again = CliRunner().invoke(app, arguments)
    assert again.exit_code != 0 and "not empty" in str(again.exception)


class _Features(torch.nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs


def test_epoch_pseudo_labels_by_cluster_and_by_confidence():
    """Every item gets SHOT's nearest-centroid label; the confident rule keeps only rows of at
    least its threshold, at most an equal share per class; batches look labels up by index."""
    inputs = torch.tensor([[4.0, 0.0], [3.0, 0.2], [2.5, 0.0], [0.0, 4.0], [0.3, 2.0], [1.0, 1.1]])
    loader = [(inputs[:4], torch.arange(4)), (inputs[4:], torch.arange(4, 6))]
    head = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    clusters = EpochPseudoLabels(loader)
    clusters.refresh(_Features(), head, torch.device("cpu"))
    assert clusters.labels.tolist() == [0, 0, 0, 1, 1, 1] and clusters.selected_fraction == 1.0
    confident = EpochPseudoLabels(loader, rule="confident", threshold=0.8)
    confident.refresh(_Features(), head, torch.device("cpu"))
    probabilities = torch.softmax(inputs, dim=1).max(dim=1).values
    chosen = confident.labels >= 0
    assert (probabilities[chosen] >= 0.8).all() and not chosen[5]  # 0.52: below the threshold
    assert all((confident.labels == c).sum() <= 3 for c in (0, 1))  # ceil(6 / 2) per class
    assert confident.batch(torch.tensor([5, 0])).tolist() == [-1, 0]
    assert head.training  # modes restored after the pass
    with pytest.raises(ValueError, match="rule"):
        EpochPseudoLabels(loader, rule="entropy")
