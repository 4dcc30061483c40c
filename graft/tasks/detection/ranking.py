"""Ranking backbones for a detection dataset before training any detector on them.

A detector's head must tell each object from the background and from the other classes, at the
scale of the object, from the backbone's feature maps. The *object features* of a frozen
backbone measure how ready its maps are for that: every annotated object and as many background
boxes (random boxes of the objects' sizes that overlap no object by an IoU of 0.3 or more, drawn
with the seed) are pooled with RoIAlign from each of the backbone's pyramid levels (strides 8,
16 and 32, at the detector's inference image size) and concatenated into one vector per box,
labelled with its class, or background. The transferability scores of
:mod:`graft.selection.scores` are then taken on these vectors as on pooled image features:
LogME (You et al., ICML 2021), the H-score (Bao et al., ICIP 2019) and the k-NN accuracy of the
validation boxes. LEEP needs a source classifier over whole images and is left out.

One forward pass per image and backbone; ``bench/detection.py --only rank`` measures how the order
agrees with the mAP of the candidates once fine-tuned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from graft.errors import ConfigError
from graft.selection import scores
from graft.selection.ranking import BackboneScore, Ranking, _sort_key

#: Scores a detection ranking can be ordered by (LEEP needs a source classifier).
DETECTION_RANK_BY = ("logme", "h_score", "knn_accuracy")
#: IoU with every object under which a random box counts as background.
BACKGROUND_IOU = 0.3


def background_boxes(
    boxes: np.ndarray, width: int, height: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to ``count`` random boxes of the sizes of ``boxes`` (times 0.5 to 1.5; a tenth of
    the image without objects) inside the image, each overlapping every box by an IoU under
    :data:`BACKGROUND_IOU`."""
    from torchvision.ops import box_iou

    if len(boxes):
        sizes = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    else:
        sizes = np.asarray([[width / 10, height / 10]], dtype=np.float64)
    found: list[list[float]] = []
    for _ in range(count * 20):
        if len(found) == count:
            break
        w, h = sizes[rng.integers(len(sizes))] * rng.uniform(0.5, 1.5)
        w, h = min(w, width - 1), min(h, height - 1)
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = [x, y, x + w, y + h]
        if len(boxes):
            overlap = box_iou(torch.tensor([box]), torch.as_tensor(boxes, dtype=torch.float32))
            if float(overlap.max()) >= BACKGROUND_IOU:
                continue
        found.append(box)
    return np.asarray(found, dtype=np.float32).reshape(-1, 4)


@torch.inference_mode()
def object_features(
    backbone: Any, data: Any, min_size: int, max_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[boxes, sum of channels]`` and labels (class + 1, background 0) of every
    non-crowd object of ``data`` and as many background boxes (see the module docstring)."""
    from torchvision.ops import roi_align
    from torchvision.transforms.v2 import functional as F

    from graft.data.images import open_rgb

    mean, std = backbone.preprocessing.mean, backbone.preprocessing.std
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    backbone.eval()
    for path, target in zip(data.images, data.targets, strict=True):
        keep = target.iscrowd == 0
        objects = target.boxes[keep]
        background = background_boxes(
            target.boxes, target.width, target.height, max(2, len(objects)), rng
        )
        boxes = np.concatenate([objects, background])
        scale = min(
            min_size / min(target.width, target.height), max_size / max(target.width, target.height)
        )
        size = [round(target.height * scale), round(target.width * scale)]
        image = F.to_dtype(F.to_image(open_rgb(path)), torch.float32, scale=True)
        pixels = F.normalize(F.resize(image, size, antialias=True), list(mean), list(std))
        maps = backbone(pixels[None])
        scaled = [torch.as_tensor(boxes, dtype=torch.float32) * scale]
        pooled = [
            roi_align(m, scaled, 1, 1.0 / r, sampling_ratio=2, aligned=True).flatten(1)
            for m, r in zip(maps.values(), backbone.reductions, strict=True)
        ]
        rows.append(torch.cat(pooled, dim=1).double().numpy())
        labels += [int(c) + 1 for c in target.labels[keep]] + [0] * len(background)
    return np.concatenate(rows), np.asarray(labels, dtype=np.int64)


def score_detection_backbone(
    backbone: Any, train: Any, val: Any, min_size: int, max_size: int, seed: int
) -> BackboneScore:
    """The object-feature scores of ``backbone`` (multi-scale) on ``train`` and ``val``."""
    if not hasattr(backbone, "reductions"):
        raise ConfigError(f"--models {backbone.spec}: ranking scores graft's image backbones")
    start = time.perf_counter()
    train_x, train_y = object_features(backbone, train, min_size, max_size, seed)
    val_x, val_y = object_features(backbone, val, min_size, max_size, seed + 1)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = BackboneScore(
        model=backbone.spec,
        feature_dim=int(train_x.shape[1]),
        logme=scores.logme(train_x, train_y),
        leep=None,
        h_score=scores.h_score(train_x, train_y),
        knn_accuracy=scores.knn_accuracy(train_x, train_y, val_x, val_y),
        source_entropy=None,
        feature_seconds=seconds,
        score_seconds=0.0,
        features_computed=len(train) + len(val),
        features_cached=0,
    )
    result.score_seconds = time.perf_counter() - start
    return result


def rank_detection(
    train: Any,
    val: Any,
    models: list[str],
    build: Callable[[str], Any],
    *,
    by: str = "logme",
    seed: int = 0,
    sizes: tuple[int, int] = (512, 853),
) -> Ranking:
    """Rank ``models`` (built by ``build``) for detection data ``train`` and ``val`` by their
    object features at images of shorter side ``sizes[0]`` (longer at most ``sizes[1]``); see
    the module docstring."""
    if by not in DETECTION_RANK_BY:
        raise ConfigError(
            f"--by {by!r}: detection backbones rank by {', '.join(DETECTION_RANK_BY)}"
        )
    if not models:
        raise ConfigError("--models: name at least one backbone")
    start = time.perf_counter()
    results = [score_detection_backbone(build(spec), train, val, *sizes, seed) for spec in models]
    results.sort(key=lambda r: _sort_key(r, by), reverse=True)
    for position, result in enumerate(results, start=1):
        result.rank = position
    return Ranking(
        data=train.source,
        by=by,
        classes=list(train.classes),
        examples={"train": len(train), "val": len(val)},
        scores=results,
        seconds=time.perf_counter() - start,
    )
