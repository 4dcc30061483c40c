"""The estimator's conventions (scikit-learn's): hyperparameters as given, fitted choices in
attributes ending in ``_``, ``get_params``/``set_params``."""

from __future__ import annotations

import pytest

import graft
from graft.errors import ConfigError, NotFittedError


def test_get_and_set_params_read_and_change_the_hyperparameters():
    model = graft.GraftClassifier(strategy="auto", lr="auto", epochs=3)
    params = model.get_params()
    assert params["strategy"] == "auto" and params["lr"] == "auto" and params["model"] is None
    assert model.set_params(epochs=5, seed=3) is model
    assert model.get_params()["epochs"] == 5 and model.get_params()["seed"] == 3
    clone = graft.GraftClassifier(**model.get_params())
    assert clone.get_params() == model.get_params()
    with pytest.raises(ConfigError, match="--epochs must be a positive integer"):
        model.set_params(epochs=0)
    with pytest.raises(ConfigError, match="unknown option"):
        model.set_params(epoch=3)


def test_an_unfitted_model_says_so():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        graft.GraftClassifier().predict(["a text"])


def test_fit_keeps_the_hyperparameters_and_records_its_choices(tiny_flowers):
    model = graft.GraftClassifier(strategy="auto", lr="auto", epochs=3, progress=False)
    before = model.get_params()
    model.fit(tiny_flowers)
    assert model.get_params() == before
    assert model.model_ == "efficientnet_lite0" and model.strategy_ == "feature-extract"
    assert isinstance(model.lr_, float) and model.lr_ == model.summary_["lr_finder"]["suggestion"]
    assert model.config_.strategy == model.strategy_ and model.config_.lr == model.lr_
    again = model.fit(tiny_flowers)  # refitting chooses again, from the same hyperparameters
    assert again.get_params() == before and again.strategy_ == "feature-extract"
