"""A generative reader: a sequence-to-sequence model that writes each question's answer.

When ``--model`` names a transformers encoder-decoder (``config.is_encoder_decoder``: T5,
BART, ...; an ``hf:`` name or a folder holding the model and its tokenizer), a
question-answering fit trains it to write the answer text from ``"question: ... context:
..."`` (T5's convention) instead of scoring spans: the model is the backbone and computes its
own loss (the cross-entropy of each answer token), the head holds nothing
(:class:`NoHead`), and answers are generated greedily
(:mod:`graft.tasks.question_answering.generated`). LoRA adapters on the attention projections
train by default; ``--strategy full`` trains every weight. A decoder-only (causal) language
model is refused with one line.

No pretrained generative model installs offline from the package registry here, so this path
is tested on tiny random models and was not benchmarked.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graft.backbones.base import Backbone, TextPreprocessing
from graft.errors import ConfigError, ModelUnavailableError

#: The strategies a generative reader takes (the generic default fine-tune becomes lora).
STRATEGIES = ("lora", "full")
#: A generative fit's defaults for the options left at graft's generic ones.
DEFAULTS = {"lr": 1e-3, "backbone_lr_mult": 1.0, "epochs": 3, "batch_size": 16}
#: The names of the attention projections LoRA adapts (T5's, then BART's and most others').
ATTENTION = ("q", "k", "v", "o", "q_proj", "k_proj", "v_proj", "out_proj")


def model_folder(spec: str | None) -> str | None:
    """Where transformers reads ``spec`` from (``hf:ORG/NAME``, or a folder holding a
    transformers ``config.json``), or None when ``spec`` names neither."""
    if not spec:
        return None
    if spec.startswith("hf:"):
        return spec[3:]
    path = Path(spec).expanduser()
    return str(path.resolve()) if (path / "config.json").is_file() else None


@functools.cache
def generative_kind(spec: str | None) -> str | None:
    """``"seq2seq"`` for an encoder-decoder model, ``"causal"`` for a decoder-only language
    model, None for anything else (an encoder, a graft model name, a graft run)."""
    folder = model_folder(spec)
    if folder is None:
        return None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    architectures = getattr(config, "architectures", None) or []
    if any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures):
        return "causal"
    return None


def check_generative(spec: str | None) -> bool:
    """Whether ``spec`` names a sequence-to-sequence model; ConfigError for a decoder-only
    one."""
    kind = generative_kind(spec)
    if kind == "causal":
        raise ConfigError(
            f"--model {spec} is a decoder-only language model: generative question answering "
            "takes a sequence-to-sequence model (T5, BART) or an encoder (extractive)"
        )
    return kind == "seq2seq"


def generative_defaults(config: Any, generic: Any, max_length: int) -> Any:
    """A generative fit's configuration: :data:`DEFAULTS` for the options left at graft's
    generic ones, the window ``max_length`` when none is given, and ``lora`` for the generic
    strategy (ConfigError for a strategy other than :data:`STRATEGIES`)."""
    chosen: dict[str, Any] = {
        name: value
        for name, value in DEFAULTS.items()
        if getattr(config, name) in (None, getattr(generic, name))
    }
    if config.max_length is None:
        chosen["max_length"] = max_length
    strategy = "lora" if config.strategy == generic.strategy else config.strategy
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"--strategy {strategy}: a generative reader trains with "
            f"{' or '.join(STRATEGIES)} (default lora)"
        )
    if strategy == "full" and config.lr == generic.lr:
        chosen["lr"] = 3e-4
    return config.resolved(strategy=strategy, **chosen)


def _blocks(stack: nn.Module) -> list[nn.Module]:
    """The transformer blocks of an encoder or decoder stack (T5's ``block``, else
    ``layers``)."""
    for name in ("block", "layers", "layer"):
        found = getattr(stack, name, None)
        if isinstance(found, nn.ModuleList):
            return list(found)
    return []


class GenerativeReader(Backbone):
    """A sequence-to-sequence model (``model``) as graft's backbone: its features are the
    encoder's last hidden states; training and answering use the whole model."""

    def __init__(self, model: Any, spec: str, tokenizer: str, max_length: int):
        super().__init__()
        self.model = model
        self.spec = spec
        self.feature_dim = int(getattr(model.config, "d_model", 0) or model.config.hidden_size)
        self.preprocessing = TextPreprocessing(tokenizer=tokenizer, max_length=max_length)
        self.export_refusal = "a generative reader writes its answers token by token"
        self.lr_mult = 1.0
        self.generative = True

    def forward(self, batch: dict) -> torch.Tensor:
        encoder = self.model.get_encoder()
        mask = batch.get("attention_mask")
        return encoder(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The embeddings (and whatever is in no block), then each encoder block, then each
        decoder block."""
        blocks = _blocks(self.model.get_encoder()) + _blocks(self.model.get_decoder())
        in_blocks = {id(p) for block in blocks for p in block.parameters()}
        rest = [p for p in self.parameters() if id(p) not in in_blocks]
        groups = [rest] + [list(block.parameters()) for block in blocks]
        return [group for group in groups if group]

    def lora_targets(self) -> list[str]:
        """The attention projections of every block (:data:`ATTENTION`)."""
        return [
            name
            for name, module in self.named_modules()
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in ATTENTION
        ]

    def state_dict(self, *args, **kwargs):
        """The weights, a tied weight (T5's shared embeddings) copied under each of its names,
        so that a run's weights file holds no tensors sharing memory."""
        state = super().state_dict(*args, **kwargs)
        seen: set[int] = set()
        for name, tensor in state.items():
            if not isinstance(tensor, torch.Tensor) or isinstance(tensor, nn.Parameter):
                continue
            if tensor.data_ptr() in seen:
                state[name] = tensor.clone()
            seen.add(tensor.data_ptr())
        return state


class NoHead(nn.Module):
    """A generative reader's head: nothing (the model writes its answers itself)."""

    dropout = None

    def forward(self, features: Any) -> Any:
        raise ConfigError("a generative reader writes answers: use the task's infer")


def build_reader(spec: str, pretrained: bool = True, max_length: int = 384) -> GenerativeReader:
    """The sequence-to-sequence model ``spec`` names (pretrained, or from its configuration)
    with its tokenizer."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    folder = model_folder(spec)
    if folder is None or not check_generative(spec):
        raise ModelUnavailableError(f"--model {spec}: not a sequence-to-sequence model")
    try:
        if pretrained:
            model = AutoModelForSeq2SeqLM.from_pretrained(folder)
        else:
            model = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(folder))
            model.tie_weights()
    except (OSError, ValueError, KeyError) as error:
        raise ModelUnavailableError(f"--model {spec}: cannot load it ({error})") from None
    return GenerativeReader(model, spec, folder, max_length)
