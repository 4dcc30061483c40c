"""Transferability scores: how well a frozen backbone suits a labelled target task.

Each score looks at what a pre-trained backbone produces for the target task's examples (its
penultimate features, or its source-class probabilities) together with the target labels, and
estimates how well the backbone would transfer, before any training or fine-tuning is run. They
are cheap ways to rank candidate backbones. For every score here, higher is better.

Every function is pure: it takes numpy arrays (torch tensors are converted to numpy), computes in
float64 and returns a Python float. Bad input (no rows, lengths or widths that disagree, fewer
than two classes, values that are not finite) raises :class:`graft.errors.DataError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graft.errors import ConfigError, DataError

# LogME's fixed-point iteration. The paper stops when alpha / beta changes by less than 1e-3
# (relative) or after 11 iterations; we iterate further, to a tighter tolerance, so that the
# returned evidence is the maximum to about six significant digits. Each iteration is only a few
# vector operations over the singular values, so the extra iterations cost next to nothing.
_LOGME_TOL = 1e-7
_LOGME_MAX_ITER = 200
# Guards the fixed-point divisions when a target is orthogonal to, or exactly fitted by, the
# features (the official implementation adds 1e-5 for the same purpose).
_LOGME_EPS = 1e-12
# LEEP's guard against log(0), for an example whose label no source class predicts.
_LEEP_EPS = 1e-12
# Eigenvalues of the feature covariance below this fraction of the largest are treated as zero
# by H-score's pseudo-inverse.
_H_SCORE_RCOND = 1e-10
# Upper bound on the similarity entries (validation rows x training rows) held at once by kNN.
_KNN_MAX_BLOCK = 1 << 22


def _to_numpy(value: Any) -> np.ndarray:
    """A numpy view of an array-like; torch tensors are detached and moved to the CPU first."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _matrix(value: Any, name: str) -> np.ndarray:
    """A finite, non-empty float64 matrix [n, d]."""
    try:
        array = _to_numpy(value).astype(np.float64, copy=False)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must be a numeric array: {error}") from None
    if array.ndim != 2:
        raise DataError(f"{name} must be a 2-d array [rows, columns], got shape {array.shape}")
    if array.shape[0] == 0:
        raise DataError(f"{name} has no rows")
    if array.shape[1] == 0:
        raise DataError(f"{name} has no columns")
    if not np.isfinite(array).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return array


