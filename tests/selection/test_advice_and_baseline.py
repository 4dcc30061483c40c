"""Choosing before training: ranking backbones, --strategy auto, and the scratch baseline."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

import graft
from graft.cli import app
from graft.errors import ConfigError, RunError
from graft.selection.advisor import (
    FEW_PER_CLASS,
    MANY_PER_CLASS,
    SEPARATED_KNN,
    Measurements,
    decide,
)
from graft.selection.baseline import scratch_params, transfer_gain, verdict
from tests.conftest import copy_flowers

MODELS = ["scratch:efficientnet_lite0", "efficientnet_lite0"]


@pytest.fixture(scope="module")
def ten_per_class(tmp_path_factory):
    return copy_flowers(tmp_path_factory.mktemp("ten-flowers"), {"train": 10, "val": 10})


@pytest.fixture(scope="module")
def ranking(flowers):
    return graft.rank(flowers, MODELS)


@pytest.mark.slow
def test_rank_puts_the_pretrained_backbone_above_random_weights(ranking):
    first, second = ranking.scores
    assert first.model == "efficientnet_lite0" and first.rank == 1
    assert second.model == "scratch:efficientnet_lite0" and second.rank == 2
    # The k-NN probe agrees with LogME, the score it ranks by. (The H-score, estimated from
    # 100 examples in 1,280 dimensions, does not separate them: see bench/RESULTS.md.)
    assert first.logme > second.logme
    assert first.knn_accuracy >= second.knn_accuracy + 0.2
    # LEEP needs the ImageNet head, which only the pretrained backbone has.
    assert first.leep is not None and first.leep > -1.6  # log(5 classes) = -1.61 is chance
    assert second.leep is None and second.source_entropy is None
    assert 0.0 < first.source_entropy < 1.0
    assert ranking.examples == {"train": 250, "val": 100}


def test_rank_costs_one_forward_pass_and_then_none(flowers, ranking):
    # The pretrained features may come from an earlier fit's cache; the random ones cannot.
    assert all(row.features_computed + row.features_cached == 350 for row in ranking.scores)
    assert ranking.scores[1].features_computed == 350
    again = graft.rank(flowers, MODELS, by="knn_accuracy")
    assert all(row.features_computed == 0 for row in again.scores)
    assert [row.model for row in again.scores] == [row.model for row in ranking.scores]


@pytest.mark.slow
def test_rank_cli_prints_the_table_and_writes_json(flowers, ranking, tmp_path):
    out = tmp_path / "rank.json"
    args = ["rank", str(flowers), "--models", ",".join(MODELS), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "LogME" in result.output and "k-NN" in result.output
    saved = json.loads(out.read_text())
    assert [row["model"] for row in saved["ranking"]] == [r.model for r in ranking.scores]
    assert saved["ranking"][0]["logme"] == pytest.approx(ranking.scores[0].logme)
    with pytest.raises(RunError, match="exists"):
        ranking.write(out)


def test_rank_refuses_a_backbone_of_the_wrong_modality(flowers):
    with pytest.raises(ConfigError, match="minilm is a text backbone"):
        graft.rank(flowers, ["minilm"])


def _measured(per_class: float, knn: float) -> Measurements:
    return Measurements(
        examples=int(per_class * 5),
        classes=5,
        median_per_class=per_class,
        min_per_class=int(per_class),
        knn_accuracy=knn,
        logme=0.0,
        source_entropy=0.5,
        feature_seconds=1.0,
    )


@pytest.mark.parametrize(
    ("per_class", "knn", "expected", "words"),
    [
        (FEW_PER_CLASS - 1, 0.5, "feature-extract", "likely enough"),
        (MANY_PER_CLASS, SEPARATED_KNN, "feature-extract", "already separate"),
        (MANY_PER_CLASS, 0.8, "full", "every layer"),
        (FEW_PER_CLASS, 0.8, "partial", "top of the backbone"),
    ],
)
def test_advisor_rule(per_class, knn, expected, words):
    strategy, reason = decide(_measured(per_class, knn))
    assert strategy == expected
    assert words in reason and f"k-NN accuracy on frozen features {knn:.2f}" in reason


@pytest.mark.parametrize("knn", [0.5, SEPARATED_KNN, 0.99])
def test_few_texts_are_contrastive_whatever_their_knn(knn):
    measured = dataclasses.replace(_measured(8, knn), modality="text")
    strategy, reason = decide(measured)
    assert strategy == "contrastive" and "amazon reviews at 8" in reason
    assert decide(dataclasses.replace(measured, median_per_class=65))[0] != "contrastive"
    assert decide(_measured(8, knn))[0] == "feature-extract"  # images: not contrastive


@pytest.mark.parametrize(
    ("per_class", "knn", "expected"),
    [
        (FEW_PER_CLASS - 1, 0.5, "partial"),
        (MANY_PER_CLASS, SEPARATED_KNN, "partial"),
        (MANY_PER_CLASS, 0.8, "full"),
        (FEW_PER_CLASS, 0.8, "partial"),
    ],
)
def test_advisor_trains_the_backbone_when_adapting(per_class, knn, expected):
    strategy, reason = decide(_measured(per_class, knn), adapting=True)
    assert strategy == expected
    if expected != decide(_measured(per_class, knn))[0]:
        assert "domain adaptation needs features that can move" in reason


def test_strategy_auto_records_its_decision_and_reasons(ten_per_class, tmp_path):
    model = graft.fit(ten_per_class, strategy="auto", epochs=3, progress=False, out=tmp_path / "r")
    advice = model.summary_["advice"]
    assert advice["strategy"] == model.strategy_ == "feature-extract"
    assert model.get_params()["strategy"] == "auto"  # the hyperparameter stays as given
    assert "50 training examples, 5 classes (median 10 per class)" in advice["reason"]
    assert advice["measurements"]["knn_accuracy"] > 0.4
    assert advice["rule"]["few_per_class"] == FEW_PER_CLASS
    saved = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert saved["advice"] == json.loads(json.dumps(advice))
    reloaded = graft.load(tmp_path / "r")
    assert reloaded.strategy_ == "feature-extract"
    assert reloaded.get_params()["strategy"] == "auto"


@pytest.mark.slow
def test_scratch_baseline_writes_the_transfer_gain(ten_per_class, tmp_path):
    model = graft.fit(
        ten_per_class,
        strategy="feature-extract",
        epochs=3,
        baseline="scratch",
        baseline_epochs=1,
        progress=False,
        out=tmp_path / "r",
    )
    transfer = json.loads((tmp_path / "r" / "metrics.json").read_text())["transfer"]
    assert transfer["baseline"] == "scratch:efficientnet_lite0" and transfer["epochs"] == 1
    val = transfer["val"]
    assert val["pretrained"] == pytest.approx(model.metrics_["val"]["accuracy"])
    assert val["gain"] == pytest.approx(val["pretrained"] - val["scratch"])
    assert val["gain"] > 0.2  # ImageNet features against one epoch from random weights
    assert transfer["verdict"] == "positive transfer"
    assert model.summary_["transfer"] == transfer


def test_negative_gain_is_called_negative_transfer():
    pretrained = {"val": {"accuracy": 0.80}, "test": {"accuracy": 0.70}}
    scratch = {"val": {"accuracy": 0.75}, "test": {"accuracy": 0.72}}
    gain = transfer_gain(pretrained, scratch, "accuracy")
    assert gain["val"]["gain"] == pytest.approx(0.05)
    assert gain["test"]["gain"] == pytest.approx(-0.02)
    assert verdict(gain["test"]["gain"]) == "negative transfer"
    assert verdict(0.0) == "positive transfer" and verdict(None) == "undetermined"


def test_scratch_baseline_trains_every_layer_for_the_same_budget():
    params = graft.FitConfig(model="minilm", strategy="lora", lora_rank=4).to_dict()
    control = scratch_params(params, epochs=7)
    assert control["model"] == "scratch:minilm" and control["strategy"] == "full"
    assert control["epochs"] == 7 and control["backbone_lr_mult"] == 1.0
    assert control["baseline"] is None and control["seed"] == params["seed"]
    graft.FitConfig(**control).validate()


def test_a_scratch_backbone_learns_its_batchnorm_statistics(tiny_flowers):
    """A pretrained backbone keeps its BatchNorm statistics; one from random weights has
    none worth keeping, and training with the initial ones does not learn."""
    model = graft.fit(
        tiny_flowers, model="scratch:efficientnet_lite0", strategy="full", epochs=1, progress=False
    )
    fresh = graft.backbones.create_backbone("scratch:efficientnet_lite0")
    trained = dict(model.backbone_.named_buffers())
    moved = [
        name
        for name, value in fresh.named_buffers()
        if name.endswith("running_mean") and not torch.equal(value, trained[name])
    ]
    assert len(moved) > 40
