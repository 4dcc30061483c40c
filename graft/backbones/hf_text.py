"""Text backbones from Hugging Face transformers: a hub id or a local model folder.

Features are the attention-masked mean of the last hidden states, the pooling that
sentence-transformers models such as all-MiniLM-L6-v2 were trained with.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from graft.backbones.base import Backbone, TextPreprocessing
from graft.backbones.lora import known_targets
from graft.errors import ModelUnavailableError

log = logging.getLogger("graft")

DEFAULT_MAX_LENGTH = 256

#: Layers LoRA adapts by default, by family: every linear layer of a BERT-like encoder (BERT,
#: RoBERTa, MiniLM: the attention projections and the feed-forward ``dense`` layers), and of
#: DistilBERT.
LORA_TARGETS = (
    ("query", "key", "value", "dense"),
    ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"),
)


def _max_length(folder: Path | None, config) -> int:
    """The sequence length the model was trained for (sentence-transformers config first)."""
    if folder is not None and (folder / "sentence_bert_config.json").is_file():
        saved = json.loads((folder / "sentence_bert_config.json").read_text())
        if saved.get("max_seq_length"):
            return int(saved["max_seq_length"])
    return int(
        min(getattr(config, "max_position_embeddings", DEFAULT_MAX_LENGTH), DEFAULT_MAX_LENGTH)
    )


def _layer_list(model: nn.Module) -> nn.ModuleList | None:
    """The longest ModuleList in the model: its transformer layers, whatever the architecture."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    return max(lists, key=len) if lists else None


def layer_groups(
    params: Iterable[nn.Parameter], layers: nn.ModuleList | None
) -> list[list[nn.Parameter]]:
    """``params`` grouped for layer-wise training: those before the first transformer layer
    (embeddings, a feature encoder), one group per layer of ``layers``, and those after the
    last layer (a final norm) joined to the last layer's group; empty groups dropped. Without
    layers, one group."""
    params = list(params)
    if layers is None:
        return [params]
    layer_ids = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    before: list[nn.Parameter] = []
    per_layer: list[list[nn.Parameter]] = [[] for _ in layers]
    after: list[nn.Parameter] = []
    for param in params:
        if id(param) in layer_ids:
            per_layer[layer_ids[id(param)]].append(param)
        elif any(per_layer):
            after.append(param)
        else:
            before.append(param)
    groups = [before, *per_layer]
    groups[-1] = groups[-1] + after
    return [group for group in groups if group]


class HFTextBackbone(Backbone):
    """A transformers encoder with masked mean pooling; batches are tokenizer outputs."""

    def __init__(self, model: nn.Module, tokenizer_source: str, max_length: int, spec: str):
        super().__init__()
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # unused by mean pooling; would leave parameters without grads
        self.model = model
        self.spec = spec
        self.feature_dim = int(model.config.hidden_size)
        self.preprocessing = TextPreprocessing(tokenizer=tokenizer_source, max_length=max_length)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        hidden = self.model(**batch).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        return layer_groups(self.model.parameters(), _layer_list(self.model))

    def lora_targets(self) -> list[str]:
        return known_targets(self.model, LORA_TARGETS) or super().lora_targets()

    @classmethod
    def create(
        cls, source: str, pretrained: bool = True, spec: str | None = None
    ) -> HFTextBackbone:
        """Load ``source`` (a hub id or a folder) with transformers' AutoModel."""
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        folder = Path(source) if Path(source).is_dir() else None
        try:
            config = AutoConfig.from_pretrained(source)
            if pretrained:
                model = load_encoder(source)
            else:
                model = AutoModel.from_config(config)
        except OSError as error:
            raise ModelUnavailableError(_download_message(source, error)) from None
        except ValueError as error:
            raise ModelUnavailableError(
                f"transformers cannot build an encoder from {source}: {error}"
            ) from None
        return cls(model, source, _max_length(folder, config), spec or f"hf:{source}")


def load_encoder(source: str, unused: tuple[str, ...] = ("pooler.",)) -> nn.Module:
    """``AutoModel.from_pretrained(source)`` without transformers' load report, which lists
    the weights of heads a checkpoint may hold (a masked-language-model or classification
    head, say) and those it lacks; only missing encoder weights are worth a warning, not those
    of modules whose names start with ``unused`` (the pooler: mean pooling never uses it).
    Text and audio encoders load through it."""
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        model, info = AutoModel.from_pretrained(source, output_loading_info=True)
    finally:
        transformers_logging.set_verbosity(verbosity)
    missing = sorted(key for key in info["missing_keys"] if not key.startswith(unused))
    if missing:
        log.warning(
            "%s: %d encoder weight(s) missing from the checkpoint, initialised at random: %s",
            source,
            len(missing),
            ", ".join(missing[:5]),
        )
    return model


def _download_message(source: str, error: Exception) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    return (
        f"could not load the Hugging Face model {source}{offline}; is the network reachable? "
        f"{reason}. To use a model you have on disk, pass its folder (config.json, weights and "
        "tokenizer files) as --model /path/to/folder. Offline default for text: minilm."
    )
