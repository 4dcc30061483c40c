"""Transferability scores checked against hand-worked cases and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graft.errors import DataError
from graft.selection.scores import h_score, knn_accuracy, leep, logme


def _evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """LogME's log evidence written out directly: explicit inverse and slogdet, no SVD."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.inv(a) @ f.T @ y
    sign, log_det = np.linalg.slogdet(a)
    assert sign > 0
    return (
        n / 2 * math.log(beta)
        + d / 2 * math.log(alpha)
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * float(np.sum((f @ m - y) ** 2))
        - alpha / 2 * float(m @ m)
        - log_det / 2
    )


def _brute_force_logme(f: np.ndarray, labels: np.ndarray) -> float:
    """Grid search of log alpha, log beta, refined by Nelder-Mead when scipy is present."""
    n = f.shape[0]
    grid = np.linspace(-8.0, 8.0, 65)
    per_class = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)
        values = [
            (_evidence(f, y, math.exp(la), math.exp(lb)), la, lb) for la in grid for lb in grid
        ]
        best, la, lb = max(values)
        try:
            from scipy.optimize import minimize
        except ImportError:
            pass
        else:
            result = minimize(
                lambda p, y=y: -_evidence(f, y, math.exp(p[0]), math.exp(p[1])),
                x0=[la, lb],
                method="Nelder-Mead",
                options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
            )
            best = max(best, -result.fun)
        per_class.append(best / n)
    return float(np.mean(per_class))


@pytest.mark.parametrize(("n", "d"), [(40, 6), (12, 20)], ids=["n>d", "n<d"])
def test_logme_matches_brute_force_maximisation(n, d):
    rng = np.random.default_rng(n * 100 + d)
    labels = rng.integers(0, 3, size=n)
    labels[:3] = [0, 1, 2]
    # Features loosely tied to the labels, so that the evidence has an interior maximum.
    f = rng.normal(size=(n, d)) + 0.8 * np.eye(3, d)[labels]
    expected = _brute_force_logme(f, labels)
    assert logme(f, labels) == pytest.approx(expected, rel=1e-3)


def test_logme_prefers_label_features_to_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=200)
    informative = np.eye(4)[labels] + 0.05 * rng.normal(size=(200, 4))
    noise = rng.normal(size=(200, 4))
    assert logme(informative, labels) > logme(noise, labels)


def test_logme_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    f = rng.normal(size=(30, 5))
    labels = rng.integers(0, 2, size=30)
    as_tensor = logme(torch.tensor(f, dtype=torch.float64), torch.tensor(labels))
    assert isinstance(as_tensor, float)
    assert as_tensor == pytest.approx(logme(f, labels), rel=1e-12)


def test_leep_hand_case():
    theta = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    labels = np.array([0, 0, 1, 1])
    # Joint P(y, z) = 1/4 sum_i theta_z(x_i) [y_i = y]:
    #   P(0, 0) = (0.9 + 0.6) / 4 = 0.375    P(0, 1) = (0.1 + 0.4) / 4 = 0.125
    #   P(1, 0) = (0.2 + 0.3) / 4 = 0.125    P(1, 1) = (0.8 + 0.7) / 4 = 0.375
    # P(z = 0) = P(z = 1) = 0.5, so P(y | z) = 0.75 when y == z and 0.25 otherwise.
    # Expected empirical predictions sum_z P(y_i | z) theta_z(x_i):
    #   x1: 0.75 * 0.9 + 0.25 * 0.1 = 0.70    x2: 0.75 * 0.6 + 0.25 * 0.4 = 0.55
    #   x3: 0.25 * 0.2 + 0.75 * 0.8 = 0.65    x4: 0.25 * 0.3 + 0.75 * 0.7 = 0.60
    expected = (math.log(0.70) + math.log(0.55) + math.log(0.65) + math.log(0.60)) / 4
    assert leep(theta, labels) == pytest.approx(expected, rel=1e-12)


