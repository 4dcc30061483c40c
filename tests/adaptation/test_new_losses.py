"""The adaptation objectives that read the classifier's outputs (CDAN+E, MCC, MDD, self-training,
information maximisation), their common interface and catalogue, each checked against an
independent computation written here with numpy and plain loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graft.adaptation.base import AdaptationLoss
from graft.adaptation.catalogue import OBJECTIVES, create_objective
from graft.adaptation.cdan import (
    ConditionalDomainAdversarialLoss,
    RandomizedMultilinearMap,
    certainty_weights,
    multilinear_map,
)
from graft.adaptation.combined import CombinedObjective
from graft.adaptation.coral import CoralLoss, coral
from graft.adaptation.dann import DomainAdversarialLoss, reversal_coefficient
from graft.adaptation.mcc import (
    MinimumClassConfusionLoss,
    class_confusion,
    minimum_class_confusion,
)
from graft.adaptation.mdd import (
    MarginDisparityDiscrepancy,
    log_one_minus_softmax,
    margin_disparity_discrepancy,
)
from graft.adaptation.objective import AdaptationObjective, DomainBatch, FeatureAlignment
from graft.adaptation.self_training import (
    InformationMaximizationLoss,
    PseudoLabelLoss,
    cluster_pseudo_labels,
    information_maximization_loss,
    select_pseudo_labels,
)
from graft.adaptation.validation import information_maximization
from graft.errors import ConfigError


def _batch(n=6, m=5, d=4, c=3, seed=0, scale=2.0, source=True, **extra) -> DomainBatch:
    g = torch.Generator().manual_seed(seed)
    fields = {
        "target_features": torch.randn(m, d, generator=g).requires_grad_(),
        "target_logits": (scale * torch.randn(m, c, generator=g)).requires_grad_(),
    }
    if source:
        fields["source_features"] = torch.randn(n, d, generator=g).requires_grad_()
        fields["source_logits"] = (scale * torch.randn(n, c, generator=g)).requires_grad_()
        fields["source_labels"] = torch.randint(0, c, (n,), generator=g)
    return DomainBatch(**fields, **extra)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _entropy(p: np.ndarray) -> np.ndarray:
    return np.array([-sum(v * math.log(v) for v in row if v > 0) for row in p])


def _bce_with_logit(logit: float, label: float) -> float:
    probability = 1 / (1 + math.exp(-logit))
    return -(label * math.log(probability) + (1 - label) * math.log(1 - probability))


# The interface ---------------------------------------------------------------------------------


def test_domain_batch_refuses_inconsistent_shapes():
    f, z = torch.randn(4, 3), torch.randn(4, 2)
    with pytest.raises(ValueError, match="rows"):
        DomainBatch(target_features=f, target_logits=torch.randn(5, 2))
    with pytest.raises(ValueError, match="both source_features and source_logits"):
        DomainBatch(target_features=f, target_logits=z, source_features=f)
    with pytest.raises(ValueError, match="3-d but target"):
        DomainBatch(target_features=torch.randn(4, 5), target_logits=z, source_features=f,
                    source_logits=z)  # fmt: skip
    with pytest.raises(ValueError, match="classes"):
        DomainBatch(target_features=f, target_logits=torch.randn(4, 3), source_features=f,
                    source_logits=z)  # fmt: skip
    with pytest.raises(ValueError, match="source_labels"):
        DomainBatch(target_features=f, target_logits=z, source_features=f, source_logits=z,
                    source_labels=torch.zeros(3, dtype=torch.long))  # fmt: skip
    with pytest.raises(ValueError, match="without the features"):
        DomainBatch(target_features=f, target_logits=z, source_labels=torch.zeros(4))
    batch = DomainBatch(target_features=f, target_logits=z)
    assert not batch.has_source and batch.num_classes == 2


def test_progress_is_a_share_of_training():
    objective = MinimumClassConfusionLoss()
    assert objective.progress == 0.0
    objective.progress = 0.25
    assert objective.progress == 0.25
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="progress"):
            objective.progress = bad


def test_feature_alignment_wraps_a_feature_loss_and_passes_progress():
    batch = _batch(n=8, m=7)
    value = FeatureAlignment(CoralLoss())(batch)
    torch.testing.assert_close(value, coral(batch.source_features, batch.target_features))

    dann = DomainAdversarialLoss(feature_dim=4, hidden=8)
    wrapped = FeatureAlignment(dann)
    assert wrapped.name == "dann" and not wrapped.source_free
    assert [id(p) for p in wrapped.parameters()] == [id(p) for p in dann.parameters()]
    wrapped.progress = 0.7
    wrapped(batch)
    assert dann.progress == 0.7
    assert wrapped.domain_accuracy is dann.domain_accuracy is not None
    with pytest.raises(ValueError, match="needs source data"):
        wrapped(_batch(source=False))


# CDAN+E ----------------------------------------------------------------------------------------


def test_multilinear_map_is_the_flattened_outer_product():
    f, g = torch.randn(3, 4), torch.softmax(torch.randn(3, 2), dim=1)
    mapped = multilinear_map(f, g).numpy()
    assert mapped.shape == (3, 8)
    for i in range(3):
        for c in range(2):
            for k in range(4):
                assert mapped[i, c * 4 + k] == pytest.approx(float(g[i, c] * f[i, k]), rel=1e-6)


def test_randomized_multilinear_map_matches_numpy_and_is_fixed_by_its_seed():
    layer = RandomizedMultilinearMap(feature_dim=5, num_classes=3, output_dim=16, seed=3)
    f, g = torch.randn(4, 5), torch.softmax(torch.randn(4, 3), dim=1)
    rf, rg = layer.feature_matrix.numpy(), layer.prediction_matrix.numpy()
    expected = (f.numpy() @ rf) * (g.numpy() @ rg) / math.sqrt(16)
    np.testing.assert_allclose(layer(f, g).numpy(), expected, rtol=1e-5, atol=1e-6)
    again = RandomizedMultilinearMap(feature_dim=5, num_classes=3, output_dim=16, seed=3)
    assert torch.equal(again.feature_matrix, layer.feature_matrix)
    assert set(layer.state_dict()) == {"feature_matrix", "prediction_matrix"}


def test_certainty_weights_are_one_plus_exp_minus_entropy():
    p = torch.softmax(torch.randn(6, 4), dim=1)
    expected = 1 + np.exp(-_entropy(p.numpy().astype(np.float64)))
    np.testing.assert_allclose(certainty_weights(p).numpy(), expected, rtol=1e-5)
    extremes = certainty_weights(torch.tensor([[0.25] * 4, [1.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(extremes, torch.tensor([1.25, 2.0]))


@pytest.mark.parametrize("entropy_conditioning", [True, False])
def test_cdan_loss_matches_an_explicit_computation(entropy_conditioning):
    d, c = 4, 3
    discriminator = nn.Linear(d * c, 1)
    loss = ConditionalDomainAdversarialLoss(
        d, c, entropy_conditioning=entropy_conditioning, discriminator=discriminator
    )
    assert loss.map is None  # 12 <= 4096: the full multilinear map
    batch = _batch(n=6, m=4, d=d, c=c)
    value = loss(batch).item()

    w, b = discriminator.weight.detach().numpy()[0], discriminator.bias.item()
    domains = []
    for features, logits, label in (
        (batch.source_features, batch.source_logits, 1.0),
        (batch.target_features, batch.target_logits, 0.0),
    ):
        f, p = features.detach().numpy(), _softmax(logits.detach().numpy())
        weights = 1 + np.exp(-_entropy(p)) if entropy_conditioning else np.ones(len(f))
        weights = weights / weights.sum()
        total = 0.0
        for i in range(len(f)):
            joint = [p[i, j] * f[i, k] for j in range(c) for k in range(d)]
            total += weights[i] * _bce_with_logit(float(np.dot(w, joint) + b), label)
        domains.append(total)
    assert value == pytest.approx((domains[0] + domains[1]) / 2, rel=1e-5)
    assert 0.0 <= float(loss.domain_accuracy) <= 1.0


def test_cdan_chooses_the_randomized_map_for_wide_features():
    assert ConditionalDomainAdversarialLoss(2048, 2, hidden=8).map is None  # 4096: not over
    wide = ConditionalDomainAdversarialLoss(2049, 2, hidden=8, randomized_dim=32)
    assert isinstance(wide.map, RandomizedMultilinearMap)
    assert wide.discriminator[0].in_features == 32
    forced = ConditionalDomainAdversarialLoss(4, 3, randomized=True, randomized_dim=16, hidden=8)
    value = forced(_batch(d=4, c=3))
    assert value.ndim == 0 and torch.isfinite(value)


def test_cdan_reverses_the_feature_gradient_and_trains_the_discriminator_plainly():
    d, c = 4, 3
    discriminator = nn.Linear(d * c, 1)
    loss = ConditionalDomainAdversarialLoss(d, c, discriminator=discriminator)
    loss.progress = 0.3
    coefficient = reversal_coefficient(0.3)
    batch = _batch(d=d, c=c)
    loss(batch).backward()
    reversed_grads = [batch.source_features.grad, batch.target_features.grad]
    reversed_weight = discriminator.weight.grad.clone()
    assert batch.source_logits.grad is None  # predictions condition, they are not trained

    # The same loss without reversal, written out: the weighted BCE of D on f (x) softmax(g).
    fresh = _batch(d=d, c=c)
    discriminator.zero_grad()
    features = torch.cat([fresh.source_features, fresh.target_features])
    p = torch.softmax(torch.cat([fresh.source_logits, fresh.target_logits]).detach(), dim=1)
    joint = (p[:, :, None] * features[:, None, :]).reshape(len(p), -1)
    labels = torch.tensor([1.0] * 6 + [0.0] * 5)
    w = 1 + torch.exp((p * p.log()).sum(dim=1))
    w = torch.cat([w[:6] / w[:6].sum(), w[6:] / w[6:].sum()]) / 2
    bce = F.binary_cross_entropy_with_logits(discriminator(joint)[:, 0], labels, reduction="none")
    (w * bce).sum().backward()
    torch.testing.assert_close(reversed_grads[0], -coefficient * fresh.source_features.grad)
    torch.testing.assert_close(reversed_grads[1], -coefficient * fresh.target_features.grad)
    torch.testing.assert_close(reversed_weight, discriminator.weight.grad)


# MCC -------------------------------------------------------------------------------------------


def _mcc_reference(logits: np.ndarray, temperature: float) -> tuple[np.ndarray, float]:
    m, c = logits.shape
    p = _softmax(logits / temperature)
    w = 1 + np.exp(-_entropy(p))
    w = m * w / w.sum()
    confusion = np.zeros((c, c))
    for j in range(c):
        for k in range(c):
            confusion[j, k] = sum(w[i] * p[i, j] * p[i, k] for i in range(m))
    normalised = np.zeros((c, c))
    for j in range(c):
        for k in range(c):
            normalised[j, k] = confusion[j, k] / sum(confusion[r, k] for r in range(c))
    off_diagonal = sum(normalised[j, k] for j in range(c) for k in range(c) if j != k)
    return normalised, off_diagonal / c


def test_mcc_confusion_matrix_and_loss_match_loops():
    logits = torch.randn(7, 4, dtype=torch.float64) * 3
    expected_matrix, expected_loss = _mcc_reference(logits.numpy(), 2.5)
    np.testing.assert_allclose(class_confusion(logits, 2.5).numpy(), expected_matrix, rtol=1e-5)
    assert float(minimum_class_confusion(logits, 2.5)) == pytest.approx(expected_loss, rel=1e-5)
    objective = MinimumClassConfusionLoss(temperature=1.0)
    batch = DomainBatch(target_features=torch.randn(7, 2), target_logits=logits)
    assert float(objective(batch)) == pytest.approx(_mcc_reference(logits.numpy(), 1.0)[1], 1e-5)


def test_mcc_is_zero_for_distinct_one_hot_predictions_and_largest_for_identical_ones():
    confident = 100.0 * torch.eye(3)
    assert float(minimum_class_confusion(confident, 1.0)) == pytest.approx(0.0, abs=1e-6)
    same = torch.tensor([[1.0, 0.5, -0.3]]).repeat(5, 1)
    assert float(minimum_class_confusion(same, 2.5)) == pytest.approx(2 / 3, rel=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        MinimumClassConfusionLoss(temperature=0.0)


def test_mcc_trains_the_features_through_the_target_logits_without_source_data():
    head = nn.Linear(4, 3)
    features = torch.randn(8, 4, requires_grad=True)
    objective = MinimumClassConfusionLoss()
    assert objective.source_free
    objective(DomainBatch(target_features=features, target_logits=head(features))).backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


# MDD -------------------------------------------------------------------------------------------


def _mdd_reference(ys, ys_adv, yt, yt_adv, margin) -> float:
    ps, pt = _softmax(ys_adv), _softmax(yt_adv)
    source = [math.log(ps[i, int(np.argmax(ys[i]))]) for i in range(len(ys))]
    target = [math.log(1 - pt[j, int(np.argmax(yt[j]))]) for j in range(len(yt))]
    return margin * sum(source) / len(source) + sum(target) / len(target)


def test_margin_disparity_discrepancy_matches_loops():
    g = torch.Generator().manual_seed(1)
    ys, ys_adv = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    yt, yt_adv = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    for margin in (1.0, 4.0):
        value = float(margin_disparity_discrepancy(ys, ys_adv, yt, yt_adv, margin))
        reference = _mdd_reference(*(t.double().numpy() for t in (ys, ys_adv, yt, yt_adv)), margin)
        assert value == pytest.approx(reference, rel=1e-5)
        assert value <= 0


def test_log_one_minus_softmax_stays_exact_when_a_probability_nears_one():
    logits = torch.tensor([[30.0, 0.0, 0.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    index = torch.tensor([0, 2])
    p = torch.softmax(logits, dim=1)[[0, 1], index]
    expected = torch.tensor([math.log(2 * math.exp(-30)) - math.log1p(2 * math.exp(-30)),
                             math.log1p(-float(p[1]))], dtype=torch.float64)  # fmt: skip
    torch.testing.assert_close(log_one_minus_softmax(logits, index), expected)


def test_mdd_objective_is_minus_the_discrepancy_of_its_adversarial_head():
    head = nn.Linear(4, 3)
    loss = MarginDisparityDiscrepancy(4, 3, margin=4.0, adversarial_head=head)
    batch = _batch(d=4, c=3)
    value = loss(batch)
    with torch.no_grad():
        expected = _mdd_reference(
            batch.source_logits.double().numpy(),
            head(batch.source_features).double().numpy(),
            batch.target_logits.double().numpy(),
            head(batch.target_features).double().numpy(),
            4.0,
        )
    assert value.item() == pytest.approx(-expected, rel=1e-5)
    assert float(loss.discrepancy) == pytest.approx(expected, rel=1e-5)
    assert isinstance(MarginDisparityDiscrepancy(4, 3).adversarial_head, nn.Linear)
    assert isinstance(MarginDisparityDiscrepancy(4, 3, hidden=16).adversarial_head, nn.Sequential)


def test_mdd_reverses_the_feature_gradient_and_trains_the_adversarial_head_plainly():
    head = nn.Linear(4, 3)
    loss = MarginDisparityDiscrepancy(4, 3, adversarial_head=head)
    loss.progress = 0.5
    coefficient = reversal_coefficient(0.5, high=0.1)
    batch = _batch(d=4, c=3)
    loss(batch).backward()
    reversed_grad, reversed_head = batch.target_features.grad, head.weight.grad.clone()
    assert batch.target_logits.grad is None  # the main head gives labels only

    fresh = _batch(d=4, c=3)
    head.zero_grad()
    plain = -margin_disparity_discrepancy(
        fresh.source_logits, head(fresh.source_features),
        fresh.target_logits, head(fresh.target_features), 4.0,
    )  # fmt: skip
    plain.backward()
    torch.testing.assert_close(reversed_grad, -coefficient * fresh.target_features.grad)
    torch.testing.assert_close(reversed_head, head.weight.grad)


# Self-training and information maximisation ----------------------------------------------------


def test_pseudo_labels_pass_the_threshold_and_no_class_takes_more_than_its_share():
    g = torch.Generator().manual_seed(0)
    # 40 rows, the source model favouring class 0: most confident rows are class 0.
    logits = torch.randn(40, 4, generator=g)
    logits[:30, 0] += 6.0
    logits[30:34, 1] += 4.0
    logits[34:36, 2] += 4.0
    probabilities = torch.softmax(logits, dim=1)
    indices, labels = select_pseudo_labels(probabilities, threshold=0.6, per_class="equal")
    confidence, prediction = probabilities.max(dim=1)
    assert torch.equal(indices, indices.sort().values)
    assert (confidence[indices] >= 0.6).all()
    assert torch.equal(labels, prediction[indices])
    counts = np.bincount(labels.numpy(), minlength=4)
    assert counts.max() <= math.ceil(40 / 4) and counts[0] == 10
    # Independent reference: each class's candidates sorted by confidence, the top 10 kept.
    expected = []
    for c in range(4):
        rows = [i for i in range(40) if prediction[i] == c and confidence[i] >= 0.6]
        expected += sorted(rows, key=lambda i: -float(confidence[i]))[:10]
    assert indices.tolist() == sorted(expected)
    assert counts[1] > 0 and counts[2] > 0  # the minority classes keep their confident rows

    uncapped, _ = select_pseudo_labels(probabilities, threshold=0.6, per_class=None)
    assert uncapped.tolist() == [i for i in range(40) if confidence[i] >= 0.6]
    capped, capped_labels = select_pseudo_labels(probabilities, threshold=0.0, per_class=2)
    assert np.bincount(capped_labels.numpy()).max() == 2
    assert len(select_pseudo_labels(probabilities, threshold=1.0)[0]) == 0
    with pytest.raises(ValueError, match="per_class"):
        select_pseudo_labels(probabilities, 0.5, per_class="most")


def _shot_labels_reference(features: np.ndarray, p: np.ndarray, rounds: int) -> np.ndarray:
    """SHOT's ``obtain_label``: weighted centroids, cosine distance, then rounds of hard labels."""
    f = np.hstack([features, np.ones((len(features), 1))])
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    present = [k for k in range(p.shape[1]) if (p.argmax(axis=1) == k).any()]
    affinity = p
    for _ in range(rounds + 1):
        centroids = affinity.T @ f / (1e-8 + affinity.sum(axis=0)[:, None])
        distances = np.array([[1 - f[i] @ centroids[k] / np.linalg.norm(centroids[k])
                               for k in present] for i in range(len(f))])  # fmt: skip
        labels = np.array(present)[distances.argmin(axis=1)]
        affinity = np.eye(p.shape[1])[labels]
    return labels


