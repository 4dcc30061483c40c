"""Rank candidate backbones for a labelled dataset before fine-tuning any of them.

Each backbone runs once over the data (through the feature cache, so a second ranking or a
later fit on the same data runs none), and its frozen features are scored by the
transferability measures of :mod:`graft.selection.scores`: LogME, LEEP (backbones with a source
classifier), the H-score and a k-NN accuracy on the validation split. Ranking costs one forward
pass per backbone; fine-tuning costs several passes forward and backward, per epoch.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from graft.backbones import Backbone, create_backbone
from graft.data import DataSplits, LabelledData, load_data, load_splits, train_val_split
from graft.errors import ConfigError, DataError, RunError
from graft.features import FeatureCache
from graft.runs.directory import write_json
from graft.selection import scores
from graft.tasks.capabilities import Ranks

#: Scores a ranking can be ordered by (all: higher is better).
RANK_BY = ("logme", "leep", "h_score", "knn_accuracy")


@dataclass
class FrozenFeatures:
    """A backbone's features of a training and a validation split, and what they cost."""

    train: torch.Tensor
    val: torch.Tensor
    seconds: float
    computed: int
    cached: int


@dataclass
class BackboneScore:
    """One backbone's transferability to the data (each score: higher is better)."""

    model: str
    feature_dim: int
    logme: float
    leep: float | None
    h_score: float
    knn_accuracy: float
    source_entropy: float | None
    feature_seconds: float
    score_seconds: float
    features_computed: int
    features_cached: int
    rank: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def frozen_features(
    backbone: Backbone,
    train: LabelledData,
    val: LabelledData,
    cache: FeatureCache,
    batch_size: int = 64,
    num_workers: int = 0,
) -> FrozenFeatures:
    """The frozen ``backbone``'s features of ``train`` and ``val``, through ``cache``."""
    before = (cache.stats.hits, cache.stats.misses)
    start = time.perf_counter()
    train_x = cache.features(backbone, train, batch_size, num_workers)
    val_x = cache.features(backbone, val, batch_size, num_workers)
    seconds = time.perf_counter() - start
    return FrozenFeatures(
        train_x,
        val_x,
        seconds,
        computed=cache.stats.misses - before[1],
        cached=cache.stats.hits - before[0],
    )


def source_entropy(backbone: Backbone, features: torch.Tensor) -> float | None:
    """How unlike the source domain the inputs look to the backbone's source classifier: the
    mean entropy of its predictions divided by ``log Z`` (0: every input confidently one source
    class; 1: uniform over all ``Z`` classes, as for inputs unlike any source class). None
    without a source classifier."""
    probabilities = backbone.source_probabilities(features)
    if probabilities is None:
        return None
    p = probabilities.double().clamp_min(1e-12)
    entropy = -(p * p.log()).sum(dim=1).mean().item()
    return entropy / math.log(p.shape[1])


def score_backbone(
    backbone: Backbone, features: FrozenFeatures, train: LabelledData, val: LabelledData
) -> BackboneScore:
    """Every transferability score of ``backbone``'s frozen ``features`` of the data."""
    start = time.perf_counter()
    train_x, val_x = features.train.double().numpy(), features.val.double().numpy()
    probabilities = backbone.source_probabilities(features.train)
    result = BackboneScore(
        model=backbone.spec,
        feature_dim=backbone.feature_dim,
        logme=scores.logme(train_x, train.labels),
        leep=None if probabilities is None else scores.leep(probabilities.numpy(), train.labels),
        h_score=scores.h_score(train_x, train.labels),
        knn_accuracy=scores.knn_accuracy(train_x, train.labels, val_x, val.labels),
        source_entropy=source_entropy(backbone, features.train),
        feature_seconds=features.seconds,
        score_seconds=0.0,
        features_computed=features.computed,
        features_cached=features.cached,
    )
    result.score_seconds = time.perf_counter() - start
    return result


