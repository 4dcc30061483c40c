"""Images through a graft image backbone (``efficientnet_lite0`` offline, ``timm:NAME``): the
pixels the backbone's weights expect (timm's evaluation transform of its preprocessing: resize,
centre crop, normalise), its pooled features under the similarity head
(:class:`~graft.tasks.similarity.encoder.Projection`), L2 normalised.

:class:`ImageEmbedder` embeds image files outside a fit (a pretrained backbone as it is, the
encoder that mines negatives). :func:`cached_loaders` are the loaders of a phase that trains
the projection alone on the frozen backbone: each image's features are computed once (and
kept in graft's feature cache, :mod:`graft.features`), not at every epoch.

Training pairs are shown as they are (the evaluation transform, no augmentation): the
projection is trained on the cached features of each image, and the phases that train the
backbone see the same pixels, so that both are scored on the inputs they trained on.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from graft.errors import DataError
from graft.tasks.similarity.images import pixels


class ImageEmbedder:
    """Image files in, normalised embeddings out, from an image backbone and a head.

    Attributes:
        backbone, head: the networks; dim: the embeddings' width; modality: ``image``.
    """

    modality = "image"

    def __init__(self, backbone, head: nn.Module):
        self.backbone, self.head = backbone.eval(), head.eval()
        self.dim = int(backbone.feature_dim)

    @torch.inference_mode()
    def __call__(self, paths: list[str], batch_size: int = 64) -> np.ndarray:
        """The embeddings of the images at ``paths`` (float32, one row each, in order)."""
        paths = [str(p) for p in paths]
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        for start in range(0, len(paths), batch_size):
            batch = pixels(self.backbone.preprocessing, paths[start : start + batch_size])
            out[start : start + len(batch)] = self.head(self.backbone(batch)).float().numpy()
        return out


def embedder_for(backbone, head: nn.Module | None = None):
    """The embedder of ``backbone`` (an image or a text backbone) under ``head`` (None: the
    untrained head, an identity: the pretrained backbone as it is)."""
    from graft.tasks.similarity.encoder import Projection, TextEmbedder

    head = head if head is not None else Projection(backbone.feature_dim, trained=False)
    if backbone.modality == "image":
        return ImageEmbedder(backbone, head)
    return TextEmbedder(backbone, head)


def pretrained_embedder(spec: str):
    """The pretrained encoder a model string names, as it is: a text encoder (``minilm``,
    ``hf:ORG/NAME``) or an image backbone (``efficientnet_lite0``, ``timm:NAME``)."""
    from graft.backbones.registry import create_backbone
    from graft.errors import ConfigError

    backbone = create_backbone(spec, pretrained=True)
    if backbone.modality not in ("text", "image"):
        raise ConfigError(
            f"--model {spec}: similarity needs a text encoder (minilm, hf:...) or an image "
            "backbone (efficientnet_lite0, timm:...)"
        )
    return embedder_for(backbone)


def images_of(train, val) -> list[str]:
    """Every image of the training pairs and of the validation retrieval set, once each."""
    seen = dict.fromkeys(train.anchors + train.positives + (train.negatives or []))
    if val is not None:
        retrieval = val.retrieval()
        seen.update(dict.fromkeys([*retrieval.queries.values(), *retrieval.corpus.values()]))
    return [p for p in seen if p]


def cached_loaders(task, loaders) -> tuple:
    """The training and validation loaders of a phase that trains the projection alone on a
    frozen image backbone: batches of each image's cached features (``{"features": ...}``,
    which :class:`~graft.tasks.similarity.module.SimilarityModule` hands to the head), in the
    training order of :meth:`~graft.tasks.similarity.task.SimilarityTask.train_batches`."""
    from torch.utils.data import DataLoader

    from graft.data.dataset import LabelledData
    from graft.data.images import UnreadableImage
    from graft.tasks.similarity.batches import Items, SimilarityCollate, pairs_of, texts_of

    splits, backbone = loaders.splits, loaders.backbone
    paths = images_of(splits.train, splits.val)
    data = LabelledData(paths, None, [], "image", splits.train.source)
    try:
        features = loaders.cache.features(backbone, data, loaders.batch_size, loaders.workers)
    except UnreadableImage as error:
        raise DataError(f"{splits.train.source}: an image graft cannot read ({error})") from None
    collate = SimilarityCollate(backbone.preprocessing, dict(zip(paths, features, strict=True)))
    batching = task.train_batches(
        splits.train, loaders.batch_size, loaders.seed, False, backbone.preprocessing
    )
    train = DataLoader(Items(pairs_of(splits.train)), collate_fn=collate, **batching)
    val = None
    if splits.val is not None:
        val_items = Items(texts_of(splits.val.retrieval()))
        val = DataLoader(val_items, batch_size=loaders.batch_size * 2, collate_fn=collate)
    return train, val