def test_leep_perfect_correspondence_is_zero():
    labels = np.array([0, 1, 2, 1, 0, 2])
    theta = np.eye(3)[labels]
    assert leep(theta, labels) == pytest.approx(0.0, abs=1e-12)


def test_leep_rejects_logits():
    with pytest.raises(DataError, match="softmax"):
        leep(np.array([[2.0, -1.0], [0.5, 0.3]]), np.array([0, 1]))


def test_h_score_hand_case():
    # Population covariances: f = [0, 0, 2, 2] has mean 1 and variance 1; the class means
    # [0, 0, 2, 2] are the same vector, so cov(E[f | y]) = 1 and H = 1 / 1 * 1 = 1.
    plain = {"shrinkage": None}
    assert h_score(np.array([[0.0], [0.0], [2.0], [2.0]]), np.array([0, 0, 1, 1]), **plain) == (
        pytest.approx(1.0, rel=1e-12)
    )
    # Adding within-class spread: f = [0, 1, 2, 3] has variance 1.25, class means [0.5, 0.5,
    # 2.5, 2.5] have variance 1, so H = 1 / 1.25 = 0.8.
    assert h_score(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]), **plain) == (
        pytest.approx(0.8, rel=1e-12)
    )


@pytest.mark.parametrize(("n", "d"), [(60, 5), (10, 16)], ids=["full-rank", "rank-deficient"])
def test_h_score_invariant_to_invertible_linear_map(n, d):
    rng = np.random.default_rng(d)
    labels = rng.integers(0, 3, size=n)
    labels[:3] = [0, 1, 2]
    f = rng.normal(size=(n, d)) + np.eye(3, d)[labels]
    transform = rng.normal(size=(d, d)) + 3 * np.eye(d)
    assert abs(np.linalg.det(transform)) > 1e-3
    plain = h_score(f, labels, shrinkage=None)
    assert h_score(f @ transform, labels, shrinkage=None) == pytest.approx(plain, rel=1e-6)


def test_shrinkage_h_score_matches_sklearn_ledoit_wolf():
    covariance = pytest.importorskip("sklearn.covariance")
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(4), 10)
    f = rng.normal(size=(40, 60)) + 2.0 * np.eye(4, 60)[labels]
    shrunk, alpha = covariance.ledoit_wolf(f)
    centred = f - f.mean(axis=0)
    means = np.stack([centred[labels == c].mean(axis=0) for c in range(4)])[labels]
    between = means.T @ means / len(f)
    expected = np.trace(np.linalg.inv(shrunk) @ ((1 - alpha) * between))
    assert h_score(f, labels) == pytest.approx(expected, rel=1e-6)


def test_shrinkage_h_score_separates_backbones_where_the_plain_one_saturates():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(5), 8)  # 40 examples, 5 classes, 200 dimensions
    signal = rng.normal(size=(40, 200)) + 3.0 * np.eye(5, 200)[labels]
    noise = rng.normal(size=(40, 200))
    assert h_score(signal, labels, shrinkage=None) == pytest.approx(4.0, rel=1e-6)
    assert h_score(noise, labels, shrinkage=None) == pytest.approx(4.0, rel=1e-6)
    assert h_score(signal, labels) > 1.5 * h_score(noise, labels)


