"""A question-answering model's answers: each window's best span, then each question's best
across its windows.

:func:`infer_windows` reads a batch's windows :data:`WINDOW_BATCH` at a time (a long
document's hundreds of windows never go through the encoder at once) and keeps of each window
only its best span (score, characters, text) and its ``[CLS]`` score, so what is kept of a
question grows with its windows, not with their sub-tokens. :func:`question_answers` picks
each question's answer: its best span over all its windows, or, for a model trained with
unanswerable questions, the empty answer when the lowest ``[CLS]`` score beats it (run_qa.py's
``version_2_with_negative`` rule at threshold 0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from graft.tasks.question_answering.module import window_answers

#: Windows the encoder reads at once when answering.
WINDOW_BATCH = 32
#: The tensors of a batch with one row per window (sliced together).
_PER_WINDOW = ("input_ids", "attention_mask", "token_type_ids", "offsets", "row", "example")


def infer_windows(network: Callable, inputs: dict, max_answer_length: int) -> dict:
    """Each window's best answer (``example``, ``score``, ``start``, ``end``, ``null``,
    ``text``), the windows read by ``network`` (encoder and head) in slices."""
    windows = len(inputs["example"])
    parts = []
    for at in range(0, windows, WINDOW_BATCH):
        part = {
            name: inputs[name][at : at + WINDOW_BATCH] for name in _PER_WINDOW if name in inputs
        }
        part["characters"] = inputs["characters"]
        parts.append(window_answers(network(part), part, max_answer_length))
    return join_windows(parts)


def join_windows(chunks: list[dict]) -> dict:
    """Windows' answers of several batches as one."""
    joined = {
        name: torch.cat([chunk[name] for chunk in chunks])
        for name in ("example", "score", "start", "end", "null")
    }
    joined["text"] = [text for chunk in chunks for text in chunk["text"]]
    return joined


def question_answers(outputs: dict, negatives: bool = False) -> list[dict]:
    """Each question's answer, in the order of the questions: ``{"answer", "score", "start",
    "end"}`` (characters of its context; an empty answer has ``start`` and ``end`` -1 and, as
    its score, the ``[CLS]`` score)."""
    example = outputs["example"]
    count = int(example.max()) + 1 if len(example) else 0
    score = outputs["score"]
    answers = []
    for index in range(count):
        rows = torch.nonzero(example == index)[:, 0]
        best = int(rows[score[rows].argmax()])
        null = float(outputs["null"][rows].min())
        if (negatives and null > float(score[best])) or not torch.isfinite(score[best]):
            answers.append({"answer": "", "score": null, "start": -1, "end": -1})
            continue
        answers.append(
            {
                "answer": outputs["text"][best],
                "score": float(score[best]),
                "start": int(outputs["start"][best]),
                "end": int(outputs["end"][best]),
            }
        )
    return answers
