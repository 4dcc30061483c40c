"""The target domain of a fit: the unlabelled data a model must serve, labelled target data
to report on when the user has some, and the measurements that compare the two domains.

The gap between domains is the proxy A-distance of the backbone's features (source training
data against target data), measured on the pretrained backbone before training and on the
trained one after; the trained model's target predictions also get the label-free scores
(information maximisation, soft neighbourhood density, entropy) that choose a checkpoint
without target labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from graft.adaptation.gap import proxy_a_distance
from graft.adaptation.validation import (
    information_maximization,
    prediction_entropy,
    soft_neighborhood_density,
)
from graft.backbones.base import Backbone
from graft.data import LabelledData, load_inputs
from graft.errors import DataError
from graft.features import FeatureCache, extract_features

#: Items of each domain that the per-epoch target validation and the gap measurements use (a
#: seeded sample): the label-free score compares every pair of target predictions.
TARGET_SAMPLE = 1000


@dataclass
class TargetDomain:
    """Unlabelled target data (``items``) and, optionally, labelled target data (``test``).

    Attributes:
        items: image paths or texts of the target domain, without labels.
        source: where they came from, for messages.
        test: labelled target data, evaluated and reported, never used to train or choose.
    """

    items: list[str]
    source: str
    test: LabelledData | None = None

    def sample(self, seed: int, size: int = TARGET_SAMPLE) -> list[str]:
        """A seeded sample of at most ``size`` target items, in their original order."""
        return sample_items(self.items, size, seed)


def load_target_items(
    target: str | os.PathLike | LabelledData, modality: str, column: str | None = None
) -> list[str]:
    """The items of unlabelled target data: a folder of images or texts (class subfolders, if
    any, are ignored), a table's image or text column, or in-memory data (labels ignored)."""
    if isinstance(target, LabelledData):
        items = target.items
        if target.modality != modality:
            raise DataError(
                f"--target-unlabeled {target.source} holds {target.modality} data, "
                f"the training data {modality}"
            )
    else:
        try:
            items = load_inputs([str(target)], modality, column=column)
        except DataError as error:
            raise DataError(f"--target-unlabeled {target}: {error}") from None
    if len(items) < 2:
        raise DataError(f"--target-unlabeled {target}: needs at least 2 items, found {len(items)}")
    return items


def sample_items(items: list[str], size: int, seed: int) -> list[str]:
    """At most ``size`` of ``items`` drawn without replacement under ``seed``, in order."""
    return [items[i] for i in sample_indices(len(items), size, seed)]


def sample_indices(count: int, size: int, seed: int) -> np.ndarray:
    """The indices (ascending) of :func:`sample_items`' draw from ``count`` items."""
    if count <= size:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size, replace=False))


@torch.inference_mode()
def domain_features(
    backbone: Backbone,
    items: list[str],
    batch_size: int,
    num_workers: int = 0,
    cache: FeatureCache | None = None,
) -> torch.Tensor:
    """Backbone features of ``items`` (from ``cache`` for a pretrained backbone, else computed)."""
    data = LabelledData(items, None, [], backbone.modality, "inputs")
    if cache is not None:
        return cache.features(backbone, data, batch_size, num_workers)
    return extract_features(backbone, data, batch_size, num_workers)


def domain_gap(source_features: torch.Tensor, target_features: torch.Tensor, seed: int) -> float:
    """The proxy A-distance between the two domains' features (0: indistinguishable, 2:
    separated by a linear classifier)."""
    return round(float(proxy_a_distance(source_features, target_features, seed=seed)), 4)


@torch.inference_mode()
def label_free_scores(head: torch.nn.Module, target_features: torch.Tensor) -> dict[str, float]:
    """The information maximisation score (higher is better; it chooses the kept epoch), the
    soft neighbourhood density (higher is better, but a collapsed model scores best) and the
    mean entropy (lower is more confident) of the head's predictions on target features."""
    probabilities = torch.softmax(head.eval()(target_features).float(), dim=-1)
    return {
        "im": round(float(information_maximization(probabilities)), 6),
        "snd": round(float(soft_neighborhood_density(probabilities)), 6),
        "entropy": round(float(prediction_entropy(probabilities)), 6),
    }
