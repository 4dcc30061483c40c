"""Windows of long contexts: targets round-trip to the answer's characters, an answer at the end
of a long context is found across windows, and memory stays bounded."""

from __future__ import annotations

import pytest
import torch

from graft.backbones.catalogue import _minilm_path
from graft.errors import DataError
from graft.tasks.question_answering.answers import infer_windows, question_answers
from graft.tasks.question_answering.batches import QuestionsCollate, QuestionsDataset
from graft.tasks.question_answering.windows import encode_windows, span_targets


@pytest.fixture(scope="module")
def tokenizer():
    from graft.tasks.question_answering.batches import load_tokenizer

    return load_tokenizer(str(_minilm_path()))


def long_context(words: int = 1500) -> tuple[str, int]:
    filler = " ".join(f"word{i % 97}" for i in range(words))
    context = filler + ". The treasure is hidden under the old oak tree."
    return context, context.index("under the old oak tree")


def test_a_long_context_is_read_in_overlapping_windows_never_cut(tokenizer):
    context, start = long_context()
    windows = encode_windows(tokenizer, ["Where is the treasure?"], [context], 128, 32)
    assert len(windows.example) > 10
    covered = windows.offsets[..., 1].max()
    assert covered == len(context)  # the last character is in a window
    answer = [[("under the old oak tree", start)]]
    targets = span_targets(windows, answer)
    held = torch.nonzero(targets[:, 0] > 0)[:, 0]
    assert len(held) >= 1 and held[-1] == len(windows.example) - 1
    for row in held.tolist():  # each target maps back to the answer's characters exactly
        first, last = targets[row].tolist()
        offsets = windows.offsets[row]
        assert context[offsets[first, 0] : offsets[last, 1]] == "under the old oak tree"


def test_the_answer_at_the_end_is_found_across_windows(tokenizer):
    """A network that scores the answer's sub-tokens highest (only in the windows that hold
    them) leads to the answer, whichever window holds it."""
    from types import SimpleNamespace

    context, start = long_context()
    preprocessing = SimpleNamespace(tokenizer=str(_minilm_path()), max_length=128)
    collate = QuestionsCollate(preprocessing, stride=32)
    dataset = QuestionsDataset([("Where is the treasure?", context)], [[("x", 0)]])
    inputs, _ = collate([dataset[0]])
    end = start + len("under the old oak tree")
    seen = []

    def network(part):
        seen.append(len(part["input_ids"]))
        offsets = part["offsets"]
        logits = torch.zeros(*offsets.shape[:2], 2)
        logits[..., 0] += (offsets[..., 0] == start).float() * 10
        logits[..., 1] += (offsets[..., 1] == end).float() * 10
        return logits

    outputs = infer_windows(network, inputs, max_answer_length=30)
    assert max(seen) <= 32  # windows read in slices: bounded memory
    found = question_answers(outputs)
    assert found == [
        {"answer": "under the old oak tree", "score": 20.0, "start": start, "end": end}
    ]


def test_a_question_that_leaves_no_room_for_its_context_is_refused(tokenizer):
    with pytest.raises(DataError, match="sub-tokens"):
        encode_windows(tokenizer, ["why " * 100], ["a context"], 128, 32)
