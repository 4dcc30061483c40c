"""The cosine pair loss and SupCon against a computation by hand (NumPy, float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graft.fewshot.losses import (
    CosinePairLoss,
    SupConLoss,
    batch_pair_loss,
    cosine_pair_loss,
    supcon_loss,
)


def test_cosine_pair_loss_is_the_mean_squared_error_of_the_cosines():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    target = np.array([1, 0, 1, 0, 0, 1], dtype=np.float64)
    cosines = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    expected = np.mean((cosines - target) ** 2)
    as_torch = [torch.tensor(a, dtype=torch.float32) for a in (u, v, target)]
    assert float(cosine_pair_loss(*as_torch)) == pytest.approx(expected, rel=1e-5)
    assert float(CosinePairLoss()(*as_torch)) == pytest.approx(expected, rel=1e-5)


def test_cosine_pair_loss_by_hand_on_orthogonal_and_parallel_vectors():
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    v = torch.tensor([[0.0, 5.0], [3.0, 0.0], [-1.0, -1.0]])
    # cosines 0, 1, -1 against targets 1, 1, 0: errors 1, 0, 1
    assert float(cosine_pair_loss(u, v, torch.tensor([1.0, 1.0, 0.0]))) == pytest.approx(2 / 3)


def test_batch_pair_loss_weighs_the_positive_and_negative_pairs_of_a_batch_equally():
    rng = np.random.default_rng(1)
    z, labels = rng.normal(size=(7, 5)), np.array([0, 1, 0, 2, 1, 0, 2])
    first, second = np.triu_indices(7, k=1)
    same = labels[first] == labels[second]
    errors = {}
    for kind, mask in (("positive", same), ("negative", ~same)):
        u, v = (torch.tensor(z[index[mask]], dtype=torch.float32) for index in (first, second))
        errors[kind] = float(
            cosine_pair_loss(u, v, torch.full((int(mask.sum()),), float(kind == "positive")))
        )
    expected = (errors["positive"] + errors["negative"]) / 2
    loss = batch_pair_loss(torch.tensor(z, dtype=torch.float32), torch.tensor(labels))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    only_negatives = batch_pair_loss(torch.tensor(z[:2], dtype=torch.float32), torch.tensor([0, 1]))
    assert float(only_negatives) == pytest.approx(errors_of(z[0], z[1], 0.0), rel=1e-5)


def errors_of(u: np.ndarray, v: np.ndarray, target: float) -> float:
    cosine = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    return float((cosine - target) ** 2)


def supcon_by_hand(features: np.ndarray, labels: np.ndarray, t: float) -> float:
    """Khosla et al.'s L_out, one anchor at a time, views flattened example-major."""
    if features.ndim == 2:
        features = features[:, None, :]
    n, views, _ = features.shape
    z = features.reshape(n * views, -1)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    y = np.repeat(labels, views)
    losses = []
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        positives = [p for p in others if y[p] == y[i]]
        if not positives:
            continue
        denominator = sum(math.exp(z[i] @ z[a] / t) for a in others)
        terms = [math.log(math.exp(z[i] @ z[p] / t) / denominator) for p in positives]
        losses.append(-sum(terms) / len(positives))
    return float(np.mean(losses))


@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_supcon_equals_the_sum_over_anchors_and_positives(views, temperature):
    rng = np.random.default_rng(views)
    labels = np.array([0, 1, 0, 2, 1, 0])
    features = rng.normal(size=(6, views, 4)) if views > 1 else rng.normal(size=(6, 4))
    expected = supcon_by_hand(features, labels, temperature)
    z, y = torch.tensor(features, dtype=torch.float32), torch.tensor(labels)
    assert float(supcon_loss(z, y, temperature)) == pytest.approx(expected, rel=1e-4)
    assert float(SupConLoss(temperature)(z, y)) == pytest.approx(expected, rel=1e-4)


def test_supcon_leaves_out_anchors_without_a_positive():
    rng = np.random.default_rng(1)
    features, labels = rng.normal(size=(5, 3)), np.array([0, 0, 1, 1, 2])  # class 2: alone
    expected = supcon_by_hand(features, labels, 0.1)
    assert float(supcon_loss(torch.tensor(features).float(), torch.tensor(labels))) == (
        pytest.approx(expected, rel=1e-4)
    )
    z = torch.randn(3, 4, requires_grad=True)
    nothing = supcon_loss(z, torch.tensor([0, 1, 2]))
    nothing.backward()
    assert float(nothing.detach()) == 0.0 and z.grad is not None


def test_supcon_prefers_embeddings_grouped_by_class():
    grouped = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert supcon_loss(grouped, torch.tensor([0, 0, 1, 1])) < supcon_loss(
        grouped, torch.tensor([0, 1, 0, 1])
    )
