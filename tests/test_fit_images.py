"""Both strategies on real photos with the real EfficientNet-Lite0: accuracy, save/load, runs."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import graft
from graft.errors import ConfigError, DataError, RunError


@pytest.fixture(scope="module")
def feature_model(flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "feature-extract"
    return graft.fit(flowers, strategy="feature-extract", out=out, progress=False), out


@pytest.fixture(scope="module")
def finetuned_model(flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fine-tune"
    model = graft.fit(flowers, strategy="fine-tune", epochs=1, out=out, progress=False)
    return model, out


def test_feature_extract_accuracy_floor(feature_model):
    model, _ = feature_model
    assert model.metrics_["val"]["accuracy"] >= 0.62  # a logistic regression gets 0.70-0.73
    assert model.summary_["examples"] == {"train": 250, "val": 100}


@pytest.mark.slow
def test_fine_tune_accuracy_floor_and_phases(finetuned_model):
    model, _ = finetuned_model
    assert model.metrics_["val"]["accuracy"] >= 0.62
    phases = {row["phase"] for row in model.history_}
    assert phases == {"head", "finetune"}


def test_run_directory_holds_everything_to_reproduce(feature_model):
    model, out = feature_model
    for name in (
        "config.json",
        "labels.json",
        "preprocessing.json",
        "model.safetensors",
        "metrics.json",
        "history.json",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == "efficientnet_lite0"
    assert config["config"]["strategy"] == "feature-extract" and config["config"]["seed"] == 0
    assert set(config["versions"]) >= {"graft", "torch", "timm", "transformers"}
    metrics = json.loads((out / "metrics.json").read_text())["val"]
    assert set(metrics) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix"}
    assert np.asarray(metrics["confusion_matrix"]).sum() == 100
    assert set(metrics["per_class"]["roses"]) >= {"precision", "recall", "f1"}


@pytest.mark.slow
@pytest.mark.parametrize("which", ["feature_model", "finetuned_model"])
def test_save_and_load_give_identical_predictions(which, request, flowers):
    model, out = request.getfixturevalue(which)
    restored = graft.load(out)
    inputs = [str(flowers / "val")]
    assert np.array_equal(model.predict_proba(inputs), restored.predict_proba(inputs))
    assert restored.classes_ == model.classes_
    assert restored.evaluate(flowers / "val")["accuracy"] == pytest.approx(
        model.metrics_["val"]["accuracy"]
    )


def test_refuses_a_non_empty_run_directory_without_overwrite(feature_model, flowers):
    _, out = feature_model
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(RunError, match="not empty.*--overwrite"):
        graft.fit(flowers, strategy="feature-extract", out=out, progress=False)
    assert (out / "model.safetensors").read_bytes() == before


def test_evaluation_refuses_labels_the_model_never_saw(feature_model, tmp_path):
    model, _ = feature_model
    from tests.data.test_sources import make_images

    make_images(tmp_path / "orchid", 2)
    make_images(tmp_path / "roses", 2)
    with pytest.raises(DataError, match="'orchid' were never seen"):
        model.evaluate(tmp_path)


def test_text_backbone_on_image_data_is_refused(tiny_flowers):
    with pytest.raises(ConfigError, match="minilm is a text backbone"):
        graft.fit(tiny_flowers, model="minilm", progress=False)


@pytest.mark.parametrize("option", [{"lr": -1.0}, {"epochs": 0}, {"strategy": "magic"}])
def test_bad_options_are_refused_before_any_work(option):
    with pytest.raises(ConfigError):
        graft.GraftClassifier(**option)


def test_python_save_of_a_model_fitted_without_a_run_directory(tiny_flowers, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="graft"):  # 40 examples, batches of 64
        model = graft.GraftClassifier(strategy="feature-extract", epochs=3, batch_size=64)
        model.fit(tiny_flowers)
    assert "--batch-size 64 is larger than the 40 training examples" in caplog.text
    assert model.score(tiny_flowers / "val") == pytest.approx(model.metrics_["val"]["accuracy"])
    model.save(tmp_path / "saved")
    restored = graft.load(tmp_path / "saved")
    photos = sorted(str(p) for p in (tiny_flowers / "val" / "daisy").iterdir())
    assert restored.predict(photos) == model.predict(photos)
    with pytest.raises(RunError, match="not empty"):
        model.save(tmp_path / "saved")


def test_an_unfitted_model_says_so():
    with pytest.raises(graft.GraftError, match="not fitted"):
        graft.GraftClassifier().predict(["a.jpg"])
