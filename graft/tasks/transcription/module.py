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
    whole, processor = backbone.whole, processor_of(backbone.spec)
    silent = inputs.get("silent")
    if backbone.seq2seq:
        config = copy.deepcopy(whole.generation_config)
        config.max_length, config.max_new_tokens, config.num_beams = None, MAX_NEW_TOKENS, beams
        options: dict[str, Any] = {"generation_config": config}
        if prompt:
            options["prompt_ids"] = processor.get_prompt_ids(prompt, return_tensors="pt").to(
                inputs["input_features"].device
            )
        with quiet_transformers():
            ids = whole.generate(input_features=inputs["input_features"], **options)
        texts = processor.batch_decode(ids, skip_special_tokens=True)
        if prompt:  # the prompt comes back before the transcript
            texts = [t.split(prompt, 1)[-1] if prompt in t else t for t in texts]
    else:
        mask = inputs.get("attention_mask")
        logits = whole(input_values=inputs["input_values"], attention_mask=mask).logits
        texts = processor.batch_decode(logits.argmax(-1))
    texts = [t.strip() for t in texts]
    if silent is not None:
        texts = ["" if bool(s) else t for s, t in zip(silent.tolist(), texts, strict=True)]
    return texts


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
