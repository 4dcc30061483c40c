"""The adaptation objectives inside a fit: every method of the catalogue trains through
``graft.fit``, the feature-only ones as before, ``--adapt auto`` chooses from label-free
measurements, and the training module hands each objective what it needs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import graft
from graft.adaptation.auto import AutoMeasurements, choose_method, linear_probe, measure
from graft.adaptation.catalogue import FEATURE_ONLY, OBJECTIVES, create_objective
from graft.adaptation.component import check_method
from graft.adaptation.module import AdaptationModule
from graft.config import FitConfig
from graft.errors import ConfigError
from graft.heads import ClassificationHead
from graft.tasks.classification.multiclass import MulticlassTask
from graft.training.phase import Phase
from tests.adaptation.test_fit_adapted import FAST, _domain, _per_class


@pytest.fixture(scope="module")
def digits():
    mnist, usps = _domain("mnist"), _domain("usps")
    return _per_class(mnist, 0, 10), _per_class(mnist, 10, 5), _per_class(usps, 0, 10)


class _Backbone(torch.nn.Module):
    """The least of graft's Backbone protocol that the training module needs."""

    feature_dim = 6

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, self.feature_dim)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layer(inputs)

    def parameter_groups(self) -> list[list[torch.nn.Parameter]]:
        return [list(self.layer.parameters())]


def _module(name: str, source_free: bool = False) -> AdaptationModule:
    phase = Phase(name="full", epochs=1, backbone_groups=None, head_lr=1e-3, backbone_lr=1e-4)
    head = ClassificationHead(_Backbone.feature_dim, 3)
    return AdaptationModule(
        head,
        phase,
        _Backbone(),
        objective=create_objective(name, _Backbone.feature_dim, 3),
        adapt_weight=1.0,
        source_free=source_free,
        task=MulticlassTask(list("abc")),
    )


def test_a_feature_only_method_reads_target_outputs_without_drawing_random_numbers():
    """DANN, CORAL and MK-MMD get the head's target outputs without dropout: the training
    randomness, and so an old fit's metrics, stay exactly as they were."""
    module = _module("coral").train()
    features = torch.randn(5, _Backbone.feature_dim)
    state = torch.get_rng_state()
    logits = module._target_logits(features)
    assert torch.equal(state, torch.get_rng_state()) and module.head.training
    torch.testing.assert_close(logits, module.head.linear(features))
    assert not logits.requires_grad
    mcc = _module("mcc").train()
    assert mcc._target_logits(features).requires_grad  # MCC trains through the head's outputs


def test_source_free_module_freezes_the_head_and_refuses_source_methods():
    module = _module("self-training", source_free=True).train()
    assert not module.head.training
    head = {id(p) for p in module.head.parameters()}
    trained = {id(p) for group in module.optimizer_groups() for p in group["params"]}
    assert trained and not trained & head
    assert module.validation_roles == ("target", "target_test")
    with pytest.raises(ValueError, match="needs source data"):
        _module("cdan", source_free=True)


def test_adversarial_objectives_train_their_networks_at_the_head_rate():
    module = _module("mdd")
    groups = module.optimizer_groups()
    own = {id(p) for p in module.objective.parameters()}
    (group,) = [g for g in groups if {id(p) for p in g["params"]} == own]
    assert group["lr"] == module.phase.head_lr


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in OBJECTIVES if m not in FEATURE_ONLY])
def test_every_new_method_trains_through_fit(digits, method):
    train, val, target = digits
    fitted = graft.fit(train, val, epochs=1, target=target, adapt=method, adapt_guard=False, **FAST)
    (row,) = fitted.history_
    assert row["phase"] == "full" and math.isfinite(row["train_transfer_loss"])
    assert fitted.metrics_["adaptation"]["method"] == method
    objective = create_objective(method, 8, 3)
    reported = {"train_domain_acc", "train_discrepancy", "train_selected_fraction"} & set(row)
    if "cdan" in method:
        assert 0 <= row["train_domain_acc"] <= 1
    if method == "mdd":
        assert row["train_discrepancy"] <= 0
    if "self-training" in method:
        assert 0 <= row["train_selected_fraction"] <= 1
    assert reported or objective.name == "mcc"


@pytest.mark.slow
def test_auto_trains_exactly_the_method_it_chose(digits):
    """``--adapt auto`` measures, records its choice and reason, and trains that method as
    ``--adapt METHOD`` would (so the benchmark can replay it)."""
    train, val, target = digits
    auto = graft.fit(train, val, epochs=1, target=target, adapt="auto", adapt_guard=False, **FAST)
    record = auto.metrics_["adaptation"]
    chosen = record["auto"]["chosen"]
    assert record["method"] == chosen and record["auto"]["gap"] == record["domain_gap"]["before"]
    assert 0 <= record["auto"]["probe_confidence"] <= 1 and chosen in record["auto"]["reason"]
    same = graft.fit(train, val, epochs=1, target=target, adapt=chosen, adapt_guard=False, **FAST)
    np.testing.assert_allclose(
        auto.predict_proba(target.items[:30]), same.predict_proba(target.items[:30]), atol=1e-6
    )


def _measured(**changes) -> AutoMeasurements:
    base = dict(
        modality="image",
        task="multiclass",
        classes=7,
        gap=1.9,
        probe_confidence=0.7,
        probe_balance=0.9,
        probe_im=0.6,
    )
    return AutoMeasurements(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "method"),
    [
        ({}, "mcc"),
        ({"probe_confidence": 0.3}, "mcc"),
        ({"modality": "text"}, "mcc"),
        ({"gap": 0.5}, "none"),
        ({"task": "multilabel"}, "coral"),
    ],
)
def test_auto_rule(changes, method):
    chosen, reason = choose_method(_measured(**changes))
    assert chosen == method and chosen in reason
    assert chosen in (*OBJECTIVES, "none")


def test_linear_probe_is_sure_where_the_classes_separate_and_unsure_where_they_mix():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    centres = 6 * torch.eye(3, 5)
    source = centres[labels] + torch.randn(300, 5, generator=g)
    near = centres[labels] + torch.randn(300, 5, generator=g)
    probabilities = linear_probe(source, labels, near, 3)
    assert probabilities.shape == (300, 3)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(300, dtype=torch.float64))
    assert (probabilities.argmax(dim=1) == labels).float().mean() > 0.95
    sure = measure(source, labels.numpy(), near, 1.5, "image", "multiclass", 3)
    far = measure(
        source, labels.numpy(), torch.randn(300, 5, generator=g), 1.5, "image", "multiclass", 3
    )
    assert sure.probe_confidence > 0.8 > far.probe_confidence
    assert sure.probe_balance > 0.99  # every class predicted equally often


def test_methods_that_read_probabilities_need_single_label_classification():
    for method in FEATURE_ONLY + ("none", "auto"):
        check_method(method, "regression")
    with pytest.raises(ConfigError, match="--adapt mcc reads the class probabilities.*multilabel"):
        check_method("mcc", "multilabel")
    check_method("mcc+cdan", "multiclass")
    with pytest.raises(ConfigError, match="--adapt must be one of .*mcc\\+self-training, auto"):
        FitConfig(adapt="shot").validate()
    assert FitConfig(adapt="auto").validate().adapt == "auto"
