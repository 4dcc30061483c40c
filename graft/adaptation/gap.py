"""The domain gap: how well a linear classifier tells source features from target features.

Ben-David, Blitzer, Crammer and Pereira, "Analysis of Representations for Domain Adaptation",
NIPS 2007, and Ben-David, Blitzer, Crammer, Kulesza, Pereira and Vaughan, "A theory of learning
from different domains", Machine Learning 79, 2010.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from graft.errors import DataError

#: Inverse strength of the L2 penalty, as scikit-learn's ``C``: the fit minimises
#: C * sum_i BCE_i + ||w||^2 / 2 (the intercept is not penalised). 1.0 is its default.
_INVERSE_L2 = 1.0
_LBFGS_MAX_ITER = 500


def _features(value: Any, name: str) -> np.ndarray:
    """A finite float64 matrix [n, d] with at least one column; tensors are copied to the CPU."""
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} features must be a numeric array: {error}") from None
    if array.ndim != 2 or array.shape[1] == 0:
        raise DataError(f"{name} features must be a 2-d array [rows, dim], got {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{name} features contain NaN or infinite values")
    return array


def _fit_logistic(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [d] and intercept of an L2-regularised logistic regression, fitted to convergence
    by full-batch L-BFGS from zero (a strictly convex problem: the result depends only on the
    data)."""
    weight = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros((), dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=_LBFGS_MAX_ITER,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    penalty = 1.0 / (2.0 * _INVERSE_L2 * x.shape[0])

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        loss = loss + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def proxy_a_distance(source: Any, target: Any, seed: int = 0) -> float:
    """The proxy A-distance between two sets of features (Ben-David et al., 2007 and 2010):

        d_A = 2 (1 - 2 eps),

    with eps the test error of a linear classifier trained to tell source rows from target
    rows. 0 means the domains are indistinguishable to it (eps = 1/2), 2 that it separates
    them perfectly; the value is clipped to [0, 2] (a classifier worse than chance counts as
    chance).

    The larger domain is first subsampled to the size k of the smaller, so that chance is 1/2;
    each domain's k rows are split in halves (seeded), and a logistic regression with an L2
    penalty (that of scikit-learn's default, C = 1), on features standardised with the
    training half's mean and standard deviation, is fitted by full-batch L-BFGS in float64 on
    the first halves and scored on the second. The result depends only on the data and
    ``seed``. Computed on the CPU.

    Args:
        source: [n, d] source features (tensor or array), n >= 2.
        target: [m, d] target features, m >= 2.
        seed: seeds the subsample and the split.

    Returns:
        The proxy A-distance (a float in [0, 2]; lower means closer domains).
    """
    s = _features(source, "source")
    t = _features(target, "target")
    if s.shape[1] != t.shape[1]:
        raise DataError(f"source features are {s.shape[1]}-d but target features {t.shape[1]}-d")
    k = min(s.shape[0], t.shape[0])
    if k < 2:
        raise DataError(
            f"the proxy A-distance trains and tests on each domain: it needs at least 2 rows "
            f"of each, got {s.shape[0]} source and {t.shape[0]} target"
        )
    rng = np.random.default_rng(seed)
    s = s[rng.permutation(s.shape[0])[:k]]
    t = t[rng.permutation(t.shape[0])[:k]]
    half = k // 2
    train = np.concatenate([s[:half], t[:half]])
    test = np.concatenate([s[half:], t[half:]])
    train_y = np.repeat([1.0, 0.0], half)
    test_y = np.repeat([1.0, 0.0], k - half)

    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale <= np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
    train = (train - mean) / scale
    test = (test - mean) / scale

    with torch.inference_mode(False), torch.enable_grad():
        weight, bias = _fit_logistic(torch.from_numpy(train), torch.from_numpy(train_y))
        predicted = (torch.from_numpy(test) @ weight + bias > 0).numpy()
    error = float(np.mean(predicted != test_y.astype(bool)))
    return float(np.clip(2.0 * (1.0 - 2.0 * error), 0.0, 2.0))
