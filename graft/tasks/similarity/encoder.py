"""The sentence encoder: a text backbone's mean-pooled features, optionally projected, L2
normalised (as sentence-transformers' all-MiniLM-L6-v2 computes its embeddings).

``feature-extract`` trains only the projection (a square linear layer started at the
identity, so that the untrained encoder is the pretrained one); the other strategies train the
encoder itself. A saved encoder is its backbone spec, its weights and its projection
(:meth:`SentenceEncoder.save`, :func:`load_encoder`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from graft.errors import RunError

#: The file of an encoder's record in a run (spec, projection) beside its weights.
RECORD = "encoder.json"
WEIGHTS = "encoder.safetensors"


class SentenceEncoder(nn.Module):
    """Texts in, normalised embeddings out.

    Attributes:
        backbone: the text backbone (:class:`graft.backbones.hf_text.HFTextBackbone`).
        projection: a square linear layer after pooling, or None.
        tokenizer: the backbone's tokenizer; max_length: the tokens read per text.
    """

    def __init__(self, backbone, projection: bool = False):
        super().__init__()
        from transformers import AutoTokenizer

        self.backbone = backbone
        self.tokenizer = AutoTokenizer.from_pretrained(backbone.preprocessing.tokenizer)
        self.max_length = int(backbone.preprocessing.max_length)
        self.projection = None
        if projection:
            width = int(backbone.feature_dim)
            self.projection = nn.Linear(width, width)
            with torch.no_grad():
                self.projection.weight.copy_(torch.eye(width))
                self.projection.bias.zero_()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tokens(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items() if k != "token_type_ids"}

    def forward(self, texts: list[str]) -> torch.Tensor:
        pooled = self.backbone(self.tokens(texts))
        if self.projection is not None:
            pooled = self.projection(pooled)
        return nn.functional.normalize(pooled, dim=-1)

    @torch.inference_mode()
    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """The embeddings of ``texts`` (float32, one row each), longest first within the call
        so that batches pad little, returned in the order given."""
        was_training = self.training
        self.eval()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self([texts[i] for i in chunk]).float().cpu().numpy()
        self.train(was_training)
        return out

    @property
    def dim(self) -> int:
        return int(self.backbone.feature_dim)

    def save(self, folder: Path) -> None:
        """Write the encoder's weights and record into ``folder``."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS))
        record = {"spec": self.backbone.spec, "projection": self.projection is not None}
        (folder / RECORD).write_text(json.dumps(record, indent=2))


def pretrained_encoder(spec: str, projection: bool = False) -> SentenceEncoder:
    """The pretrained encoder a model string names (``minilm``, ``hf:ORG/NAME``, a folder)."""
    from graft.backbones.hf_text import HFTextBackbone
    from graft.backbones.registry import create_backbone
    from graft.errors import ConfigError

    backbone = create_backbone(spec, pretrained=True)
    if not isinstance(backbone, HFTextBackbone):
        raise ConfigError(f"--model {spec}: similarity needs a text encoder (minilm, hf:...)")
    return SentenceEncoder(backbone, projection)


def load_encoder(folder: Path) -> SentenceEncoder:
    """The encoder saved in ``folder`` by :meth:`SentenceEncoder.save`."""
    from safetensors.torch import load_file

    from graft.backbones.registry import create_backbone

    if not (folder / RECORD).is_file():
        raise RunError(f"{folder}: no {RECORD}; not a similarity run")
    record = json.loads((folder / RECORD).read_text())
    backbone = create_backbone(record["spec"], pretrained=False)
    encoder = SentenceEncoder(backbone, record["projection"])
    encoder.load_state_dict(load_file(str(folder / WEIGHTS)))
    return encoder.eval()
