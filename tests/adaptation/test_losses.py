"""Domain-adaptation losses, label-free validation scores and the domain gap, checked against
independent computations (numpy, explicit loops, hand-worked cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graft.adaptation import (
    ADAPTATIONS,
    DEFAULT_MULTIPLIERS,
    AdaptationLoss,
    CoralLoss,
    DomainAdversarialLoss,
    MultipleKernelMMD,
    coral,
    create_adaptation,
    gradient_reversal,
    information_maximization,
    mk_mmd,
    prediction_entropy,
    proxy_a_distance,
    reversal_coefficient,
    soft_neighborhood_density,
)
from graft.adaptation import validation as validation_module
from graft.errors import ConfigError, DataError


def _clouds(n: int, m: int, d: int, shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    source = torch.randn(n, d, generator=generator, dtype=torch.float64)
    target = torch.randn(m, d, generator=generator, dtype=torch.float64) + shift
    return source, target


# Gradient reversal ---------------------------------------------------------------------------


def test_gradient_reversal_is_identity_forward_and_negated_scaled_backward():
    torch.manual_seed(0)
    x = torch.randn(5, 3, requires_grad=True)
    upstream = torch.randn(5, 3)
    y = gradient_reversal(x, 0.7)
    assert torch.equal(y, x)
    (reversed_grad,) = torch.autograd.grad(y, x, upstream)
    (plain_grad,) = torch.autograd.grad(x * 1.0, x, upstream)
    torch.testing.assert_close(reversed_grad, -0.7 * plain_grad)


def test_reversal_coefficient_warms_up_from_zero_to_high():
    assert reversal_coefficient(0.0) == 0.0
    assert reversal_coefficient(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert reversal_coefficient(1.0) == pytest.approx(0.9999092, abs=1e-7)
    values = [reversal_coefficient(p) for p in np.linspace(0, 1, 101)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    assert reversal_coefficient(0.5, alpha=1.0, high=2.0) == pytest.approx(
        2.0 * (2 / (1 + math.exp(-0.5)) - 1)
    )
    with pytest.raises(ValueError, match="progress"):
        reversal_coefficient(1.5)


# DANN ----------------------------------------------------------------------------------------


def _manual_dann_loss(logits: torch.Tensor, n: int) -> float:
    """Balanced binary cross-entropy written out in numpy: source rows 1, target rows 0."""
    z = logits.detach().double().numpy()
    log_sigmoid = -np.logaddexp(0.0, -z)
    log_one_minus = -np.logaddexp(0.0, z)
    return float((-log_sigmoid[:n].mean() - log_one_minus[n:].mean()) / 2)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_dann_loss_is_the_balanced_bce_of_the_discriminator(mode):
    torch.manual_seed(0)
    source, target = torch.randn(6, 4), torch.randn(9, 4) + 1.0
    loss_fn = DomainAdversarialLoss(feature_dim=4, hidden=16)
    loss_fn.train(mode == "train")
    loss_fn.progress = 0.4
    value = loss_fn(source, target)
    # Batch-normalised in training mode, but without dropout: the same batch gives the same logits.
    logits = loss_fn.discriminator(torch.cat([source, target])).squeeze(1)
    assert value.ndim == 0
    assert value.item() == pytest.approx(_manual_dann_loss(logits, 6), rel=1e-5)
    predicted = (logits > 0).numpy()
    expected_accuracy = (predicted[:6].mean() + (~predicted[6:]).mean()) / 2
    assert float(loss_fn.domain_accuracy) == pytest.approx(expected_accuracy)
    assert not loss_fn.domain_accuracy.requires_grad


def test_dann_reverses_the_feature_gradient_and_keeps_the_discriminators():
    torch.manual_seed(1)
    loss_fn = DomainAdversarialLoss(feature_dim=5, hidden=8).eval()
    loss_fn.progress = 0.3
    coefficient = reversal_coefficient(0.3)
    source = torch.randn(4, 5, requires_grad=True)
    target = torch.randn(7, 5, requires_grad=True)
    parameters = list(loss_fn.parameters())

    dann = loss_fn(source, target)
    dann_grads = torch.autograd.grad(dann, [source, target, *parameters])

    logits = loss_fn.discriminator(torch.cat([source, target])).squeeze(1)
    labels = torch.cat([torch.ones(4), torch.zeros(7)])
    losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    plain = (losses[:4].mean() + losses[4:].mean()) / 2
    plain_grads = torch.autograd.grad(plain, [source, target, *parameters])

    torch.testing.assert_close(dann, plain)
    torch.testing.assert_close(dann_grads[0], -coefficient * plain_grads[0])
    torch.testing.assert_close(dann_grads[1], -coefficient * plain_grads[1])
    for ours, theirs in zip(dann_grads[2:], plain_grads[2:], strict=True):
        torch.testing.assert_close(ours, theirs)


def test_dann_discriminator_learns_to_separate_distinct_domains():
    torch.manual_seed(2)
    loss_fn = DomainAdversarialLoss(feature_dim=8, hidden=32)
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=1e-3)
    assert loss_fn.domain_accuracy is None
    for _ in range(300):
        source, target = torch.randn(32, 8), torch.randn(24, 8) + 2.0
        loss = loss_fn(source, target)  # progress 0: nothing flows back into the features
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss_fn.domain_accuracy) > 0.9
    loss_fn.eval()
    with torch.no_grad():
        loss_fn(torch.randn(200, 8), torch.randn(200, 8) + 2.0)
    assert float(loss_fn.domain_accuracy) > 0.9


def test_dann_runs_in_float32_under_mixed_precision():
    torch.manual_seed(3)
    loss_fn = DomainAdversarialLoss(feature_dim=6, hidden=8).eval()
    source, target = torch.randn(5, 6), torch.randn(5, 6)
    expected = loss_fn(source, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss_fn(source.bfloat16(), target.bfloat16())
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=2e-2, atol=1e-3)


def test_dann_rejects_features_of_the_wrong_width():
    with pytest.raises(ValueError, match="6-d"):
        DomainAdversarialLoss(feature_dim=4)(torch.randn(3, 6), torch.randn(3, 6))


def test_progress_must_be_a_share_of_training():
    loss_fn = CoralLoss()
    assert loss_fn.progress == 0.0
    loss_fn.progress = 1
    assert loss_fn.progress == 1.0
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(ValueError, match="progress"):
            loss_fn.progress = bad


# CORAL ---------------------------------------------------------------------------------------


def test_coral_matches_numpy_covariances():
    source, target = _clouds(20, 13, 4, 0.0, seed=4)
    target = target * torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    d = 4
    c_s = np.cov(source.numpy(), rowvar=False)
    c_t = np.cov(target.numpy(), rowvar=False)
    expected = np.sum((c_s - c_t) ** 2) / (4 * d * d)
    value = coral(source, target)
    assert value.dtype == torch.float64
    assert float(value) == pytest.approx(expected, rel=1e-12)
    assert float(CoralLoss()(source.float(), target.float())) == pytest.approx(expected, rel=1e-5)


def test_coral_is_zero_for_identical_batches_and_ignores_a_mean_shift():
    source, target = _clouds(15, 11, 3, 0.0, seed=5)
    assert float(coral(source, source)) == pytest.approx(0.0, abs=1e-15)
    base = float(coral(source, target))
    assert base > 0
    assert float(coral(source, target + 5.0)) == pytest.approx(base, rel=1e-9)


def test_coral_is_differentiable_and_needs_two_rows():
    source = torch.randn(8, 3, requires_grad=True)
    coral(source, torch.randn(6, 3) * 2).backward()
    assert source.grad is not None and torch.isfinite(source.grad).all()
    with pytest.raises(ValueError, match="at least 2"):
        coral(torch.randn(1, 3), torch.randn(5, 3))


# MK-MMD --------------------------------------------------------------------------------------


def _brute_force_mk_mmd(source: np.ndarray, target: np.ndarray, multipliers) -> float:
    """The biased MK-MMD estimate with explicit loops over every pair of rows."""
    pooled = [list(row) for row in source] + [list(row) for row in target]
    total = len(pooled)

    def squared(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))

    sigma2 = sum(squared(a, b) for a in pooled for b in pooled) / total**2

    def kernel(a, b):
        return sum(math.exp(-squared(a, b) / (2 * k * sigma2)) for k in multipliers)

    s, t = pooled[: len(source)], pooled[len(source) :]
    k_ss = sum(kernel(a, b) for a in s for b in s) / len(s) ** 2
    k_tt = sum(kernel(a, b) for a in t for b in t) / len(t) ** 2
    k_st = sum(kernel(a, b) for a in s for b in t) / (len(s) * len(t))
    return k_ss + k_tt - 2 * k_st


def test_mk_mmd_matches_a_brute_force_double_loop_with_unequal_sizes():
    source, target = _clouds(5, 8, 3, 0.7, seed=6)
    source = source + 40.0  # far from the origin: distances must not cancel
    target = target + 40.0
    expected = _brute_force_mk_mmd(source.numpy(), target.numpy(), DEFAULT_MULTIPLIERS)
    assert float(mk_mmd(source, target)) == pytest.approx(expected, rel=1e-9)
    custom = (0.5, 3.0)
    assert float(MultipleKernelMMD(custom)(source, target)) == pytest.approx(
        _brute_force_mk_mmd(source.numpy(), target.numpy(), custom), rel=1e-9
    )


def test_mk_mmd_is_zero_for_identical_sets_and_grows_with_a_shift():
    torch.manual_seed(7)
    x = torch.randn(40, 6)
    assert float(mk_mmd(x, x)) == pytest.approx(0.0, abs=1e-5)
    same = float(mk_mmd(torch.randn(40, 6), torch.randn(30, 6)))
    shifted = float(mk_mmd(torch.randn(40, 6), torch.randn(30, 6) + 1.5))
    assert shifted > 3 * same
    assert same >= 0


def test_mk_mmd_handles_a_batch_of_identical_rows():
    x = torch.ones(4, 3, requires_grad=True)
    value = mk_mmd(x, torch.ones(3, 3))
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    value.backward()
    assert torch.isfinite(x.grad).all()


def test_coral_and_mmd_compute_in_float32_from_half_precision():
    torch.manual_seed(8)
    source, target = torch.randn(10, 4), torch.randn(12, 4) + 0.5
    for loss_fn in (CoralLoss(), MultipleKernelMMD()):
        expected = loss_fn(source.bfloat16().float(), target.bfloat16().float())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = loss_fn(source.bfloat16(), target.bfloat16())
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, expected)


# Label-free validation -----------------------------------------------------------------------


def test_prediction_entropy_hand_cases():
    assert prediction_entropy(torch.full((5, 4), 0.25)) == pytest.approx(math.log(4))
    assert prediction_entropy(torch.eye(3)) == pytest.approx(0.0, abs=1e-15)
    mixed = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert prediction_entropy(mixed) == pytest.approx(math.log(2) / 2)


def test_prediction_entropy_rejects_logits():
    with pytest.raises(DataError, match="softmax"):
        prediction_entropy(torch.tensor([[2.0, -1.0], [0.3, 0.1]]))


def test_information_maximization_hand_cases():
    # one-hot predictions spread evenly over 3 classes: log 3 - 0
    assert information_maximization(torch.eye(3)) == pytest.approx(math.log(3))
    # collapse, confident or not, scores 0: every prediction the same class, or uniform
    assert information_maximization(np.tile([1.0, 0.0, 0.0], (4, 1))) == pytest.approx(0.0)
    assert information_maximization(torch.full((6, 3), 1 / 3)) == pytest.approx(0.0, abs=1e-12)


def test_information_maximization_matches_its_formula():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.full(4, 0.3), size=11)

    def entropy(q):
        return -sum(v * math.log(v) for v in q if v > 0)

    marginal = [sum(row[c] for row in p) / len(p) for c in range(4)]
    expected = entropy(marginal) - sum(entropy(row) for row in p) / len(p)
    assert information_maximization(p) == pytest.approx(expected, rel=1e-10)


def test_collapsed_predictions_win_snd_but_not_information_maximization():
    collapsed = torch.full((20, 4), 0.25)
    rng = np.random.default_rng(0)
    clustered = torch.tensor(np.eye(4)[rng.integers(0, 4, 20)] * 0.9 + 0.025)
    assert soft_neighborhood_density(collapsed) > soft_neighborhood_density(clustered)
    assert information_maximization(collapsed) < information_maximization(clustered)


def _brute_force_snd(p: np.ndarray, temperature: float) -> float:
    """Soft neighbourhood density with explicit loops: each row's softmax over the others."""
    n = len(p)
    unit = [row / math.sqrt(sum(v * v for v in row)) for row in p]
    entropies = []
    for i in range(n):
        logits = {j: float(unit[i] @ unit[j]) / temperature for j in range(n) if j != i}
        top = max(logits.values())
        weights = {j: math.exp(v - top) for j, v in logits.items()}
        norm = sum(weights.values())
        entropies.append(-sum(w / norm * math.log(w / norm) for w in weights.values() if w > 0))
    return sum(entropies) / n


