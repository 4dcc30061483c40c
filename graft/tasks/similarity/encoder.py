"""The sentence encoder: graft's text backbone (:class:`graft.backbones.hf_text.HFTextBackbone`:
the attention-masked mean of the last hidden states, as sentence-transformers' all-MiniLM-L6-v2
pools) under the similarity head (:class:`Projection`), L2 normalised.

``feature-extract`` trains the head's square linear layer (started at the identity, so that
the untrained model is the pretrained encoder) on the frozen encoder; the strategies that
train the encoder keep the head an identity with no parameters. :class:`TextEmbedder` embeds
texts with a backbone and head outside a fit (a pretrained model as it is, mining); images go
through :mod:`graft.tasks.similarity.image_encoder` under the same head.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Projection(nn.Module):
    """The similarity head: pooled features, projected when ``trained`` (a square linear layer
    started at the identity), L2 normalised; ``float[n, width]`` in and out."""

    def __init__(self, width: int, trained: bool):
        super().__init__()
        self.width, self.trained = int(width), bool(trained)
        self.linear = None
        if trained:
            self.linear = nn.Linear(self.width, self.width)
            with torch.no_grad():
                self.linear.weight.copy_(torch.eye(self.width))
                self.linear.bias.zero_()

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.linear is not None:
            pooled = self.linear(pooled)
        return nn.functional.normalize(pooled, dim=-1)


def tokenizer_of(preprocessing):
    """The tokenizer a text backbone's preprocessing names."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(preprocessing.tokenizer)


def tokens(tokenizer, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """``texts`` as the backbone reads them (padded to the longest, cut at ``max_length``)."""
    batch = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {k: v for k, v in batch.items() if k != "token_type_ids"}


class TextEmbedder:
    """Texts in, normalised embeddings out, from a backbone and a head (a pretrained model as
    it is, or the pretrained encoder that mines negatives); images are embedded by
    :class:`graft.tasks.similarity.image_encoder.ImageEmbedder`.

    Attributes:
        backbone, head: the networks; tokenizer: the backbone's; dim: the embeddings' width;
        modality: ``text``.
    """

    modality = "text"

    def __init__(self, backbone, head: nn.Module):
        self.backbone, self.head = backbone.eval(), head.eval()
        self.tokenizer = tokenizer_of(backbone.preprocessing)
        self.dim = int(backbone.feature_dim)

    @torch.inference_mode()
    def __call__(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """The embeddings of ``texts`` (float32, one row each), longest first within the call
        so that batches pad little, returned in the order given."""
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        length = int(self.backbone.preprocessing.max_length)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = tokens(self.tokenizer, [texts[i] for i in chunk], length)
            out[chunk] = self.head(self.backbone(batch)).float().numpy()
        return out
