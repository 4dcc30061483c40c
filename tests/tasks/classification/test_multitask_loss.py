"""The multi-task loss on small tensors, against a computation by hand: masked rows, fixed
weights, uncertainty weights (Kendall et al. 2018) and their gradients."""

from __future__ import annotations

import math

import pytest
import torch

from graft.tasks.classification.multiclass import MulticlassTask
from graft.tasks.classification.multilabel import MultilabelTask
from graft.tasks.classification.multitask_loss import (
    TaskWeighting,
    labelled_rows,
    masked_task_losses,
)
from graft.tasks.classification.regression import RegressionTask

NAN = float("nan")
KINDS = {
    "topic": MulticlassTask(["a", "b", "c"]),
    "score": RegressionTask(["score"]),
    "tags": MultilabelTask(["x", "y"]),
}


def batch() -> tuple[dict, dict]:
    """Three rows: row 1 has no topic and no tags, row 2 no score."""
    outputs = {
        "topic": torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0]]),
        "score": torch.tensor([[0.5], [-1.0], [2.0]]),
        "tags": torch.tensor([[1.0, -1.0], [0.0, 2.0], [0.5, 0.5]]),
    }
    targets = {
        "topic": torch.tensor([[0.0], [NAN], [1.0]]),
        "score": torch.tensor([[1.0], [0.0], [NAN]]),
        "tags": torch.tensor([[1.0, 0.0], [NAN, NAN], [0.0, 1.0]]),
    }
    return outputs, targets


def cross_entropy(logits: list[float], label: int) -> float:
    return -(logits[label] - math.log(sum(math.exp(v) for v in logits)))


def binary_cross_entropy(logit: float, label: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


#: The losses by hand, over the labelled rows only.
TOPIC = (cross_entropy([2.0, 0.5, -1.0], 0) + cross_entropy([-0.5, 1.5, 0.0], 1)) / 2
SCORE = ((0.5 - 1.0) ** 2 + (-1.0 - 0.0) ** 2) / 2
TAGS = (
    binary_cross_entropy(1.0, 1)
    + binary_cross_entropy(-1.0, 0)
    + binary_cross_entropy(0.5, 0)
    + binary_cross_entropy(0.5, 1)
) / 4


def test_labelled_rows_marks_nan_as_missing():
    _, targets = batch()
    assert labelled_rows(targets["topic"]).tolist() == [True, False, True]
    assert labelled_rows(targets["tags"]).tolist() == [True, False, True]


def test_masked_losses_equal_the_hand_computation():
    outputs, targets = batch()
    losses, counts = masked_task_losses(outputs, targets, KINDS)
    assert counts == {"topic": 2, "score": 2, "tags": 2}
    assert losses["topic"].item() == pytest.approx(TOPIC, rel=1e-6)
    assert losses["score"].item() == pytest.approx(SCORE, rel=1e-6)
    assert losses["tags"].item() == pytest.approx(TAGS, rel=1e-6)


def test_a_masked_row_does_not_move_its_task_loss():
    outputs, targets = batch()
    before, _ = masked_task_losses(outputs, targets, KINDS)
    outputs["topic"][1] = torch.tensor([50.0, -50.0, 9.0])  # row 1 has no topic label
    outputs["score"][2] = torch.tensor([1e3])  # row 2 has no score
    after, _ = masked_task_losses(outputs, targets, KINDS)
    assert after["topic"].item() == before["topic"].item()
    assert after["score"].item() == before["score"].item()


def test_label_smoothing_applies_to_multiclass_only():
    outputs, targets = batch()
    eps = 0.1
    losses, _ = masked_task_losses(outputs, targets, KINDS, label_smoothing=eps)

    def smoothed(logits, label):  # (1 - eps) CE + eps * mean over classes of -log p_k
        uniform = sum(cross_entropy(logits, k) for k in range(3)) / 3
        return (1 - eps) * cross_entropy(logits, label) + eps * uniform

    expected = (smoothed([2.0, 0.5, -1.0], 0) + smoothed([-0.5, 1.5, 0.0], 1)) / 2
    assert losses["topic"].item() == pytest.approx(expected, rel=1e-6)
    assert losses["score"].item() == pytest.approx(SCORE, rel=1e-6)


def test_fixed_weights_sum():
    outputs, targets = batch()
    losses, counts = masked_task_losses(outputs, targets, KINDS)
    weighting = TaskWeighting(list(KINDS), {"topic": 1.0, "score": 0.5, "tags": 2.0})
    assert weighting(losses, counts).item() == pytest.approx(
        TOPIC + 0.5 * SCORE + 2.0 * TAGS, rel=1e-6
    )
    assert list(weighting.parameters()) == []  # nothing learned
    assert weighting.weights() == {"topic": 1.0, "score": 0.5, "tags": 2.0}


def test_uncertainty_weighting_is_kendalls_objective_and_trains_its_log_variances():
    outputs, targets = batch()
    losses, counts = masked_task_losses(outputs, targets, KINDS)
    weighting = TaskWeighting(list(KINDS), uncertainty=True)
    assert weighting.log_variances.tolist() == [0.0, 0.0, 0.0]  # every weight starts at 1
    with torch.no_grad():
        weighting.log_variances.copy_(torch.tensor([0.3, -0.2, 0.0]))
    total = weighting(losses, counts)
    s = {"topic": 0.3, "score": -0.2, "tags": 0.0}
    by_hand = {"topic": TOPIC, "score": SCORE, "tags": TAGS}
    expected = sum(math.exp(-s[t]) * by_hand[t] + s[t] for t in KINDS)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    total.backward()
    # d/ds_i [exp(-s_i) L_i + s_i] = 1 - exp(-s_i) L_i
    gradient = [1 - math.exp(-s[t]) * by_hand[t] for t in KINDS]
    assert weighting.log_variances.grad.tolist() == pytest.approx(gradient, rel=1e-5)
    assert weighting.weights()["topic"] == pytest.approx(math.exp(-0.3), rel=1e-6)


def test_a_task_without_labels_in_the_batch_adds_nothing():
    outputs, targets = batch()
    targets["score"] = torch.full((3, 1), NAN)
    outputs = {k: v.clone().requires_grad_(True) for k, v in outputs.items()}
    losses, counts = masked_task_losses(outputs, targets, KINDS)
    assert counts["score"] == 0 and losses["score"].item() == 0.0
    weighting = TaskWeighting(list(KINDS), uncertainty=True)
    with torch.no_grad():
        weighting.log_variances.fill_(0.5)
    total = weighting(losses, counts)
    assert total.item() == pytest.approx(
        math.exp(-0.5) * (TOPIC + TAGS) + 2 * 0.5, rel=1e-6
    )  # no exp(-s) * 0 + s term for the unlabelled task
    total.backward()
    assert weighting.log_variances.grad[1].item() == 0.0  # its s_i does not drift
    assert outputs["score"].grad is not None and not outputs["score"].grad.any()