def test_soft_neighborhood_density_matches_brute_force():
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.full(5, 0.4), size=17)
    for temperature in (0.05, 0.5):
        assert soft_neighborhood_density(p, temperature) == pytest.approx(
            _brute_force_snd(p, temperature), rel=1e-10
        )


def test_soft_neighborhood_density_of_three_points_by_hand():
    # Rows 0 and 1 agree (cosine 1), row 2 is orthogonal to both (cosine 0).
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])

    def binary_entropy(q: float) -> float:
        return -q * math.log(q) - (1 - q) * math.log(1 - q)

    # T = 1: rows 0 and 1 weigh their neighbours e^1 : e^0; row 2 weighs both e^0, a coin.
    expected = (2 * binary_entropy(1 / (1 + math.exp(-1))) + math.log(2)) / 3
    assert soft_neighborhood_density(p, temperature=1.0) == pytest.approx(expected, rel=1e-12)
    expected = (2 * binary_entropy(1 / (1 + math.exp(20))) + math.log(2)) / 3
    assert soft_neighborhood_density(p) == pytest.approx(expected, rel=1e-9)


def test_soft_neighborhood_density_prefers_clustered_predictions():
    # The same predicted classes, once as tight clusters, once blurred towards other classes.
    rng = np.random.default_rng(10)
    one_hot = np.eye(10)[rng.integers(0, 10, size=200)]
    clustered = 0.95 * one_hot + 0.05 * rng.dirichlet(np.full(10, 50.0), size=200)
    blurred = 0.6 * one_hot + 0.4 * rng.dirichlet(np.full(10, 0.3), size=200)
    assert soft_neighborhood_density(clustered) > soft_neighborhood_density(blurred) + 0.1


