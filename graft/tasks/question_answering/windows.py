"""Questions and contexts as the encoder's windows, and spans found in them, as Transformers'
``run_qa.py`` prepares and post-processes them.

A question and its context are one row of the encoder when they fit its window; a longer
context is cut into overlapping windows (each holding the question and a part of the context,
``doc_stride`` sub-tokens shared with the next), never truncated. The fast tokenizer's offset
mapping gives each context sub-token its characters, so a span of sub-tokens is a span of the
context's characters. Training targets are the answer's first and last sub-tokens in each
window that holds the whole answer, and the first (``[CLS]``) sub-token in a window that does
not. A window's best answer is the span of highest start plus end logit among the
:data:`N_BEST` best starts and ends, with its end not before its start and at most
``max_answer_length`` sub-tokens long (``postprocess_qa_predictions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from graft.errors import DataError

#: How many of a window's best starts and ends are paired into candidate spans.
N_BEST = 20
#: The sub-tokens of the window given to the question at most; a longer question is refused.
MAX_QUESTION_SHARE = 0.5


@dataclass
class Windows:
    """The windows of a batch of questions.

    Attributes:
        inputs: the tokenizer's tensors, one row per window.
        offsets: ``long[windows, length, 2]``: each context sub-token's characters, ``-1``
            for the question's sub-tokens, special ones and padding.
        example: ``long[windows]``: the question (its row in the batch) each window reads.
    """

    inputs: dict[str, torch.Tensor]
    offsets: torch.Tensor
    example: torch.Tensor


def encode_windows(
    tokenizer: Any, questions: list[str], contexts: list[str], max_length: int, stride: int
) -> Windows:
    """The windows of ``questions`` about ``contexts`` (see the module docstring)."""
    limit = int(max_length * MAX_QUESTION_SHARE)
    for question in questions:
        length = len(tokenizer(question, add_special_tokens=False)["input_ids"])
        if length > limit:
            raise DataError(
                f"the question {question[:60]!r} is {length} sub-tokens; at most {limit} leave "
                f"room for its context in the window of {max_length}"
            )
    stride = min(stride, max_length // 4)
    encoded = tokenizer(
        questions,
        contexts,
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="longest",
        return_tensors="pt",
    )
    offsets = encoded.pop("offset_mapping").long()
    example = encoded.pop("overflow_to_sample_mapping").long()
    for row in range(len(example)):
        in_context = torch.tensor([s == 1 for s in encoded.sequence_ids(row)])
        offsets[row][~in_context] = -1
    return Windows(dict(encoded), offsets, example)


def span_targets(windows: Windows, answers: list[list[tuple[str, int]]]) -> torch.Tensor:
    """``long[windows, 2]``: the first and last sub-tokens of each window's question's first
    answer when the window holds it whole, else ``(0, 0)`` (the ``[CLS]`` sub-token)."""
    targets = torch.zeros(len(windows.example), 2, dtype=torch.long)
    for row, index in enumerate(windows.example.tolist()):
        if not answers[index]:
            continue
        text, start = answers[index][0]
        end = start + len(text)
        offsets = windows.offsets[row]
        inside = offsets[:, 0] >= 0
        if not inside.any():
            continue
        first, last = offsets[inside][0, 0], offsets[inside][-1, 1]
        if start < first or end > last:
            continue
        starts = torch.nonzero(inside & (offsets[:, 1] > start))  # the first one ending after
        ends = torch.nonzero(inside & (offsets[:, 0] < end))  # the last one starting before
        if len(starts) and len(ends):
            targets[row] = torch.tensor([starts[0, 0], ends[-1, 0]])
    return targets


def best_spans(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    offsets: torch.Tensor,
    max_answer_length: int,
) -> dict[str, torch.Tensor]:
    """Each window's best answer: ``score`` (its start plus end logit, ``-inf`` when no span
    is valid), ``start`` and ``end`` (its characters in the context, ``-1`` without), and
    ``null`` (the ``[CLS]`` score, SQuAD v2.0's "no answer")."""
    rows, length = start_logits.shape
    valid = offsets[..., 0] >= 0
    low = torch.finfo(start_logits.dtype).min
    starts = start_logits.masked_fill(~valid, low)
    ends = end_logits.masked_fill(~valid, low)
    k = min(N_BEST, length)
    top_start, start_at = starts.topk(k, dim=1)
    top_end, end_at = ends.topk(k, dim=1)
    scores = top_start[:, :, None] + top_end[:, None, :]
    span = end_at[:, None, :] - start_at[:, :, None]
    both = valid.gather(1, start_at)[:, :, None] & valid.gather(1, end_at)[:, None, :]
    allowed = both & (span >= 0) & (span < max_answer_length)
    scores = scores.masked_fill(~allowed, float("-inf")).reshape(rows, -1)
    score, pair = scores.max(dim=1)
    first = start_at.gather(1, (pair // k)[:, None])[:, 0]
    last = end_at.gather(1, (pair % k)[:, None])[:, 0]
    row = torch.arange(rows)
    found = torch.isfinite(score)
    start = torch.where(found, offsets[row, first, 0], -1)
    end = torch.where(found, offsets[row, last, 1], -1)
    return {
        "score": score,
        "start": start,
        "end": end,
        "null": start_logits[:, 0] + end_logits[:, 0],
    }