def _labels(value: Any, rows: int, name: str, rows_name: str) -> np.ndarray:
    """A 1-d integer label vector with one entry per row of ``rows_name``."""
    array = _to_numpy(value)
    if array.ndim != 1:
        raise DataError(f"{name} must be a 1-d array of class indices, got shape {array.shape}")
    if array.shape[0] != rows:
        raise DataError(f"{name} has {array.shape[0]} entries but {rows_name} has {rows} rows")
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    elif array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise DataError(f"{name} must hold integer class indices")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise DataError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _class_indices(labels: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The distinct classes present and each row's position among them; at least two classes."""
    classes, index = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        raise DataError(
            f"{name} holds {classes.size} class(es); a transferability score needs at least 2"
        )
    return classes, index.reshape(-1)


def logme(features: Any, labels: Any) -> float:
    """LogME: the maximised log evidence of a Bayesian linear model on the features, per example.

    You, Liu, Wang and Long, "LogME: Practical Assessment of Pre-trained Models for Transfer
    Learning", ICML 2021.

    For each class c with one-hot target y_c (y_c[i] = 1 where labels[i] == c), a Bayesian
    linear regression y = F w + noise with prior w ~ N(0, 1/alpha I) and noise precision beta
    has log evidence

        L(alpha, beta) = n/2 log beta + d/2 log alpha - n/2 log 2pi - beta/2 ||F m - y_c||^2
                         - alpha/2 m^T m - 1/2 log|A|,
        A = alpha I + beta F^T F,  m = beta A^{-1} F^T y_c,

    and LogME = mean over classes c of max_{alpha, beta} L(alpha, beta) / n.

    The maximum is found with the paper's fixed-point iteration (gamma = sum_i beta s_i /
    (alpha + beta s_i), alpha <- gamma / m^T m, beta <- (n - gamma) / ||F m - y||^2, from
    alpha = beta = 1) in the eigenbasis of F^T F, as the official implementation does: an
    eigendecomposition of the d x d matrix F^T F when n > d, a thin SVD of F otherwise. The
    paper stops at a relative change of alpha / beta below 1e-3 or after 11 iterations; here we
    iterate to 1e-7 (at most 200 iterations) so the value is the maximum to high precision.
    log|A| counts all d eigenvalues of A, including the d - rank(F) that equal alpha. Features
    are used as given (no standardisation), as in the paper.

    Args:
        features: [n, d] features of the n target examples.
        labels: [n] integer class labels; every distinct value is one class (at least two).

    Returns:
        The mean maximised evidence per example (a float; higher is better).
    """
    f = _matrix(features, "features")
    n, d = f.shape
    y_index = _class_indices(_labels(labels, n, "labels", "features"), "labels")[1]
    classes = int(y_index.max()) + 1
    one_hot = np.zeros((n, classes))
    one_hot[np.arange(n), y_index] = 1.0
    sigma, proj2, outside = _spectrum(f, one_hot)
    alpha, beta, weight_norm2, residual2 = _maximise_evidence(n, sigma, proj2, outside)
    rank = sigma.shape[0]
    log_det_a = np.log(alpha + beta * sigma).sum(axis=0) + (d - rank) * np.log(alpha)
    evidence = (
        n / 2 * np.log(beta)
        + d / 2 * np.log(alpha)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual2
        - alpha / 2 * weight_norm2
        - log_det_a / 2
    )
    return float(np.mean(evidence / n))


def _spectrum(f: np.ndarray, one_hot: np.ndarray) -> tuple[np.ndarray, ...]:
    """LogME's view of the features: ``sigma`` [k, 1], the nonzero eigenvalues of F^T F
    (squared singular values of F); ``proj2`` [k, C], the squared coordinates of the targets
    along the matching left singular vectors (U^T Y)^2; ``outside`` [C], the part of each
    target outside the span of F, which no weight vector can fit."""
    n, d = f.shape
    if n > d:
        sigma, v = np.linalg.eigh(f.T @ f)
        keep = sigma > sigma.max() * max(n, d) * np.finfo(np.float64).eps
        sigma, v = sigma[keep], v[:, keep]
        proj = (v.T @ (f.T @ one_hot)) / np.sqrt(sigma)[:, None]
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        keep = s > s.max() * max(n, d) * np.finfo(np.float64).eps
        sigma, u = s[keep] ** 2, u[:, keep]
        proj = u.T @ one_hot
    proj2 = proj**2
    outside = np.maximum(one_hot.sum(axis=0) - proj2.sum(axis=0), 0.0)
    return sigma[:, None], proj2, outside


def _maximise_evidence(
    n: int, sigma: np.ndarray, proj2: np.ndarray, outside: np.ndarray
) -> tuple[np.ndarray, ...]:
    """LogME's fixed-point iteration from alpha = beta = 1 (per class): the maximising alpha and
    beta, and the squared weight norm and residual at them."""

    def fit_terms(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, ...]:
        t = alpha / beta
        gamma = (sigma / (sigma + t)).sum(axis=0)
        weight_norm2 = (sigma * proj2 / (sigma + t) ** 2).sum(axis=0)
        residual2 = (proj2 * (t / (sigma + t)) ** 2).sum(axis=0) + outside
        return gamma, weight_norm2, residual2

    alpha = np.ones(proj2.shape[1])
    beta = np.ones(proj2.shape[1])
    for _ in range(_LOGME_MAX_ITER):
        gamma, weight_norm2, residual2 = fit_terms(alpha, beta)
        ratio = alpha / beta
        alpha = gamma / (weight_norm2 + _LOGME_EPS)
        beta = np.maximum(n - gamma, _LOGME_EPS) / (residual2 + _LOGME_EPS)
        if np.all(np.abs(alpha / beta - ratio) <= _LOGME_TOL * ratio):
            break
    _, weight_norm2, residual2 = fit_terms(alpha, beta)
    return alpha, beta, weight_norm2, residual2


def leep(source_probabilities: Any, labels: Any) -> float:
    """LEEP: the log expected empirical prediction of a source classifier on the target labels.

    Nguyen, Hassner, Seeger and Archambeau, "LEEP: A New Measure to Evaluate Transferability of
    Learned Representations", ICML 2020.

    With theta_z(x_i) the source model's probability of source class z for example i, the
    empirical joint P(y, z) = 1/n sum_i theta_z(x_i) [y_i = y] and P(y | z) = P(y, z) / P(z)
    give

        LEEP = 1/n sum_i log sum_z P(y_i | z) theta_z(x_i).

    It is at most 0 (reached when the source classes predict the target labels exactly). A tiny
    epsilon keeps the logarithm finite for an example no source class explains.

    Args:
        source_probabilities: [n, Z] source-class probabilities (softmax outputs; each row sums
            to 1, checked to within 1e-3).
        labels: [n] integer target class labels (at least two classes).

    Returns:
        LEEP (a float <= 0; higher is better).
    """
    theta = _matrix(source_probabilities, "source_probabilities")
    n = theta.shape[0]
    y_index = _class_indices(_labels(labels, n, "labels", "source_probabilities"), "labels")[1]
    if (theta < 0).any():
        raise DataError("source_probabilities has negative entries; pass softmax outputs")
    row_sums = theta.sum(axis=1)
    if not np.allclose(row_sums, 1.0, rtol=0.0, atol=1e-3):
        worst = int(np.argmax(np.abs(row_sums - 1.0)))
        raise DataError(
            f"source_probabilities row {worst} sums to {row_sums[worst]:.6g}, not 1; "
            "pass softmax probabilities, not logits"
        )
    classes = int(y_index.max()) + 1
    joint = np.zeros((classes, theta.shape[1]))
    np.add.at(joint, y_index, theta)
    joint /= n
    marginal = joint.sum(axis=0)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    expected = np.einsum("iz,iz->i", theta, conditional[y_index])
    return float(np.mean(np.log(np.maximum(expected, _LEEP_EPS))))


def h_score(features: Any, labels: Any, shrinkage: str | float | None = "auto") -> float:
    """H-score: how much of the features' variance lies between the classes, whitened.

    Bao, Li, Huang, Zheng, Zhang and Wang, "An Information-Theoretic Approach to Transferability
    in Task Transfer Learning", ICIP 2019:

        H(f) = tr(cov(f)^{-1} cov(E[f | y]))

    where cov(E[f | y]) is the covariance of the features after each row is replaced by the mean
    of its class. Both covariances are population covariances (divided by n).

    With fewer examples than dimensions (the usual case: hundreds of images, 1,280 features)
    the plain estimate saturates at C - 1 for every backbone, since the between-class
    covariance lies in the span of the data. By default the feature covariance is therefore
    shrunk towards a scaled identity with the Ledoit-Wolf coefficient alpha, as in the
    shrinkage-based H-score of Ibrahim, Ponomareva and Mazumder, "Newer is not always better:
    Rethinking transferability metrics, their peculiarities, stability and performance",
    ECML PKDD 2022:

        H_alpha(f) = tr(((1 - alpha) cov(f) + alpha mu I)^{-1} (1 - alpha) cov(E[f | y]))

    with mu = tr(cov(f)) / d. ``shrinkage=None`` gives the original score (the Moore-Penrose
    pseudo-inverse of cov(f), eigenvalues below 1e-10 times the largest treated as zero),
    which is invariant to an invertible linear map of the features; a number in [0, 1] fixes
    alpha.

    Args:
        features: [n, d] features of the n target examples.
        labels: [n] integer class labels (at least two classes).
        shrinkage: ``"auto"`` (Ledoit-Wolf), a fixed alpha in [0, 1], or None (no shrinkage).

    Returns:
        The H-score (a float >= 0, at most the number of classes minus one; higher is better).
    """
    f = _matrix(features, "features")
    n, d = f.shape
    y_index = _class_indices(_labels(labels, n, "labels", "features"), "labels")[1]
    centred = f - f.mean(axis=0)
    classes = int(y_index.max()) + 1
    counts = np.bincount(y_index, minlength=classes).astype(np.float64)
    class_means = np.zeros((classes, d))
    np.add.at(class_means, y_index, centred)
    class_means /= np.maximum(counts, 1.0)[:, None]
    cov_f = centred.T @ centred / n
    cov_g = (class_means * (counts / n)[:, None]).T @ class_means
    if shrinkage is None:
        inverse = np.linalg.pinv(cov_f, rcond=_H_SCORE_RCOND, hermitian=True)
        return float(np.sum(inverse * cov_g))
    alpha = ledoit_wolf_shrinkage(centred) if shrinkage == "auto" else float(shrinkage)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"shrinkage must be 'auto', None or in [0, 1], got {shrinkage!r}")
    mu = np.trace(cov_f) / d
    shrunk = (1.0 - alpha) * cov_f + alpha * mu * np.eye(d)
    inverse = np.linalg.pinv(shrunk, rcond=_H_SCORE_RCOND, hermitian=True)
    return float((1.0 - alpha) * np.sum(inverse * cov_g))