def test_soft_neighborhood_density_is_the_same_in_blocks(monkeypatch):
    rng = np.random.default_rng(11)
    p = torch.from_numpy(rng.dirichlet(np.ones(4), size=23))
    whole = soft_neighborhood_density(p)
    monkeypatch.setattr(validation_module, "_SND_MAX_BLOCK", 23 * 5)
    assert soft_neighborhood_density(p) == pytest.approx(whole, rel=1e-12)


def test_soft_neighborhood_density_needs_two_rows_and_a_positive_temperature():
    with pytest.raises(ValueError, match="at least 2 rows"):
        soft_neighborhood_density(torch.tensor([[0.3, 0.7]]))
    with pytest.raises(ConfigError, match="temperature"):
        soft_neighborhood_density(torch.full((3, 2), 0.5), temperature=0.0)


# Proxy A-distance ----------------------------------------------------------------------------


def test_proxy_a_distance_is_near_two_for_separated_domains():
    source, target = _clouds(400, 300, 5, 4.0, seed=12)
    assert proxy_a_distance(source, target) > 1.9


def test_proxy_a_distance_is_near_zero_for_one_distribution():
    source, target = _clouds(500, 600, 5, 0.0, seed=13)
    with torch.inference_mode():  # as the pretrained backbone's features arrive
        value = proxy_a_distance(source.float(), target.float())
    assert 0.0 <= value < 0.3


