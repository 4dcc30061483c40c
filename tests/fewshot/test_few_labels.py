"""Few labels: no split below the threshold, the fixed recipe, the cross-validated estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graft
from graft.config import FitConfig
from graft.data import LabelledData, load_data
from graft.errors import ConfigError
from graft.fewshot.few_labels import FEW_LABELS_PER_CLASS, FewLabels
from graft.strategies import STRATEGIES
from graft.tasks import task_class
from graft.training.phase import Phase
from tests.conftest import SHARED


def labelled(counts: list[int], task: str = "multiclass") -> LabelledData:
    labels = np.concatenate([[label] * count for label, count in enumerate(counts)])
    classes = [f"c{label}" for label in range(len(counts))]
    items = [f"text {i}" for i in range(len(labels))]
    return LabelledData(items, labels.astype(np.int64), classes, "text", "rows", task=task)


def regime(counts, task="multiclass", adapting=False, **options):
    config = FitConfig(**options).validate().with_defaults()
    return FewLabels.for_fit(config, task_class(task), labelled(counts), adapting)


def test_the_regime_applies_below_the_threshold_only():
    below = regime([FEW_LABELS_PER_CLASS - 1, FEW_LABELS_PER_CLASS - 1])
    assert below is not None and below.folds == 5 and below.examples == 2 * below.median_per_class
    assert regime([FEW_LABELS_PER_CLASS, FEW_LABELS_PER_CLASS]) is None
    # the median over classes decides: one large class does not lift two small ones
    assert regime([3, 4, 10 * FEW_LABELS_PER_CLASS]) is not None
    assert regime([8, 8], task="multilabel") is None
    assert regime([8, 8], adapting=True) is None  # the adaptation guard needs validation data


def test_cv_folds_zero_skips_the_estimate_and_a_class_of_one_cannot_be_held_out(caplog):
    assert regime([8, 8], cv_folds=0).folds == 0
    assert regime([8, 8], cv_folds=3).folds == 3
    single = regime([1, 8])
    assert single is not None and single.folds == 0
    assert "a class with a single labelled example" in caplog.text
    with pytest.raises(ConfigError, match="--cv-folds must be 0 .no estimate. or at least 2"):
        FitConfig(cv_folds=1).validate()


def test_the_recipe_trains_every_planned_epoch_and_keeps_the_last():
    few = regime([8, 8])
    phases = [
        Phase("head", 30, 0, 3e-3),
        Phase("finetune", 3, None, 3e-3, backbone_lr=6e-5, monitor="val_score"),
    ]
    head, finetune = few.plan(phases)
    assert head.keep_last and finetune.keep_last
    assert (head.epochs, finetune.epochs) == (30, 3)
    assert few.split_record()["kind"] == "none" and "16 labelled examples" in few.reason()


def sst2_rows(per_class: int) -> LabelledData:
    path = SHARED / "sst2" / "validation.csv"
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is not available")
    data = load_data(path)
    chosen = [np.flatnonzero(data.labels == c)[:per_class] for c in (0, 1)]
    return data.subset(np.sort(np.concatenate(chosen)))


@pytest.fixture(scope="module")
def few_run(tmp_path_factory):
    """8 sst2 sentences per class, no validation data, MiniLM's frozen features."""
    out = tmp_path_factory.mktemp("few") / "run"
    model = graft.fit(
        sst2_rows(8),
        model="minilm",
        strategy="feature-extract",
        max_length=32,
        cv_folds=4,
        out=out,
        progress=False,
    )
    return model, out


@pytest.mark.slow
def test_every_example_trains_and_four_folds_estimate_the_score(few_run):
    model, out = few_run
    assert model.summary_["examples"] == {"train": 16}  # nothing held out
    assert "val" not in model.metrics_ and model.split_["kind"] == "none"
    estimate = model.metrics_["cross_validation"]
    assert estimate["folds"] == 4 and estimate["model"] == "labelled-only"
    assert sum(estimate["held_out"]) == 16 and sorted(estimate["held_out"]) == [4, 4, 4, 4]
    per_fold = estimate["metrics"]["accuracy"]["per_fold"]
    assert len(per_fold) == 4 and all(p in (0.0, 0.25, 0.5, 0.75, 1.0) for p in per_fold)
    assert estimate["accuracy"] == pytest.approx(np.mean(per_fold))
    assert estimate["accuracy_std"] == pytest.approx(np.std(per_fold, ddof=1))
    head = [row for row in model.history_ if row["phase"] == "head"]
    assert len(head) == 30 and head[-1]["kept"] and not any(r["kept"] for r in head[:-1])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["cross_validation"]["metrics"] == estimate["metrics"]
    assert json.loads((out / "config.json").read_text())["data"]["val"] is None
    report = (out / "report.html").read_text()
    assert "4-fold cross-validated accuracy" in report and "no validation split" in report
    assert model.summary_["few_labels"]["cv_folds"] == 4


@pytest.mark.slow
def test_the_fit_prints_the_estimate_on_the_command_line(few_run, capsys):
    from graft.cli.output import report_fit

    model, out = few_run
    report_fit(model, out)
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "4-fold cross-validated estimate of the labelled-only model" in printed
    assert "no validation data" in printed


def test_strategy_auto_measures_without_validation_data_by_cross_validated_knn():
    from graft.selection.advisor import cross_validated_knn

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 10)
    separated = rng.normal(size=(20, 4)) + labels[:, None] * 5.0
    assert cross_validated_knn(separated, labels) == 1.0
    noise = rng.normal(size=(20, 4))
    assert cross_validated_knn(noise, labels) < 0.8


def test_every_strategy_plans_phases_the_recipe_can_keep():
    few = regime([8, 8])
    from graft.backbones import create_backbone

    backbone = create_backbone("minilm")
    for name, strategy in STRATEGIES.items():
        config = FitConfig(strategy=name).validate().with_defaults()
        planned = few.plan(strategy().phases(config, backbone))
        assert all(phase.keep_last for phase in planned), name