def rank_backbones(
    train: LabelledData,
    val: LabelledData,
    models: list[str],
    cache: FeatureCache | None = None,
    by: str = "logme",
    batch_size: int = 64,
    num_workers: int = 0,
) -> list[BackboneScore]:
    """Score each of ``models`` on ``train``/``val`` and return them best first by ``by``.

    Backbones without a score ``by`` (LEEP needs a source classifier) come last, ordered by
    LogME. Ranks start at 1.
    """
    if by not in RANK_BY:
        raise ConfigError(f"--by {by!r} is not one of {', '.join(RANK_BY)}")
    if not models:
        raise ConfigError("--models: name at least one backbone")
    if train.task != "multiclass":
        raise DataError(f"{train.source}: ranking scores class labels; this data is {train.task}")
    cache = cache or FeatureCache()
    results = []
    for spec in models:
        backbone = create_backbone(spec)
        if backbone.modality != train.modality:
            raise ConfigError(
                f"--models {spec} is a {backbone.modality} backbone, but {train.source} holds "
                f"{train.modality} data"
            )
        features = frozen_features(backbone, train, val, cache, batch_size, num_workers)
        results.append(score_backbone(backbone, features, train, val))
        del backbone
    results.sort(key=lambda r: _sort_key(r, by), reverse=True)
    for position, result in enumerate(results, start=1):
        result.rank = position
    return results


def _sort_key(result: BackboneScore, by: str) -> tuple[int, float]:
    value = getattr(result, by)
    if value is None or not np.isfinite(value):
        return (0, result.logme)
    return (1, value)


@dataclass
class Ranking:
    """The ranked backbones of a dataset, with what was measured and how long it took."""

    data: str
    by: str
    classes: list[str]
    examples: dict[str, int]
    scores: list[BackboneScore]
    seconds: float

    def to_dict(self) -> dict:
        return {
            "data": self.data,
            "by": self.by,
            "classes": self.classes,
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
            "ranking": [s.to_dict() for s in self.scores],
        }

    def write(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the ranking as JSON, atomically; an existing file needs ``overwrite``."""
        path = Path(path).expanduser()
        if path.exists() and not overwrite:
            raise RunError(f"{path} exists; pass --overwrite to replace it, or another --out")
        write_json(path, self.to_dict())
        return path


def rank(
    data: str | os.PathLike | LabelledData,
    models: list[str],
    *,
    val: str | os.PathLike | LabelledData | None = None,
    by: str = "logme",
    seed: int = 0,
    val_fraction: float = 0.2,
    batch_size: int = 64,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    **columns: str,
) -> Ranking:
    """Rank ``models`` for ``data`` (see :func:`rank_backbones`); validation data from ``val``,
    a ``val/`` folder beside ``train/``, or the same seeded stratified split ``fit`` makes."""
    from graft.tasks import claiming_kind

    kind = claiming_kind(data)
    if kind is not None:  # a kind with its own scores (detection: object features)
        if not issubclass(kind, Ranks):
            raise ConfigError(f"graft rank has no transferability score for {kind.kind} data")
        options = dict(val=val, by=by, seed=seed, val_fraction=val_fraction, batch_size=batch_size)
        return kind.rank(data, models, **options)
    start = time.perf_counter()
    train, val_data = _train_and_val(data, val, seed, val_fraction, columns)
    cache = FeatureCache(Path(cache_dir) / "features" if cache_dir else None)
    ranked = rank_backbones(train, val_data, models, cache, by, batch_size, num_workers)
    return Ranking(
        data=train.source,
        by=by,
        classes=list(train.classes),
        examples={"train": len(train), "val": len(val_data)},
        scores=ranked,
        seconds=time.perf_counter() - start,
    )


def _train_and_val(data, val, seed: int, val_fraction: float, columns: dict):
    if isinstance(data, LabelledData):
        splits = DataSplits(data)
    else:
        splits = load_splits(data, **columns, task="multiclass")
    if val is not None:
        splits.val = val if isinstance(val, LabelledData) else load_data(val, **columns)
    if splits.val is None:
        train_idx, val_idx = train_val_split(splits.train, val_fraction, seed)
        return splits.train.subset(train_idx), splits.train.subset(val_idx)
    return splits.train, splits.val.relabel(splits.train.classes)
