"""Training a span head: the one LightningModule, scoring answer spans in windows.

:class:`SpanModule` is :class:`~graft.training.module.TransferModule` (phases, optimiser
groups, layer decay and the warm-up and cosine schedule are all its) whose ``forward`` returns
a start and an end logit per sub-token of each window (:class:`SpanHead` on the encoder's last
hidden states). The loss is the mean of the cross-entropies of the answer's start and end
sub-tokens, as ``AutoModelForQuestionAnswering``'s; the validation score is the SQuAD F1 of
each question's best answer across its windows (:class:`SquadF1`), by which every phase keeps
its epoch.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import Metric

from graft.tasks.question_answering.batches import text_of
from graft.tasks.question_answering.squad import best_over, f1_score
from graft.tasks.question_answering.windows import best_spans
from graft.training.module import TransferModule


class SpanHead(nn.Module):
    """A start and an end logit for every sub-token: ``float[windows, length, 2]``."""

    def __init__(self, feature_dim: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.qa_outputs = nn.Linear(feature_dim, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.qa_outputs(self.dropout(hidden))


def span_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean of the start and end cross-entropies."""
    import torch.nn.functional as F

    start = F.cross_entropy(logits[..., 0].float(), targets[:, 0])
    end = F.cross_entropy(logits[..., 1].float(), targets[:, 1])
    return (start + end) / 2


def window_answers(logits: torch.Tensor, inputs: dict, max_answer_length: int) -> dict:
    """Each window's best answer (:func:`~graft.tasks.question_answering.windows.best_spans`)
    with its question's index (``example``) and its text."""
    found = best_spans(
        logits[..., 0].float(), logits[..., 1].float(), inputs["offsets"], max_answer_length
    )
    codes = inputs["characters"]
    rows = inputs["row"].tolist()
    found["text"] = [
        text_of(codes[row], start, end) if start >= 0 else ""
        for row, start, end in zip(
            rows, found["start"].tolist(), found["end"].tolist(), strict=True
        )
    ]
    found["example"] = inputs["example"]
    return found


class SquadF1(Metric):
    """The SQuAD F1 of each question's best answer across its windows (with ``negatives``,
    the empty answer when the ``[CLS]`` score beats it, as SQuAD v2.0), averaged over
    questions."""

    full_state_update = False

    def __init__(self, max_answer_length: int, negatives: bool = False):
        super().__init__()
        self.max_answer_length, self.negatives = max_answer_length, negatives
        for name in ("example", "score", "null", "f1", "empty_f1"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, logits: torch.Tensor, inputs: dict) -> None:
        found = window_answers(logits, inputs, self.max_answer_length)
        codes, gold = inputs["characters"], inputs["gold"]
        f1, empty = [], []
        for window, row in enumerate(inputs["row"].tolist()):
            truths = [text_of(codes[row], s, e) for s, e in gold[window].tolist() if s >= 0]
            f1.append(best_over(f1_score, found["text"][window], truths))
            empty.append(float(not truths))
        self.example.append(found["example"])
        self.score.append(found["score"])
        self.null.append(found["null"])
        self.f1.append(torch.tensor(f1))
        self.empty_f1.append(torch.tensor(empty))

    def compute(self) -> torch.Tensor:
        if not self.example:
            return torch.tensor(0.0)
        example, score, null, f1, empty = (
            torch.cat(state) if isinstance(state, list) else state
            for state in (self.example, self.score, self.null, self.f1, self.empty_f1)
        )
        total, questions = 0.0, example.unique()
        for index in questions:
            mine = example == index
            best = score[mine].argmax()
            answered = f1[mine][best]
            if self.negatives and null[mine].min() > score[mine][best]:
                answered = empty[mine][0]
            total += float(answered)
        return torch.tensor(total / len(questions))


class SpanModule(TransferModule):
    """A TransferModule whose outputs are start and end logits ``[windows, length, 2]``."""

    def validation_step(self, batch, batch_index: int) -> None:
        inputs, targets = batch
        logits = self(inputs)
        shown = dict(prog_bar=True, batch_size=len(targets), add_dataloader_idx=False)
        self.log("val_loss", span_loss(logits, targets), **shown)
        self.val_score.update(logits, inputs)
        self.log("val_score", self.val_score, **shown)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, train: bool) -> torch.Tensor:
        return span_loss(outputs, targets)
