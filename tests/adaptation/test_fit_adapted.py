"""Domain adaptation end to end on real digits: MNIST (labelled source) to USPS (unlabelled
target), through ``graft.fit`` and ``graft fit --target-unlabeled``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import graft
import graft.adaptation.component
from graft.adaptation import guard
from graft.cli import app
from graft.data import LabelledData, load_data
from graft.errors import ConfigError, DataError
from tests.conftest import SHARED

DIGITS = SHARED / "mnist_usps_16x16"
#: Small and fast: 32-pixel inputs, one or two epochs; enough to show behaviour, not accuracy.
FAST = dict(model="efficientnet_lite0", strategy="full", image_size=32, progress=False, seed=0)


def _domain(name: str) -> LabelledData:
    if not (DIGITS / name).is_dir():
        pytest.skip(f"shared dataset {DIGITS / name} is not available")
    return load_data(DIGITS / name)


def _per_class(data: LabelledData, start: int, count: int) -> LabelledData:
    """Examples start..start+count of each class, in file order."""
    chosen = [
        index
        for label in range(len(data.classes))
        for index in np.flatnonzero(data.labels == label)[start : start + count]
    ]
    return data.subset(sorted(chosen))


@pytest.fixture(scope="module")
def digits():
    mnist, usps = _domain("mnist"), _domain("usps")
    return _per_class(mnist, 0, 20), _per_class(mnist, 20, 5), _per_class(usps, 0, 15)


def test_adapt_none_equals_plain_fine_tuning(digits):
    train, val, target = digits
    plain = graft.fit(train, val, epochs=1, **FAST)
    with_target = graft.fit(train, val, epochs=1, target=target, target_test=target, **FAST)
    np.testing.assert_allclose(
        with_target.predict_proba(target.items[:40]), plain.predict_proba(target.items[:40])
    )
    adaptation = with_target.metrics_["adaptation"]
    assert adaptation["method"] == "none" and adaptation["target_items"] == len(target)
    assert 0 <= adaptation["domain_gap"]["after"] <= 2
    assert with_target.metrics_["target_test"]["accuracy"] == pytest.approx(
        float(np.mean(plain.predict(target.items) == np.asarray(target.classes)[target.labels]))
    )


@pytest.fixture(scope="module")
def adapted(digits):
    train, val, target = digits
    return graft.fit(
        train,
        val,
        epochs=2,
        target=target,
        target_test=target,
        adapt="coral",
        adapt_guard=False,
        **FAST,
    )


def test_adaptation_chooses_the_epoch_by_the_label_free_score(adapted):
    rows = adapted.history_
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert {"val_target_im", "val_target_snd", "val_target_entropy", "val_target_acc"} <= set(
            row
        )
        assert "train_transfer_loss" in row
    kept = next(r for r in rows if r.get("kept"))
    assert kept["val_target_im"] == max(r["val_target_im"] for r in rows)
    scores = adapted.metrics_["adaptation"]["label_free"]
    assert scores["im"] == pytest.approx(kept["val_target_im"], abs=1e-4)
    assert adapted.metrics_["target_test"]["accuracy"] == pytest.approx(
        kept["val_target_acc"], abs=1e-4
    )


def test_short_adaptation_improves_the_label_free_score(adapted, digits):
    """CORAL against source-only training of the same budget: the target predictions carry
    more information about the inputs (higher IM)."""
    train, val, target = digits
    source_only = graft.fit(train, val, epochs=2, target=target, **FAST)
    before = source_only.metrics_["adaptation"]["label_free"]["im"]
    assert adapted.metrics_["adaptation"]["label_free"]["im"] > before


@pytest.mark.parametrize("kept", ["source-only", "adapted"])
def test_the_guard_keeps_exactly_the_training_it_chose(digits, monkeypatch, kept):
    """The guarded fit trains source-only and adapted from the same weights; the model it
    returns is exactly the unguarded fit of the branch it kept."""
    train, val, target = digits

    def forced(source_rows, adapted_rows, tolerance=0.0):
        decision = guard.guard_adaptation(source_rows, adapted_rows, tolerance)
        return dataclasses.replace(decision, kept=kept)

    monkeypatch.setattr(graft.adaptation.component, "guard_adaptation", forced)
    options = dict(epochs=1, target=target, **FAST)
    guarded = graft.fit(train, val, adapt="dann", **options)
    same = dict(adapt="dann", adapt_guard=False) if kept == "adapted" else {}
    reference = graft.fit(train, val, **options, **same)
    np.testing.assert_allclose(
        guarded.predict_proba(target.items[:40]),
        reference.predict_proba(target.items[:40]),
        atol=1e-6,
    )
    (decision,) = guarded.metrics_["adaptation"]["guard"]
    assert decision["kept"] == kept and decision["phase"] == "full"
    assert {row["phase"] for row in guarded.history_} == {"full", "full-source-only"}
    (kept_row,) = [row for row in guarded.history_ if row.get("kept")]
    assert kept_row["phase"] == ("full" if kept == "adapted" else "full-source-only")


@pytest.mark.parametrize(
    ("adapted", "source_only", "tolerance", "kept"),
    [(0.80, 0.85, 0.0, "source-only"), (0.85, 0.85, 0.0, "adapted"), (0.83, 0.85, 0.05, "adapted")],
)
def test_the_guard_keeps_adaptation_only_if_the_source_score_holds(
    adapted, source_only, tolerance, kept
):
    def rows(score):
        return [{"epoch": 1, "val_score": 0.1, "kept": False}, {"val_score": score, "kept": True}]

    decision = guard.guard_adaptation(rows(source_only), rows(adapted), tolerance)
    assert decision.kept == kept
    assert (decision.adapted_score, decision.source_only_score) == (adapted, source_only)
    assert ("kept" if kept == "adapted" else "dropped") in decision.reason
    assert guard.guard_adaptation([], rows(0.1)).kept == "adapted"  # no source-only history
    with pytest.raises(ValueError, match="tolerance"):
        guard.guard_adaptation(rows(0.1), rows(0.1), -0.1)


@pytest.mark.parametrize(("accuracy", "count"), [(139 / 140, 140), (0.81, 40), (0.5, 7), (1.0, 60)])
def test_noise_tolerance_is_the_distance_to_the_wilson_lower_bound(accuracy, count):
    """The lower end of the Wilson interval is the lower root q of
    (p - q)^2 = z^2 q (1 - q) / n; solved here as a quadratic with numpy."""
    z2 = guard.NOISE_Z**2
    roots = np.roots([1 + z2 / count, -(2 * accuracy + z2 / count), accuracy**2])
    expected = accuracy - min(roots.real)
    assert guard.noise_tolerance(accuracy, count) == pytest.approx(expected, abs=1e-12)
    assert guard.noise_tolerance(accuracy, 0) == 0.0 and guard.noise_tolerance(1.5, 10) == 0.0


def test_the_guard_forgives_the_noise_of_a_small_validation_set():
    """PACS photo to cartoon: source-only right on 139 of 140 photos, an adapted model on 136;
    three more mistakes are within the noise, ten are not."""
    tolerance = guard.noise_tolerance(139 / 140, 140)
    assert 0.03 < tolerance < 0.033

    def rows(score):
        return [{"val_score": score, "kept": True}]

    assert guard.guard_adaptation(rows(139 / 140), rows(136 / 140), tolerance).kept == "adapted"
    assert guard.guard_adaptation(rows(139 / 140), rows(129 / 140), tolerance).kept != "adapted"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(adapt="dann"), "--adapt dann adapts to unlabelled target data"),
        (dict(target_test="TARGET"), "--target-test needs --target-unlabeled"),
        (dict(adapt="coral", target="TARGET", strategy="feature-extract"), "keeps frozen"),
        (dict(adapt="wasserstein", target="TARGET"), "--adapt must be one of"),
        (dict(adapt="mmd", target="TARGET", adapt_weight=0), "--adapt-weight must be positive"),
    ],
)
def test_bad_adaptation_options_are_clear_errors(digits, options, message):
    train, val, target = digits
    options = {k: target if v == "TARGET" else v for k, v in options.items()}
    with pytest.raises(ConfigError, match=message):
        graft.fit(train, val, **{**FAST, "epochs": 1, **options})


def test_a_missing_target_folder_names_the_option(digits, tmp_path):
    train, val, _ = digits
    with pytest.raises(DataError, match="--target-unlabeled .*missing"):
        graft.fit(train, val, epochs=1, adapt="dann", target=tmp_path / "missing", **FAST)


def test_cli_adapts_with_auto_strategy_and_records_the_domain_gap(digits, tmp_path):
    train, val, target = digits
    folders = {}
    for name, data in (("train", train), ("val", val), ("target", target)):
        for item, label in zip(data.items, data.labels, strict=True):
            folder = tmp_path / name / data.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(item, folder / Path(item).name)
        folders[name] = tmp_path / name
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "fit",
            str(folders["train"]),
            "--val",
            str(folders["val"]),
            "--target-unlabeled",
            str(folders["target"]),
            "--target-test",
            str(folders["target"]),
            "--adapt",
            "mmd",
            "--strategy",
            "auto",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "adaptation: mmd" in result.output and "domain gap" in result.output
    assert "source-risk guard" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["adaptation"]["method"] == "mmd"
    (decision,) = metrics["adaptation"]["guard"]
    assert (
        decision["kept"] in ("adapted", "source-only") and decision["phase"] == "top2"
    )  # partial: the top blocks
    assert set(metrics["adaptation"]["domain_gap"]) >= {"before", "after", "measure"}
    assert 0 <= metrics["target_test"]["accuracy"] <= 1
    assert "source-risk guard" in (out / "report.html").read_text()
    advice = json.loads((out / "summary.json").read_text())["advice"]  # 20 per class: frozen
    assert advice["strategy"] == "partial"  # features would do, but the backbone must adapt
    assert "domain adaptation needs features that can move" in advice["reason"]
