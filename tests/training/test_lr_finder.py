"""The learning-rate range test: the valley rule, --lr auto, and `graft lr-find`."""

from __future__ import annotations

import math

import pytest

import graft
from graft.cli import main
from graft.errors import ConfigError
from graft.training.lr_finder import valley


def test_valley_picks_a_rate_half_way_down_the_longest_fall():
    rates = [10 ** (-6 + k / 10) for k in range(61)]  # 1e-6 ... 1
    # flat, then falling steadily from index 20 to 50, then exploding
    losses = [2.0] * 20 + [2.0 - 0.05 * k for k in range(1, 31)] + [3.0 + k for k in range(11)]
    # after the 10 skipped points the longest decreasing run is one 2.0 then indices 20 to 49
    # (31 points, ending at 49); fastai counts its start as 49 - 31 = 18, a third of the
    # 31 steps is 10, and the pick is 18 + 10 + 5 = index 33
    assert valley(rates, losses) == pytest.approx(rates[33])
    assert valley(rates[:12], [1.0] * 12) is None  # nothing falls: no suggestion
    assert valley(rates, [math.nan] * 61) is None


def test_lr_auto_fits_with_the_suggested_rate(tiny_flowers):
    model = graft.fit(tiny_flowers, strategy="feature-extract", epochs=5, lr="auto", progress=False)
    finding = model.summary_["lr_finder"]
    assert len(finding["losses"]) == len(finding["learning_rates"]) > 50
    assert model.lr_ == finding["suggestion"]
    assert model.config.lr == model.get_params()["lr"] == "auto"  # fit keeps it as given
    assert 1e-5 < finding["suggestion"] < 1.0
    assert model.metrics_["val"]["accuracy"] > 0.4  # 5 classes, 4 photos each


def test_lr_find_command_prints_the_rate_and_draws_the_curve(
    tiny_flowers, tmp_path, capsys, monkeypatch
):
    plot = tmp_path / "curve.png"
    arguments = ["lr-find", str(tiny_flowers), "--plot", str(plot), "--no-progress"]
    monkeypatch.setattr("sys.argv", ["graft", *arguments])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    output = capsys.readouterr().out
    assert "suggested learning rate" in output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lr_must_be_a_positive_number_or_auto():
    with pytest.raises(ConfigError, match="--lr must be a positive number or auto"):
        graft.GraftClassifier(lr="fast")
    with pytest.raises(ConfigError, match="--lr must be positive"):
        graft.GraftClassifier(lr=-1.0)


def test_an_interrupted_range_test_leaves_nothing_in_the_working_directory(
    tiny_flowers, tmp_path, monkeypatch
):
    """Lightning writes the range test's starting weights to a ``.lr_find_*.ckpt`` and removes
    it at the end; a test that never reaches the end (Ctrl-C) must not leave it beside the
    user's files."""
    from lightning.pytorch.strategies.strategy import Strategy

    monkeypatch.setattr(Strategy, "remove_checkpoint", lambda self, path: None)  # never ends
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["graft", "lr-find", str(tiny_flowers), "--no-progress"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".ckpt"] == []
