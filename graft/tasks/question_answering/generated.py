"""Training a generative reader and answering with it (:mod:`graft.tasks.question_answering.
generative`).

A batch is each question as ``"question: ... context: ..."`` cut to the window (the
tokenizer's ``input_ids`` and ``attention_mask``), its place in the data (``example``) and,
labelled, its first reference answer as the decoder's labels; the targets also hold every
reference text (for the validation score). :class:`GenerativeModule` trains on the model's own
loss and logs the SQuAD F1 of greedily generated answers as ``val_score``. An answer is the
generated text, its score (the mean log-probability of its tokens) and no characters
(``start`` and ``end`` None: a generated answer need not be a span of the context).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torchmetrics import Metric

from graft.tasks.question_answering.batches import load_tokenizer
from graft.tasks.question_answering.squad import best_over, f1_score
from graft.training.module import TransferModule

log = logging.getLogger("graft")


def prompt(question: str, context: str) -> str:
    """T5's convention for reading comprehension."""
    return f"question: {question} context: {context}"


def warn_cut(tokenizer_source: str, items: list, max_length: int) -> int:
    """How many of ``items`` (question, context) are longer than the window, with a logged
    warning when some are (their contexts are cut)."""
    tokenizer = load_tokenizer(tokenizer_source)
    prompts = [prompt(question, context) for question, context in items]
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]] if prompts else []
    cut = sum(length > max_length for length in lengths)
    if cut:
        log.warning(
            "%d of %d questions with their contexts are longer than the generative reader's "
            "window of %d tokens: their contexts are cut (an answer past the cut is lost)",
            cut,
            len(lengths),
            max_length,
        )
    return cut


class GenerativeCollate:
    """``(inputs, targets)`` of a list of :class:`~graft.tasks.question_answering.batches.
    QuestionsDataset` items (see the module docstring); picklable."""

    def __init__(self, preprocessing: Any, max_answer_tokens: int):
        self.preprocessing, self.max_answer_tokens = preprocessing, max_answer_tokens

    def __call__(self, batch: list) -> tuple[dict, dict]:
        items, answers, indices = zip(*batch, strict=True)
        tokenizer = load_tokenizer(self.preprocessing.tokenizer)
        encoded = tokenizer(
            [prompt(question, context) for question, context in items],
            max_length=self.preprocessing.max_length,
            truncation=True,
            padding=True,
            return_tensors="pt",
        )
        inputs = {name: encoded[name] for name in ("input_ids", "attention_mask")}
        inputs["example"] = torch.tensor(indices, dtype=torch.long)
        references = [[text for text, _ in found or []] for found in answers]
        targets: dict[str, Any] = {"texts": references}
        if all(found is not None for found in answers):
            targets["labels"] = self.labels(
                tokenizer, [refs[0] if refs else "" for refs in references]
            )
        return inputs, targets

    def labels(self, tokenizer: Any, texts: list[str]) -> torch.Tensor:
        """Each answer's tokens ending with the end-of-sequence token, ``-100`` padding."""
        eos = tokenizer.eos_token_id
        rows = []
        for ids in tokenizer(texts)["input_ids"]:
            ids = list(ids)[: self.max_answer_tokens]
            if eos is not None and (not ids or ids[-1] != eos):
                ids = ids[: self.max_answer_tokens - 1] + [eos]
            rows.append(ids)
        table = torch.full((len(rows), max(1, max(map(len, rows)))), -100, dtype=torch.long)
        for row, ids in enumerate(rows):
            table[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return table


def generate(reader: Any, inputs: dict, max_new_tokens: int) -> dict:
    """Each question's greedily generated answer: ``{"example", "text", "score"}`` (the score
    is the mean log-probability of the answer's tokens)."""
    model = reader.model
    tokenizer = load_tokenizer(reader.preprocessing.tokenizer)
    found = model.generate(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        max_new_tokens=max_new_tokens,
        num_beams=1,
        do_sample=False,
        return_dict_in_generate=True,
        output_scores=True,
    )
    written = found.sequences[:, 1:]  # after the decoder's start token
    steps = model.compute_transition_scores(found.sequences, found.scores, normalize_logits=True)
    kept = (written[:, : steps.shape[1]] != tokenizer.pad_token_id).float()
    score = (steps.float().nan_to_num(0.0) * kept).sum(1) / kept.sum(1).clamp(min=1.0)
    texts = tokenizer.batch_decode(written, skip_special_tokens=True)
    return {"example": inputs["example"], "text": [t.strip() for t in texts], "score": score}


def join_generated(chunks: list[dict]) -> dict:
    """Answers of several batches as one, in the order of the questions."""
    example = torch.cat([chunk["example"] for chunk in chunks])
    score = torch.cat([chunk["score"] for chunk in chunks])
    texts = [text for chunk in chunks for text in chunk["text"]]
    order = torch.argsort(example).tolist()
    return {
        "example": example[order],
        "score": score[order],
        "text": [texts[i] for i in order],
    }


def generated_answers(outputs: dict) -> list[dict]:
    """Each question's answer: ``{"answer", "score", "start": None, "end": None}``."""
    return [
        {"answer": text, "score": float(score), "start": None, "end": None}
        for text, score in zip(outputs["text"], outputs["score"].tolist(), strict=True)
    ]


class GeneratedF1(Metric):
    """The mean SQuAD F1 of generated answers against their references."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, texts: list[str], references: list[list[str]]) -> None:
        for text, truths in zip(texts, references, strict=True):
            self.total += best_over(f1_score, text, truths)
            self.count += 1

    def compute(self) -> torch.Tensor:
        return self.total / self.count.clamp(min=1.0)


class GenerativeModule(TransferModule):
    """A TransferModule whose loss is the reader's own (teacher-forced cross-entropy of the
    answer tokens) and whose ``val_score`` is the F1 of greedily generated answers."""

    def model_loss(self, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
        model = self.backbone.model
        return model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels
        ).loss

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, targets = batch
        loss = self.model_loss(inputs, targets["labels"])
        shown = dict(on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train_loss", loss, batch_size=len(targets["texts"]), **shown)
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        inputs, targets = batch
        shown = dict(prog_bar=True, batch_size=len(targets["texts"]), add_dataloader_idx=False)
        self.log("val_loss", self.model_loss(inputs, targets["labels"]), sync_dist=True, **shown)
        found = generate(self.backbone, inputs, self.task.max_answer_length)
        self.val_score.update(found["text"], targets["texts"])
        self.log("val_score", self.val_score, **shown)

    def optimizer_groups(self) -> list[dict]:
        """TransferModule's groups, less empty ones (the head holds nothing)."""
        return [group for group in super().optimizer_groups() if group["params"]]