def test_knn_hand_case():
    train = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    train_labels = np.array([0, 0, 1, 1])
    # Without centring. Cosine similarities of each validation row with the four training rows:
    #   [1, 0.2]:  0.981 0.989 | 0.196 0.229    (classes 0 0 | 1 1)
    #   [0.2, 1]:  0.196 0.245 | 0.981 0.987
    #   [1, 1.05]: 0.690 0.725 | 0.724 0.747
    # With k = 1 the nearest rows are [2, 0.1] (class 0), [0.1, 3] (1) and [0.1, 3] (1).
    val = np.array([[1.0, 0.2], [0.2, 1.0], [1.0, 1.05]])
    val_labels = np.array([0, 1, 1])
    assert knn_accuracy(train, train_labels, val, val_labels, k=1, center=False) == pytest.approx(
        1.0
    )
    # k = 3 for [1, 1.05] takes [0.1, 3], [2, 0.1] and [0, 1]: two votes for class 1.
    assert knn_accuracy(train, train_labels, val, val_labels, k=3, center=False) == pytest.approx(
        1.0
    )
    # k = 4 (all rows) gives a 2-2 tie everywhere, broken by summed similarity: row 1 sums
    # 0.981 + 0.989 for class 0 against 0.196 + 0.229 for class 1, so class 0; row 3 sums
    # 0.690 + 0.725 = 1.415 for class 0 against 0.724 + 0.747 = 1.471 for class 1, so class 1.
    assert knn_accuracy(train, train_labels, val, val_labels, k=4, center=False) == pytest.approx(
        1.0
    )
    # k larger than the training set is clipped to it.
    assert knn_accuracy(train, train_labels, val, val_labels, k=50, center=False) == pytest.approx(
        1.0
    )
    # A wrong label counts as wrong.
    assert knn_accuracy(
        train, train_labels, val, np.array([0, 0, 1]), k=1, center=False
    ) == pytest.approx(2 / 3)


def test_knn_tie_broken_by_lowest_class_when_similarities_equal():
    train = np.array([[1.0, 0.0], [0.0, 1.0]])
    val = np.array([[1.0, 1.0]])
    assert knn_accuracy(train, np.array([3, 7]), val, np.array([3]), k=2, center=False) == 1.0


@pytest.mark.parametrize(("classes", "k"), [(2, 5), (4, 1), (2, 7)])
def test_knn_matches_sklearn(classes, k):
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(classes * 10 + k)
    centres = rng.normal(size=(classes, 8))
    train_labels = rng.integers(0, classes, size=300)
    val_labels = rng.integers(0, classes, size=2500)
    train = centres[train_labels] + 1.2 * rng.normal(size=(300, 8))
    val = centres[val_labels] + 1.2 * rng.normal(size=(2500, 8))
    model = neighbors.KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    expected = float(np.mean(model.fit(train, train_labels).predict(val) == val_labels))
    assert 0.3 < expected < 1.0
    raw = knn_accuracy(train, train_labels, val, val_labels, k=k, center=False)
    assert raw == pytest.approx(expected)
    # Centring is sklearn's cosine k-NN on features minus the training mean.
    mean = train.mean(axis=0)
    centred = model.fit(train - mean, train_labels).predict(val - mean)
    expected = float(np.mean(centred == val_labels))
    assert knn_accuracy(train, train_labels, val, val_labels, k=k) == pytest.approx(expected)


@pytest.mark.parametrize("score", [logme, h_score])
def test_feature_scores_reject_bad_input(score):
    f = np.ones((4, 3))
    with pytest.raises(DataError, match="entries"):
        score(f, np.array([0, 1, 0]))
    with pytest.raises(DataError, match="at least 2"):
        score(f, np.array([1, 1, 1, 1]))
    with pytest.raises(DataError, match="no rows"):
        score(np.ones((0, 3)), np.array([], dtype=np.int64))


def test_leep_and_knn_reject_bad_input():
    theta = np.full((4, 2), 0.5)
    with pytest.raises(DataError, match="entries"):
        leep(theta, np.array([0, 1]))
    with pytest.raises(DataError, match="at least 2"):
        leep(theta, np.zeros(4, dtype=int))
    f = np.eye(4)
    with pytest.raises(DataError, match="entries"):
        knn_accuracy(f, np.array([0, 1, 0]), f, np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="entries"):
        knn_accuracy(f, np.array([0, 1, 0, 1]), f, np.array([0, 1]))
    with pytest.raises(DataError, match="at least 2"):
        knn_accuracy(f, np.zeros(4, dtype=int), f, np.zeros(4, dtype=int))
    with pytest.raises(DataError, match="columns"):
        knn_accuracy(f, np.array([0, 1, 0, 1]), np.ones((2, 3)), np.array([0, 1]))
