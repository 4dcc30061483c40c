"""Entity-level NER metrics: a hand count, seqeval's own scores on perturbed CoNLL-2003
predictions, where each entity went, and the conlleval reading of ill-formed predictions."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from graft.tasks.tagging import read_tagged, spans_from_tags
from graft.tasks.tagging.metrics import tagging_metrics
from tests.conftest import SHARED

CONLL = SHARED / "conll2003"
TYPES = ["LOC", "MISC", "ORG", "PER"]

TRUE = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["B-ORG", "I-ORG", "O", "B-MISC", "I-MISC"],
    ["O", "B-PER", "O", "O"],
]
PREDICTED = [
    ["B-PER", "I-PER", "O", "B-ORG", "O"],  # PER right; the LOC typed ORG
    ["B-ORG", "O", "O", "B-MISC", "I-MISC"],  # ORG cut short: one missed, one spurious
    ["O", "B-PER", "O", "B-LOC"],  # PER right; a spurious LOC
]


def test_hand_counted_example():
    metrics = tagging_metrics(TRUE, PREDICTED)
    # 5 true entities, 6 predicted, 3 right (PER twice, MISC)
    assert metrics["precision"] == pytest.approx(3 / 6)
    assert metrics["recall"] == pytest.approx(3 / 5)
    assert metrics["f1"] == pytest.approx(2 * 0.5 * 0.6 / 1.1)
    assert metrics["macro_f1"] == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert metrics["token_accuracy"] == pytest.approx(11 / 14)
    assert (metrics["num_sentences"], metrics["num_tokens"]) == (3, 14)
    assert (metrics["num_entities"], metrics["num_predicted"]) == (5, 6)
    assert metrics["per_type"]["PER"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 2,
        "predicted": 2,
    }
    assert metrics["per_type"]["ORG"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
        "predicted": 2,
    }
    assert metrics["per_type"]["LOC"]["predicted"] == 1
    assert metrics["type_confusion"] == {
        "correct": {"LOC": 0, "MISC": 1, "ORG": 0, "PER": 2},
        "missed": {"LOC": 0, "MISC": 0, "ORG": 1, "PER": 0},
        "spurious": {"LOC": 1, "MISC": 0, "ORG": 1, "PER": 0},
        "confused": {"LOC": {"ORG": 1}},
    }
    assert json.loads(json.dumps(metrics)) == metrics


def perturb(true_tags: list[list[str]]) -> tuple[list[list[str]], Counter]:
    """Deterministic errors over the entities in order: every 7th dropped, every 5th other
    given the next type, every 6th other with its boundary moved (cut or grown by a token)."""
    predicted = [list(tags) for tags in true_tags]
    applied: Counter = Counter()
    count = 0
    for tags, out in zip(true_tags, predicted, strict=True):
        for start, end, kind in spans_from_tags(tags):
            count += 1
            if count % 7 == 0:
                out[start:end] = ["O"] * (end - start)
                applied["dropped", kind] += 1
            elif count % 5 == 0:
                new = TYPES[(TYPES.index(kind) + 1) % len(TYPES)]
                out[start:end] = [f"B-{new}"] + [f"I-{new}"] * (end - start - 1)
                applied["retyped", kind, new] += 1
            elif count % 6 == 0 and end - start > 1:
                out[end - 1] = "O"
                applied["moved", kind] += 1
            elif count % 6 == 0 and end < len(tags) and tags[end] == "O":
                out[end] = f"I-{kind}"
                applied["moved", kind] += 1
    return predicted, applied


def test_perturbed_conll_predictions_match_seqeval_and_the_perturbation():
    if not (CONLL / "valid.txt").is_file():
        pytest.skip(f"{CONLL} is missing")
    true = read_tagged(CONLL / "valid.txt").tags
    predicted, applied = perturb(true)
    metrics = tagging_metrics(true, predicted)

    assert metrics["precision"] == pytest.approx(precision_score(true, predicted))
    assert metrics["recall"] == pytest.approx(recall_score(true, predicted))
    assert metrics["f1"] == pytest.approx(f1_score(true, predicted))
    report = classification_report(true, predicted, output_dict=True)
    for kind in TYPES:
        ours, theirs = metrics["per_type"][kind], report[kind]
        assert ours["precision"] == pytest.approx(theirs["precision"])
        assert ours["recall"] == pytest.approx(theirs["recall"])
        assert ours["f1"] == pytest.approx(theirs["f1-score"])
        assert ours["support"] == theirs["support"]
    assert metrics["macro_f1"] == pytest.approx(report["macro avg"]["f1-score"])

    # the same figures counted from the perturbation itself
    total = 5942  # valid.txt's entities (README: B- counts 1,842 + 1,837 + 1,341 + 922)
    dropped = sum(n for key, n in applied.items() if key[0] == "dropped")
    retyped = sum(n for key, n in applied.items() if key[0] == "retyped")
    moved = sum(n for key, n in applied.items() if key[0] == "moved")
    assert dropped > 500 and retyped > 500 and moved > 300
    right = total - dropped - retyped - moved
    assert metrics["num_entities"] == total and metrics["num_predicted"] == total - dropped
    assert metrics["precision"] == pytest.approx(right / (total - dropped))
    assert metrics["recall"] == pytest.approx(right / total)
    confusion = metrics["type_confusion"]
    expected: dict[str, dict[str, int]] = {}
    for (what, kind, *new), n in applied.items():
        if what == "retyped":
            expected.setdefault(kind, {})[new[0]] = n
    assert confusion["confused"] == expected and len(expected) == 4
    for kind in TYPES:
        assert confusion["missed"][kind] == applied["dropped", kind] + applied["moved", kind]
        assert confusion["spurious"][kind] == applied["moved", kind]
    changed = sum(
        t != p for ts, ps in zip(true, predicted, strict=True) for t, p in zip(ts, ps, strict=True)
    )
    assert metrics["token_accuracy"] == pytest.approx(1 - changed / metrics["num_tokens"])


def test_ill_formed_predictions_are_read_as_conlleval_reads_them():
    true = [["B-PER", "I-PER", "O", "B-LOC"]]
    predicted = [["I-PER", "I-PER", "O", "I-LOC"]]  # entities opened with I-
    metrics = tagging_metrics(true, predicted)
    assert metrics["f1"] == 1.0 and metrics["type_confusion"]["spurious"]["PER"] == 0
    assert f1_score(true, predicted, mode="strict", scheme=IOB2) == 0.0  # what strict would say


def test_no_entities_anywhere_scores_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = tagging_metrics([["O", "O"], ["O"]], [["O", "O"], ["O"]])
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == (0.0, 0.0, 0.0)
    assert metrics["token_accuracy"] == 1.0 and metrics["per_type"] == {}
    only_predicted = tagging_metrics([["O", "O"]], [["B-PER", "O"]])
    assert only_predicted["per_type"]["PER"]["support"] == 0
    assert only_predicted["type_confusion"]["spurious"] == {"PER": 1}


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="2 sentences of true tags but 1 of predicted"):
        tagging_metrics([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 1: 2 true tags but 1 predicted"):
        tagging_metrics([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="no sentences"):
        tagging_metrics([], [])
