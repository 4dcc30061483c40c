"""``--adapt auto``: choose the adaptation method from what graft can measure without target
labels, before training.

On a seeded sample of each domain's features from the pretrained backbone (the ones the domain
gap is measured on), graft measures:

- the domain gap, the proxy A-distance (:mod:`graft.adaptation.gap`; 0 to 2);
- a *linear probe*: a multinomial logistic regression fitted to the source sample's labels,
  applied to the target sample. Its predictions there say how well the source classes already
  carve the target: their confidence (1 - mean entropy / log C), their balance (entropy of the
  mean prediction / log C) and their information maximisation score (normalised by log C).

:func:`choose_method` turns these into a method by the rule stated in its docstring, which the
benchmark (``bench/adaptation.py``, ``bench/RESULTS.md``) sets: the task and the gap choose;
the probe is recorded in ``metrics.json`` to explain the domains (on PACS a confident probe
did not mean that self-training would work). The source-risk guard stays on under ``auto`` as
for any method.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

#: A gap below this leaves nothing to align: the pretrained features already mix the domains.
SMALL_GAP = 1.0


@dataclass(frozen=True)
class AutoMeasurements:
    """What ``--adapt auto`` decides from (see the module docstring).

    Attributes:
        modality: ``"image"`` or ``"text"``.
        task: the kind of task (only ``multiclass`` may use the methods that read logits).
        classes: C.
        gap: the proxy A-distance on the pretrained features.
        probe_confidence: 1 - mean entropy / log C of the probe's target predictions.
        probe_balance: entropy of their mean / log C (1: every class predicted equally).
        probe_im: their information maximisation score / log C.
    """

    modality: str
    task: str
    classes: int
    gap: float
    probe_confidence: float
    probe_balance: float
    probe_im: float

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def choose_method(measured: AutoMeasurements) -> tuple[str, str]:
    """The method ``--adapt auto`` trains with, and why (the reason names it).

    The rule, set by ``bench/adaptation.py`` (``bench/RESULTS.md``, PACS photo and cartoon at
    the feature level, three seeds each way):

    1. not single-label classification: ``coral``, the one feature-only method that never lost
       on the mean (DANN and MK-MMD lost up to 14 points on reviews);
    2. a small gap (< :data:`SMALL_GAP`): ``none``, nothing to align;
    3. otherwise ``mcc``: it gained on every seed of both directions (+20 points photo to
       cartoon, +14 cartoon to photo) with the smallest spread. The probe's confidence does
       not choose: it was highest (0.83-0.88) on cartoon to photo, where self-training, which
       trusts such predictions, lost 12 points on the mean by merging classes (its information
       maximisation score stayed as high as MCC's), and ``mcc+cdan``, level with MCC, costs
       three times as much. The probe is recorded to explain the domains, not to choose.
       On the review pairs (minilm) MCC gained 5 points and lost 1.
    """
    facts = (
        f"domain gap {measured.gap:.2f}, a linear source probe's target confidence "
        f"{measured.probe_confidence:.2f} and balance {measured.probe_balance:.2f}"
    )
    if measured.task != "multiclass":
        return "coral", f"{facts}; a {measured.task} task: coral aligns the features only"
    if measured.gap < SMALL_GAP:
        return "none", f"{facts}: a gap below {SMALL_GAP} leaves nothing to align: none"
    return "mcc", (
        f"{facts}: mcc, minimum class confusion, the method that gained on every measured seed "
        "and moves the features least"
    )


def measure(
    source: torch.Tensor,
    labels: np.ndarray,
    target: torch.Tensor,
    gap: float,
    modality: str,
    task: str,
    classes: int,
) -> AutoMeasurements:
    """The measurements of ``--adapt auto`` from a sample of source features [n, d] with their
    class ``labels`` [n] and of target features [m, d] (pretrained backbone), and the gap."""
    if task != "multiclass":
        return AutoMeasurements(modality, task, classes, gap, math.nan, math.nan, math.nan)
    probabilities = linear_probe(source, torch.as_tensor(labels), target, classes)
    log_c = math.log(classes)
    entropy = float(torch.special.entr(probabilities).sum(dim=1).mean())
    marginal = float(torch.special.entr(probabilities.mean(dim=0)).sum())
    return AutoMeasurements(
        modality,
        task,
        classes,
        gap,
        probe_confidence=1.0 - entropy / log_c,
        probe_balance=marginal / log_c,
        probe_im=(marginal - entropy) / log_c,
    )


def linear_probe(
    source: torch.Tensor, labels: torch.Tensor, target: torch.Tensor, classes: int
) -> torch.Tensor:
    """Softmax predictions [m, C] on ``target`` of a multinomial logistic regression fitted to
    (``source`` [n, d], ``labels`` [n]): features standardised by the source's mean and standard
    deviation, an L2 penalty as scikit-learn's default (C = 1), full-batch L-BFGS in float64 from
    zero, so the result depends only on the data."""
    x = source.detach().to("cpu", torch.float64)
    mean, scale = x.mean(dim=0), x.std(dim=0).clamp_min(1e-8)
    x = (x - mean) / scale
    y = labels.long().cpu()
    weight = torch.zeros(x.shape[1], classes, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(classes, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=200, history_size=20, line_search_fn="strong_wolfe"
    )
    penalty = 1.0 / (2.0 * len(x))

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y)
        loss = loss + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.inference_mode(False), torch.enable_grad():
        optimizer.step(closure)
    t = (target.detach().to("cpu", torch.float64) - mean) / scale
    with torch.no_grad():
        return torch.softmax(t @ weight + bias, dim=1)
