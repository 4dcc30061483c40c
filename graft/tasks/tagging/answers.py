"""A tagging model's outputs and answers: word probabilities in input order, entities with
character spans, and the most confidently wrong entities of an evaluation.

The outputs of a batch (:func:`word_outputs`) are plain tensors, so they travel as any task's
outputs do (to the CPU, joined across batches by :func:`join_outputs`): ``probabilities``
``[B, W, T]`` of each word's tags, each word's character ``offsets`` ``[B, W, 2]``, the
sentence's text as code points ``characters`` ``[B, C]``, and its ``index`` in the inputs
(batches may come shortest first; :func:`join_outputs` restores the order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from graft.tasks.tagging.batches import at_words, text_of
from graft.tasks.tagging.decoding import decode, entities

#: Sentences shown as the most confidently wrong of an evaluation.
ERROR_EXAMPLES = 12
PADDING = {"probabilities": 0, "offsets": -1, "characters": -1}


def word_outputs(token_logits: torch.Tensor, inputs: dict[str, torch.Tensor]) -> dict:
    """The outputs of a batch from the tag logits of every sub-token ``[rows, length, T]``:
    each word's tag probabilities at its first sub-token (uniform for a word without one:
    no evidence either way), with the batch's offsets, texts and indices."""
    positions = inputs["word_position"]
    probabilities = torch.softmax(at_words(token_logits.float(), positions), dim=-1)
    uniform = torch.full_like(probabilities, 1.0 / probabilities.shape[-1])
    probabilities = torch.where((positions >= 0).unsqueeze(-1), probabilities, uniform)
    return {
        "probabilities": probabilities,
        "offsets": inputs["offsets"],
        "characters": inputs["characters"],
        "index": inputs["index"],
    }


def join_outputs(chunks: list[dict]) -> dict:
    """Batches of :func:`word_outputs` (on the CPU) as one, padded and in input order."""
    joined = {}
    for name, fill in PADDING.items():
        width = max(chunk[name].shape[1] for chunk in chunks)
        joined[name] = torch.cat([_pad(chunk[name], width, fill) for chunk in chunks])
    order = torch.argsort(torch.cat([chunk["index"] for chunk in chunks]))
    return {name: values[order] for name, values in joined.items()}


def _pad(values: torch.Tensor, width: int, fill: float) -> torch.Tensor:
    missing = width - values.shape[1]
    if not missing:
        return values
    shape = (values.shape[0], missing, *values.shape[2:])
    return torch.cat([values, torch.full(shape, fill, dtype=values.dtype)], dim=1)


def sentences(outputs: dict, tags: Sequence[str]) -> list[dict]:
    """Each input's text, word offsets, decoded IOB2 tags and their probabilities."""
    offsets = outputs["offsets"]
    counts = (offsets[:, :, 0] >= 0).sum(dim=1).tolist()
    decoded = decode(outputs["probabilities"], counts, tags)
    return [
        {
            "text": text_of(outputs["characters"][row]),
            "offsets": [tuple(pair) for pair in offsets[row, :count].tolist()],
            "tags": found,
            "scores": scores,
        }
        for row, (count, (found, scores)) in enumerate(zip(counts, decoded, strict=True))
    ]


def answers(outputs: dict, tags: Sequence[str]) -> list[list[dict]]:
    """Each input's entities (:func:`graft.tasks.tagging.decoding.entities`)."""
    return [
        entities(row["text"], row["offsets"], row["tags"], row["scores"])
        for row in sentences(outputs, tags)
    ]


def confident_errors(
    decoded: list[dict], true_tags: Sequence[Sequence[str]], lines: Sequence[str]
) -> list[dict]:
    """The sentences whose wrong predicted entities (a span or type no true entity has) have
    the highest scores, most confident first: text, origin, true and predicted entities
    (each predicted one marked ``correct`` or not)."""
    found = []
    for row, truth, line in zip(decoded, true_tags, lines, strict=True):
        predicted = entities(row["text"], row["offsets"], row["tags"], row["scores"])
        true = entities(row["text"], row["offsets"], truth, [1.0] * len(truth))
        wanted = {(e["start"], e["end"], e["label"]) for e in true}
        for entity in predicted:
            entity["correct"] = (entity["start"], entity["end"], entity["label"]) in wanted
        wrong = [e["score"] for e in predicted if not e["correct"]]
        if wrong:
            for entity in true:
                entity.pop("score")
            found.append(
                {"text": row["text"], "line": line, "true": true, "predicted": predicted},
            )
            found[-1]["worst"] = max(wrong)
    found.sort(key=lambda example: -example["worst"])
    return found[:ERROR_EXAMPLES]