def test_cluster_pseudo_labels_follow_shots_recipe():
    g = torch.Generator().manual_seed(4)
    centres = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    truth = torch.arange(30) % 3
    features = centres[truth] + 1.5 * torch.randn(30, 3, generator=g)
    logits = features @ torch.eye(3) + 2.0 * torch.randn(30, 3, generator=g)  # noisy predictions
    probabilities = torch.softmax(logits, dim=1)
    found = {}
    for rounds in (0, 1):
        found[rounds] = cluster_pseudo_labels(features, probabilities, rounds=rounds)
        expected = _shot_labels_reference(
            features.double().numpy(), probabilities.double().numpy(), rounds
        )
        assert found[rounds].tolist() == expected.tolist()
    assert not torch.equal(found[0], found[1])  # the hard-label round moves some rows
    accuracy = (found[1] == truth).float().mean()
    assert accuracy > (probabilities.argmax(dim=1) == truth).float().mean() + 0.1


def test_information_maximization_loss_is_minus_the_validation_score():
    logits = torch.randn(9, 4, dtype=torch.float64) * 2
    p = _softmax(logits.numpy())
    expected = _entropy(p).mean() - _entropy(p.mean(axis=0, keepdims=True))[0]
    assert float(information_maximization_loss(logits)) == pytest.approx(expected, rel=1e-5)
    score = information_maximization(torch.softmax(logits, dim=1))
    assert float(information_maximization_loss(logits)) == pytest.approx(-score, rel=1e-5)
    objective = InformationMaximizationLoss()
    assert objective.source_free
    batch = DomainBatch(target_features=torch.randn(9, 2), target_logits=logits)
    assert float(objective(batch)) == pytest.approx(expected, rel=1e-5)


