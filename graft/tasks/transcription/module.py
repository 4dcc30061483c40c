"""Training a speech model on the engine, and decoding it.

:class:`TranscriptionModule` is the engine's :class:`~graft.training.module.TransferModule`
(phases, optimiser groups, warm-up and cosine schedule, frozen parts in eval mode) whose
training step is the model's own loss with the transcripts as labels (Whisper's
cross-entropy of the next token; a CTC model's CTC loss), SpecAugment masking the spectrogram
while it trains. Each validation batch is decoded (:func:`transcribe`) and
:class:`WordAccuracy` logs ``1 - WER`` of the normalised texts as ``val_score``, by which every
phase keeps its best epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any

import torch
from torchmetrics import Metric

from graft.tasks.transcription.metrics import normalize_text
from graft.tasks.transcription.model import processor_of
from graft.training.module import TransferModule

#: Tokens Whisper writes for one clip at most.
MAX_NEW_TOKENS = 128


def transcribe(backbone: Any, inputs: dict, beams: int = 1, prompt: str | None = None) -> list[str]:
    """Each clip's transcript: Whisper's generation (greedy, or ``beams`` beams; ``prompt``:
    text the decoder reads as the previous context), a CTC model's best path; silence is an
    empty transcript."""
    return [text for text, _ in transcribe_words(backbone, inputs, beams, prompt, words=False)]


def transcribe_words(
    backbone: Any, inputs: dict, beams: int = 1, prompt: str | None = None, words: bool = True
) -> list[tuple[str, list[dict] | None]]:
    """Each clip's transcript (as :func:`transcribe`) with, when ``words``, its words and
    their times (:mod:`graft.tasks.transcription.words`; None where the model gives none,
    ``[]`` for silence). ``inputs["duration"]``, each clip's seconds, bounds the alignment
    (else the whole window)."""
    whole, processor = backbone.whole, processor_of(backbone.spec)
    if backbone.seq2seq:
        texts, timed = _generate(whole, processor, inputs, beams, prompt, words)
    else:
        texts, timed = _best_path(whole, processor, inputs, words)
    texts = [t.strip() for t in texts]
    timed = timed if timed is not None else [None] * len(texts)
    silent = inputs.get("silent")
    if silent is not None:
        for index, quiet in enumerate(silent.tolist()):
            if quiet:
                texts[index] = ""
                timed[index] = None if timed[index] is None else []
    return list(zip(texts, timed, strict=True))


def _generate(whole, processor, inputs: dict, beams: int, prompt: str | None, words: bool):
    """Whisper's transcripts of a batch, and their words when asked and the model has
    alignment heads (else None)."""
    from graft.tasks.transcription.words import alignment_heads, whisper_words

    features = inputs["input_features"]
    config = copy.deepcopy(whole.generation_config)
    config.max_length, config.max_new_tokens, config.num_beams = None, MAX_NEW_TOKENS, beams
    options: dict[str, Any] = {"generation_config": config}
    if prompt:
        options["prompt_ids"] = processor.get_prompt_ids(prompt, return_tensors="pt").to(
            features.device
        )
    timed = words and alignment_heads(whole) is not None
    if timed:  # the encoder once, for decoding and alignment alike
        options["encoder_outputs"] = whole.model.encoder(features)
    with quiet_transformers():
        ids = whole.generate(input_features=features, **options)
    texts = processor.batch_decode(ids, skip_special_tokens=True)
    if prompt:  # the prompt comes back before the transcript
        texts = [t.split(prompt, 1)[-1] if prompt in t else t for t in texts]
    if not timed:
        return texts, None
    encoded = options["encoder_outputs"].last_hidden_state
    frames = _frames(inputs, len(texts), features.shape[-1])
    return texts, whisper_words(whole, processor.tokenizer, encoded, ids.tolist(), frames)


def _best_path(whole, processor, inputs: dict, words: bool):
    """A CTC model's transcripts of a batch (the best path of every output frame, as the
    export decodes it), and their words when asked (None when the tokenizer gives no
    offsets)."""
    from graft.tasks.transcription.words import ctc_words

    mask = inputs.get("attention_mask")
    ids = whole(input_values=inputs["input_values"], attention_mask=mask).logits.argmax(-1)
    texts = processor.batch_decode(ids)
    return texts, (ctc_words(whole, processor.tokenizer, ids.tolist()) if words else None)


def _frames(inputs: dict, count: int, window: int) -> list[int]:
    """Each clip's 10 ms mel frames before the padding (``window``, the whole input, when
    ``inputs`` holds no ``duration``)."""
    duration = inputs.get("duration")
    if duration is None:
        return [window] * count
    return [min(window, math.ceil(float(seconds) * 100)) for seconds in duration.tolist()]


@contextlib.contextmanager
def quiet_transformers():
    """transformers' advice on generation arguments silenced (Whisper's own ``generate``
    passes the arguments it warns about)."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


class WordAccuracy(Metric):
    """``1 - WER`` of normalised hypotheses against references, summed over batches."""

    full_state_update = False

    def __init__(self, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self.add_state("errors", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("words", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, hypotheses: list[str], references: list[str]) -> None:
        import jiwer

        refs = [normalize_text(r, self.normalize) or "<empty>" for r in references]
        hyps = [normalize_text(h, self.normalize) for h in hypotheses]
        found = jiwer.process_words(refs, hyps)
        self.errors += found.substitutions + found.deletions + found.insertions
        self.words += found.hits + found.substitutions + found.deletions

    def compute(self) -> torch.Tensor:
        return 1.0 - self.errors / self.words.clamp(min=1.0)


class TranscriptionModule(TransferModule):
    """A TransferModule whose loss is the speech model's own (see the module docstring)."""

    def forward(self, inputs: dict) -> Any:
        return self.backbone(inputs)

    def model_loss(self, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
        whole = self.backbone.whole
        model_inputs = {k: v for k, v in inputs.items() if k != "silent"}
        if self.backbone.seq2seq:
            whole.model.training = self.training  # SpecAugment masks only while training
        return whole(**model_inputs, labels=labels).loss

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, targets = batch
        loss = self.model_loss(inputs, targets["labels"])
        size = len(targets["texts"])
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        inputs, targets = batch
        size = len(targets["texts"])
        shown = dict(prog_bar=True, batch_size=size, add_dataloader_idx=False)
        self.log("val_loss", self.model_loss(inputs, targets["labels"]), sync_dist=True, **shown)
        hypotheses = transcribe(self.backbone, inputs, beams=1)
        self.val_score.update(hypotheses, targets["texts"])
        self.log("val_score", self.val_score, **shown)

    def optimizer_groups(self) -> list[dict]:
        """TransferModule's groups, less empty ones."""
        return [group for group in super().optimizer_groups() if group["params"]]
