"""Token-level text backbones: a transformers encoder's last hidden state at every sub-token.

A head that reads each token (a tag per word, an answer's start and end) reads the encoder's
hidden states ``[batch, sequence, hidden]`` rather than one pooled vector per text: the kinds
that do (tagging, question answering) build on this view.
The encoder, its parameter groups from embeddings to last layer, its LoRA targets and its
preprocessing (tokenizer and maximum length) are those of
:class:`~graft.backbones.hf_text.HFTextBackbone`: this class only changes what ``forward``
returns, so every strategy trains it as it trains the pooled one.
"""

from __future__ import annotations

import torch

from graft.backbones.hf_text import HFTextBackbone
from graft.backbones.registry import create_backbone
from graft.errors import ConfigError

#: The keys of a batch that the encoder reads; a batch may hold others (word alignment).
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class HFTokenBackbone(HFTextBackbone):
    """A transformers encoder whose features are its last hidden states, one per sub-token.

    ``forward`` takes the tokenizer's tensors (other keys of the batch are ignored) and returns
    ``float[batch, sequence, feature_dim]``.
    """

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {name: batch[name] for name in MODEL_INPUTS if name in batch}
        return self.model(**inputs).last_hidden_state

    @classmethod
    def from_text_backbone(cls, pooled: HFTextBackbone) -> HFTokenBackbone:
        """The token-level view of a pooled text backbone (sharing its encoder)."""
        preprocessing = pooled.preprocessing
        token = cls(pooled.model, preprocessing.tokenizer, preprocessing.max_length, pooled.spec)
        token.preprocessing = preprocessing
        token.adapter = pooled.adapter
        return token.train(pooled.training)


def create_token_backbone(
    spec: str, pretrained: bool = True, needed_by: str = "tagging", view: type | None = None
) -> HFTokenBackbone:
    """The token-level backbone of any text model string graft takes (a registered name such as
    ``minilm``, ``hf:ORG/NAME``, a local folder, a ``graft pretrain`` run or ``scratch:...``).

    Raises:
        ConfigError: the model string names an image or audio backbone.
    """
    pooled = create_backbone(spec, pretrained=pretrained)
    if not isinstance(pooled, HFTextBackbone):
        raise ConfigError(
            f"--model {spec} is a {pooled.modality} backbone; {needed_by} needs a text "
            "encoder (minilm, hf:ORG/NAME or a Hugging Face model folder)"
        )
    return (view or HFTokenBackbone).from_text_backbone(pooled)