def test_information_maximization_loss_has_finite_gradients_on_saturated_logits():
    logits = torch.tensor([[300.0, -300.0, 0.0], [0.0, 400.0, -400.0]], requires_grad=True)
    information_maximization_loss(logits).backward()
    assert torch.isfinite(logits.grad).all()


def test_pseudo_label_loss_fits_the_selected_rows_only():
    logits = torch.tensor(
        [[5.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 6.0]], requires_grad=True
    )
    loss = PseudoLabelLoss(threshold=0.9, per_class=None)
    value = loss(DomainBatch(target_features=torch.randn(4, 2), target_logits=logits))
    p = _softmax(logits.detach().numpy())
    chosen = [i for i in range(4) if p[i].max() >= 0.9]
    assert chosen == [0, 1, 3]
    expected = sum(-math.log(p[i, int(p[i].argmax())]) for i in chosen) / 4
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert loss.selected_fraction == 0.75
    value.backward()
    assert logits.grad[2].abs().sum() == 0 and logits.grad[0].abs().sum() > 0

    given = torch.tensor([2, -1, 1, -1])  # labels from a pass over the target data
    value = loss(DomainBatch(target_features=torch.randn(4, 2), target_logits=logits,
                             target_pseudo_labels=given))  # fmt: skip
    expected = (-math.log(p[0, 2]) - math.log(p[2, 1])) / 4
    assert value.item() == pytest.approx(expected, rel=1e-5)

    unsure = torch.zeros(4, 3, requires_grad=True)
    empty = loss(DomainBatch(target_features=torch.randn(4, 2), target_logits=unsure))
    assert empty.item() == 0.0 and loss.selected_fraction == 0.0
    empty.backward()
    assert torch.equal(unsure.grad, torch.zeros(4, 3))


