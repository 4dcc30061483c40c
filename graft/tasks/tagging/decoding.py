"""From word scores to IOB2 tags and entities: constrained decoding.

Taking each word's most probable tag on its own can give sequences IOB2 forbids (``O I-PER``,
``B-ORG I-PER``), which entity readers then guess at. graft decodes instead the most probable
*valid* sequence: the Viterbi path over the words' log-probabilities where an ``I-X`` may only
follow ``B-X`` or ``I-X`` (the transition constraints of Lample et al. 2016's CRF, "Neural
Architectures for Named Entity Recognition", with every allowed transition scored 0):

    tags* = argmax over valid y of  sum_i log p(y_i | word_i)

An entity's score is the mean probability of its words' decoded tags.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from graft.tasks.tagging.schemes import spans_from_tags

#: The score of a forbidden transition (finite, so that a sentence of one word still decodes).
FORBIDDEN = -1e4


def transition_rules(tags: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(start [T], transitions [T, T])``: 0 where IOB2 allows a tag first in a sentence or
    tag ``j`` after tag ``i``, :data:`FORBIDDEN` elsewhere."""
    size = len(tags)
    start = torch.zeros(size)
    transitions = torch.zeros(size, size)
    for j, tag in enumerate(tags):
        if not tag.startswith("I-"):
            continue
        start[j] = FORBIDDEN
        for i, before in enumerate(tags):
            if before[2:] != tag[2:] or before == "O":
                transitions[i, j] = FORBIDDEN
    return start, transitions


def viterbi(log_probs: torch.Tensor, mask: torch.Tensor, tags: Sequence[str]) -> torch.Tensor:
    """The best valid tag indices ``long[B, W]`` for word log-probabilities ``[B, W, T]``;
    ``mask`` ``bool[B, W]`` marks the words that count (others are skipped: they take the tag
    before them, and the path runs through them unchanged). Runs in NumPy: a few thousand
    operations on ``[B, T, T]`` arrays, each far too small to gain from torch's threads."""
    start, transitions = (rule.numpy() for rule in transition_rules(tags))
    scores = log_probs.detach().float().cpu().numpy()
    counted = mask.detach().cpu().numpy()
    batch, width, size = scores.shape
    if width == 0:
        return torch.zeros(batch, 0, dtype=torch.long, device=log_probs.device)
    score = scores[:, 0] + start
    keep = np.broadcast_to(np.arange(size), (batch, size))
    pointers = []
    for word in range(1, width):
        candidates = score[:, :, None] + transitions
        previous = candidates.argmax(axis=1)
        best = np.take_along_axis(candidates, previous[:, None, :], axis=1)[:, 0]
        here = counted[:, word, None]
        score = np.where(here, best + scores[:, word], score)
        pointers.append(np.where(here, previous, keep))
    last = score.argmax(axis=1)
    path = [last]
    for pointer in reversed(pointers):
        last = np.take_along_axis(pointer, last[:, None], axis=1)[:, 0]
        path.append(last)
    return torch.from_numpy(np.stack(path[::-1], axis=1)).to(log_probs.device)


def decode(probabilities: torch.Tensor, words: Sequence[int], tags: Sequence[str]) -> list:
    """Each sentence's IOB2 tags (its first ``words[i]`` words) and the probability of each
    chosen tag, from word probabilities ``[B, W, T]``."""
    width = probabilities.shape[1]
    counts = torch.as_tensor(list(words))
    mask = torch.arange(width).unsqueeze(0) < counts.unsqueeze(1)
    chosen = viterbi(probabilities.clamp_min(1e-12).log(), mask, tags)
    picked = probabilities.gather(2, chosen.unsqueeze(2)).squeeze(2)
    return [
        ([tags[i] for i in chosen[row, :n].tolist()], picked[row, :n].tolist())
        for row, n in enumerate(counts.tolist())
    ]


def entities(
    text: str, offsets: Sequence[tuple[int, int]], tags: Sequence[str], scores: Sequence[float]
) -> list[dict]:
    """The entities of one sentence's valid IOB2 ``tags``: ``{"text", "label", "start", "end",
    "score"}``, with character offsets into ``text`` (``end`` exclusive) and the mean
    probability of the entity's tags, rounded to 6 digits."""
    found = []
    for first, stop, label in spans_from_tags(tags):
        start, end = offsets[first][0], offsets[stop - 1][1]
        score = sum(scores[first:stop]) / (stop - first)
        found.append(
            {
                "text": text[start:end],
                "label": label,
                "start": start,
                "end": end,
                "score": round(float(score), 6),
            }
        )
    return found