def ledoit_wolf_shrinkage(centred: np.ndarray) -> float:
    """The Ledoit-Wolf coefficient for shrinking the covariance of ``centred`` [n, d] rows
    towards ``mu I`` (Ledoit and Wolf, "A well-conditioned estimator for large-dimensional
    covariance matrices", J. Multivariate Analysis 2004)."""
    n, d = centred.shape
    squared = centred**2
    variances = squared.sum(axis=0) / n
    mu = variances.sum() / d
    delta_ = np.sum((centred.T @ centred) ** 2) / n**2
    beta_ = np.sum(squared.T @ squared)
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * variances.sum() + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def knn_accuracy(
    train_features: Any,
    train_labels: Any,
    val_features: Any,
    val_labels: Any,
    k: int = 5,
    center: bool = True,
) -> float:
    """Accuracy of a k-nearest-neighbour classifier on the features, with cosine similarity.

    A non-parametric probe of feature quality (as used, for example, by Wu, Xiong, Yu and Lin,
    "Unsupervised Feature Learning via Non-Parametric Instance Discrimination", CVPR 2018, and
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021).
    Features are first centred on the training mean (``center``; pooled post-activation
    features are all positive, which crowds every cosine near 1: the "CL2N" of Wang, Chao,
    Weinberger and van der Maaten, "SimpleShot", 2019), rows are L2-normalised, each
    validation row takes the k training rows of highest cosine similarity, and predicts

        y_hat(x) = argmax_c #{j in N_k(x) : y_j = c},

    breaking ties in the count by the larger summed similarity of the tied classes, then by the
    lowest class label. k is clipped to the number of training rows. Similarities are computed
    for blocks of validation rows so that memory stays small for tens of thousands of rows.

    Args:
        train_features: [n_train, d] features of the labelled training examples.
        train_labels: [n_train] integer class labels (at least two classes).
        val_features: [n_val, d] features of the examples to classify.
        val_labels: [n_val] their integer class labels.
        k: number of neighbours (at least 1).
        center: subtract the training features' mean from both sets first.

    Returns:
        The fraction of validation rows classified correctly (a float in [0, 1]).
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    train = _matrix(train_features, "train_features")
    val = _matrix(val_features, "val_features")
    if train.shape[1] != val.shape[1]:
        raise DataError(
            f"train_features has {train.shape[1]} columns but val_features has {val.shape[1]}"
        )
    train_y = _labels(train_labels, train.shape[0], "train_labels", "train_features")
    val_y = _labels(val_labels, val.shape[0], "val_labels", "val_features")
    classes, train_index = _class_indices(train_y, "train_labels")
    # Validation labels as positions among the training classes; -1 for unseen classes.
    position = np.searchsorted(classes, val_y).clip(max=classes.size - 1)
    val_index = np.where(classes[position] == val_y, position, -1)

    def normalise(rows: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.maximum(norms, np.finfo(np.float64).tiny)

    if center:
        mean = train.mean(axis=0)
        train, val = train - mean, val - mean
    train = normalise(train)
    val = normalise(val)
    n_train = train.shape[0]
    k = min(int(k), n_train)
    block = max(1, min(1024, _KNN_MAX_BLOCK // n_train))
    correct = 0
    for start in range(0, val.shape[0], block):
        similarity = val[start : start + block] @ train.T
        rows = np.arange(similarity.shape[0])[:, None]
        if k < n_train:
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        else:
            nearest = np.broadcast_to(np.arange(n_train), similarity.shape)
        votes = np.zeros((similarity.shape[0], classes.size))
        weight = np.zeros_like(votes)
        neighbour_class = train_index[nearest]
        np.add.at(votes, (rows, neighbour_class), 1.0)
        np.add.at(weight, (rows, neighbour_class), similarity[rows, nearest])
        tied = votes == votes.max(axis=1, keepdims=True)
        predicted = np.argmax(np.where(tied, weight, -np.inf), axis=1)
        correct += int(np.sum(predicted == val_index[start : start + block]))
    return correct / val.shape[0]