def test_proxy_a_distance_is_deterministic_under_the_seed():
    source, target = _clouds(120, 90, 16, 0.3, seed=14)
    first = proxy_a_distance(source, target, seed=3)
    assert proxy_a_distance(source.numpy(), target.numpy(), seed=3) == first
    assert proxy_a_distance(source, target, seed=3) == first
    assert 0.0 <= first <= 2.0


def test_proxy_a_distance_rejects_unusable_input():
    with pytest.raises(DataError, match="at least 2"):
        proxy_a_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(DataError, match="3-d"):
        proxy_a_distance(np.zeros((4, 3)), np.zeros((5, 2)))


# Registry ------------------------------------------------------------------------------------


def test_create_adaptation_builds_every_registered_method():
    assert list(ADAPTATIONS) == ["dann", "coral", "mmd"]
    for name in ADAPTATIONS:
        loss_fn = create_adaptation(name, feature_dim=7)
        assert isinstance(loss_fn, AdaptationLoss)
        assert loss_fn.name == name
        value = loss_fn.eval()(torch.randn(6, 7), torch.randn(5, 7))
        assert value.ndim == 0 and torch.isfinite(value)


def test_create_adaptation_names_the_choices_for_an_unknown_method():
    with pytest.raises(ConfigError, match="dann, coral, mmd") as raised:
        create_adaptation("cdan", feature_dim=7)
    assert "'cdan'" in str(raised.value)
