"""Entity-level metrics of sequence labelling (NER), computed with seqeval.

An entity counts as found only when a predicted entity has exactly its tokens and its type
(CoNLL-2003's measure). Entities are read from the tags as the CoNLL shared tasks' official
``conlleval`` script reads them (seqeval's default mode, the one Hugging Face's ``seqeval``
metric reports): an ``I-X`` after ``O`` or after another type starts an entity. seqeval's
``mode="strict"`` would instead drop such ill-formed predicted entities; the two agree
whenever the predicted tags are valid IOB2, as the true tags from the readers always are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from seqeval.metrics import accuracy_score, classification_report
from seqeval.metrics.sequence_labeling import get_entities

AVERAGES = ("micro avg", "macro avg", "weighted avg")


def tagging_metrics(
    true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]
) -> dict:
    """Micro precision, recall and F1 over entities (exact span and type), macro-F1 over
    types, per-type precision, recall, F1, support (true entities) and predicted count, token
    accuracy, and ``type_confusion`` (see :func:`entity_confusion`). JSON-friendly."""
    true, predicted = _checked(true_tags, predicted_tags)
    confusion = entity_confusion(true, predicted)
    types = sorted(confusion["correct"])
    result = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "macro_f1": 0.0}
    per_type = {}
    if types:  # seqeval averages an empty list (a warning and NaN) when there is no entity
        report = classification_report(true, predicted, output_dict=True, zero_division=0)
        micro = report["micro avg"]
        result = {
            "precision": float(micro["precision"]),
            "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]),
            "macro_f1": float(report["macro avg"]["f1-score"]),
        }
        per_type = {
            kind: {
                "precision": float(report[kind]["precision"]),
                "recall": float(report[kind]["recall"]),
                "f1": float(report[kind]["f1-score"]),
                "support": int(report[kind]["support"]),
                "predicted": _predicted_count(confusion, kind),
            }
            for kind in types
        }
    return {
        **result,
        "token_accuracy": float(accuracy_score(true, predicted)),
        "num_sentences": len(true),
        "num_tokens": sum(map(len, true)),
        "num_entities": sum(entity["support"] for entity in per_type.values()),
        "num_predicted": sum(entity["predicted"] for entity in per_type.values()),
        "per_type": per_type,
        "type_confusion": confusion,
    }


def _checked(
    true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]
) -> tuple[list[list[str]], list[list[str]]]:
    if len(true_tags) != len(predicted_tags):
        raise ValueError(
            f"{len(true_tags)} sentences of true tags but {len(predicted_tags)} of predicted"
        )
    if not true_tags:
        raise ValueError("no sentences to evaluate")
    for i, (true, predicted) in enumerate(zip(true_tags, predicted_tags, strict=True)):
        if len(true) != len(predicted):
            raise ValueError(
                f"sentence {i}: {len(true)} true tags but {len(predicted)} predicted tags"
            )
    return [list(tags) for tags in true_tags], [list(tags) for tags in predicted_tags]


def entity_confusion(
    true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]
) -> dict:
    """Where each true and each predicted entity went, entities read as the metrics read them.

    Every true entity is ``correct`` (a predicted entity has its span and type), ``confused``
    (a predicted entity has its exact span but another type) or ``missed`` (no predicted
    entity has its span); every predicted entity is correct, confused, or ``spurious`` (no
    true entity has its span; wrong boundaries count as one missed and one spurious).
    Returns ``{"correct": {TYPE: n}, "missed": {TYPE: n}, "spurious": {TYPE: n},
    "confused": {TRUE_TYPE: {PREDICTED_TYPE: n}}}``, the first three over every type that
    occurs, ``confused`` listing only pairs that occur.
    """
    correct, missed, spurious = Counter(), Counter(), Counter()
    confused: dict[str, Counter] = {}
    types: set[str] = set()
    for true, predicted in zip(true_tags, predicted_tags, strict=True):
        true_spans = {(start, end): kind for kind, start, end in get_entities(list(true))}
        predicted_spans = {(start, end): kind for kind, start, end in get_entities(list(predicted))}
        types.update(true_spans.values(), predicted_spans.values())
        for span, kind in true_spans.items():
            guess = predicted_spans.get(span)
            if guess is None:
                missed[kind] += 1
            elif guess == kind:
                correct[kind] += 1
            else:
                confused.setdefault(kind, Counter())[guess] += 1
        for span, kind in predicted_spans.items():
            if span not in true_spans:
                spurious[kind] += 1
    types = sorted(types)
    return {
        "correct": {kind: correct[kind] for kind in types},
        "missed": {kind: missed[kind] for kind in types},
        "spurious": {kind: spurious[kind] for kind in types},
        "confused": {kind: dict(sorted(confused[kind].items())) for kind in sorted(confused)},
    }


def _predicted_count(confusion: dict, kind: str) -> int:
    as_other = sum(row.get(kind, 0) for row in confusion["confused"].values())
    return confusion["correct"][kind] + as_other + confusion["spurious"][kind]