# Combination and catalogue ---------------------------------------------------------------------


def test_combined_objective_is_the_weighted_sum_and_passes_progress():
    mcc, im = MinimumClassConfusionLoss(), InformationMaximizationLoss()
    combined = CombinedObjective([(mcc, 2.0), (im, 0.5)])
    assert combined.name == "mcc+im" and combined.source_free
    combined.progress = 0.4
    batch = _batch(source=False)
    value = combined(batch)
    expected = 2.0 * mcc(batch) + 0.5 * im(batch)
    torch.testing.assert_close(value, expected)
    assert mcc.progress == im.progress == 0.4
    assert set(combined.values) == {"mcc", "im"}
    cdan = ConditionalDomainAdversarialLoss(4, 3, hidden=8)
    assert not CombinedObjective([(mcc, 1.0), (cdan, 1.0)]).source_free
    with pytest.raises(ValueError, match="distinct"):
        CombinedObjective([(mcc, 1.0), (MinimumClassConfusionLoss(), 1.0)])


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_every_catalogued_objective_trains_the_features(name):
    objective = create_objective(name, feature_dim=4, num_classes=3)
    assert isinstance(objective, AdaptationObjective) and objective.name == name
    assert objective.source_free == (name in {"mcc", "self-training", "mcc+self-training"})
    objective.progress = 0.5
    head = nn.Linear(4, 3)
    with torch.no_grad():
        head.weight.mul_(10)  # confident enough for some pseudo-labels
    g = torch.Generator().manual_seed(0)
    source = torch.randn(8, 4, generator=g).requires_grad_()
    target = (torch.randn(8, 4, generator=g) + 1).requires_grad_()
    batch = DomainBatch(source_features=source, source_logits=head(source),
                        target_features=target, target_logits=head(target))  # fmt: skip
    value = objective(batch)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(target.grad).all() and target.grad.abs().sum() > 0
    if not objective.source_free:
        assert source.grad.abs().sum() > 0


def test_unknown_objective_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown domain adaptation 'dan'.*mcc"):
        create_objective("dan", 4, 3)
    assert not isinstance(create_objective("coral", 4, 3), AdaptationLoss)
