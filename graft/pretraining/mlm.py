"""Masked-language-model pre-training of a text backbone: continued on your texts, or from
scratch.

BERT's objective (Devlin et al., NAACL 2019), continued on in-domain text as in Gururangan et
al., "Don't Stop Pretraining: Adapt Language Models to Domains and Tasks" (ACL 2020).
transformers' ``DataCollatorForLanguageModeling`` chooses 15% of the tokens that are not special
tokens (80% of those become ``[MASK]``, 10% a random token, 10% stay as they are) and the loss
is the cross-entropy of the original tokens at the chosen positions M::

    L = -1/|M| sum_{i in M} log p(x_i | masked text)

The language-model head is ``AutoModelForMaskedLM``'s: the checkpoint's own when it has one,
else newly initialised (sentence-transformers checkpoints such as all-MiniLM-L6-v2 ship the
encoder alone), its decoder tied to the backbone's input embeddings. Its logits are computed at
the chosen positions only: projecting every position onto the vocabulary would cost more than
the encoder.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from graft.backbones.base import Backbone
from graft.data import LabelledData
from graft.pretraining.base import PretrainModule, num_workers
from graft.training.phase import Phase
from graft.training.sampling import seeded_order, worker_options

#: The label of a position that is not predicted (transformers' convention).
IGNORED = -100


class MaskedTexts:
    """Collate: tokenise a batch of texts (cut to ``max_length`` tokens) and mask it with
    transformers' ``DataCollatorForLanguageModeling``. With ``seed``, the masks come from a
    generator of their own (the same masks every time it is rebuilt); without, from torch's
    global generator, which the engine reseeds every epoch. Picklable, for loader workers."""

    def __init__(
        self, tokenizer: str, max_length: int, probability: float = 0.15, seed: int | None = None
    ):
        self.tokenizer_source = tokenizer
        self.max_length = max_length
        self.probability = probability
        self.seed = seed
        self._collator = None

    @property
    def collator(self):
        if self._collator is None:
            from transformers import AutoTokenizer, DataCollatorForLanguageModeling

            tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_source)
            self._collator = DataCollatorForLanguageModeling(
                tokenizer, mlm_probability=self.probability, seed=self.seed
            )
        return self._collator

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.collator.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            return_special_tokens_mask=True,
        )
        examples = [{key: encoded[key][i] for key in encoded} for i in range(len(texts))]
        return dict(self.collator(examples))

    def __getstate__(self):
        return {**self.__dict__, "_collator": None}


def masked_lm(backbone: Backbone, from_checkpoint: bool) -> tuple[nn.Module, bool]:
    """transformers' ``AutoModelForMaskedLM`` around ``backbone.model`` (the same module, so
    training it trains the backbone), and whether its head came from the checkpoint.

    ``from_checkpoint``: take the head from the backbone's source (its folder or hub id) when
    it has one; otherwise, and from scratch, the head is newly initialised.
    """
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as transformers_logging

    head_loaded = False
    if from_checkpoint:
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # the load report lists the new head
        try:
            model, info = AutoModelForMaskedLM.from_pretrained(
                backbone.preprocessing.tokenizer, output_loading_info=True
            )
        finally:
            transformers_logging.set_verbosity(verbosity)
        prefix = f"{model.base_model_prefix}."
        head_loaded = not any(not key.startswith(prefix) for key in info["missing_keys"])
    else:
        model = AutoModelForMaskedLM.from_config(backbone.model.config)
    setattr(model, model.base_model_prefix, backbone.model)
    model.tie_weights()  # the decoder shares the backbone's input embeddings
    return model, head_loaded


class MaskedLMModule(PretrainModule):
    """Trains a masked language model whose encoder is the backbone's."""

    def __init__(self, model: nn.Module, phase: Phase, weight_decay: float = 0.01):
        super().__init__(phase, weight_decay)
        self.mlm = model
        self.encoder_name = model.base_model_prefix
        heads = [
            name
            for name, child in model.named_children()
            if name != self.encoder_name and any(True for _ in child.parameters())
        ]
        # One head module (BERT's cls, RoBERTa's lm_head) runs on the chosen positions alone;
        # otherwise the model's own forward computes the loss.
        self.head_name = heads[0] if len(heads) == 1 else None

    @property
    def encoder(self) -> nn.Module:
        return getattr(self.mlm, self.encoder_name)

    def batch_loss(self, batch) -> tuple[torch.Tensor, int]:
        labels = batch["labels"]
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        chosen = labels != IGNORED
        count = int(chosen.sum())
        if self.head_name is None:
            return self.mlm(**inputs, labels=labels).loss, max(count, 1)
        hidden = self.encoder(**inputs).last_hidden_state
        if count == 0:  # texts so short that no token was chosen
            return hidden.sum() * 0.0, 1
        logits = getattr(self.mlm, self.head_name)(hidden[chosen])
        return F.cross_entropy(logits.float(), labels[chosen]), count

    def backbone_parameters(self) -> Iterable[nn.Parameter]:
        return self.encoder.parameters()

    def head_parameters(self) -> Iterable[nn.Parameter]:
        return self.mlm.parameters()  # the tied decoder is left to the backbone's group


def prepare(
    backbone: Backbone,
    train: LabelledData,
    val: LabelledData,
    config,
    phase: Phase,
) -> tuple[MaskedLMModule, DataLoader, DataLoader]:
    """The module and the loaders of masked-language-model pre-training; the validation
    batches are masked once, under the seed, so every epoch's loss is on the same masks."""
    model, head_loaded = masked_lm(backbone, from_checkpoint=config.init == "pretrained")
    module = MaskedLMModule(model, phase, weight_decay=config.weight_decay)
    module.head_source = "checkpoint" if head_loaded else "new"
    preprocessing = backbone.preprocessing
    masking = (preprocessing.tokenizer, preprocessing.max_length, config.mask_probability)
    workers = num_workers(config)
    train_loader = DataLoader(
        train.items,
        batch_size=config.batch_size,
        collate_fn=MaskedTexts(*masking),
        **seeded_order(len(train), config.seed),
        **worker_options(workers),
    )
    fixed = MaskedTexts(*masking, seed=config.seed)
    size = config.batch_size
    val_batches = [fixed(val.items[i : i + size]) for i in range(0, len(val), size)]
    return module, train_loader, DataLoader(val_batches, batch_size=None)
