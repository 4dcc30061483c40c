"""The report's sections (and the command line's tables) of a tagging run: precision, recall
and F1 of each entity type, the confusion between entity types, and the sentences with the
most confidently wrong entities, their entities highlighted in the text (every piece of text
escaped: a sentence is data, never markup)."""

from __future__ import annotations

from graft.report.html import escape as _e
from graft.report.html import number as _number
from graft.report.html import table_section
from graft.tasks.base import MetricsTable

#: Row and column of the type-confusion table for "no entity there".
NONE = "(none)"
#: Highlight colours of a correct predicted entity, a wrong one, and a true one.
COLOURS = {"correct": "#d4edda", "wrong": "#f8d7da", "true": "#dbe7fb"}


def per_type_table(metrics: dict, title: str) -> MetricsTable:
    """Precision, recall, F1, true and predicted entities of each type, with the micro
    figures and token accuracy in the title."""
    summary = (
        f"entity F1 {metrics['f1']:.4f} (precision {metrics['precision']:.4f}, recall "
        f"{metrics['recall']:.4f}), token accuracy {metrics['token_accuracy']:.4f} "
        f"({metrics['num_sentences']} sentences, {metrics['num_entities']} entities)"
    )
    table = MetricsTable(
        f"{title}: {summary}",
        ["entity type", "precision", "recall", "F1", "true", "predicted"],
        left=("entity type",),
    )
    for kind, row in metrics["per_type"].items():
        table.rows.append(
            [kind]
            + [f"{row[k]:.3f}" for k in ("precision", "recall", "f1")]
            + [str(row["support"]), str(row["predicted"])]
        )
    return table


def confusion_table(confusion: dict, title: str) -> MetricsTable:
    """Where the true entities went: rows are true types (and :data:`NONE`: predicted
    entities with no true entity at their span), columns predicted types (and :data:`NONE`:
    missed); a wrong boundary counts as one missed and one spurious entity."""
    types = list(confusion["correct"])
    table = MetricsTable(
        f"{title}: entities by true type (rows) and predicted type (columns)",
        ["true \\ predicted", *types, NONE],
        left=("true \\ predicted",),
    )
    for kind in types:
        cells = [
            confusion["correct"][kind]
            if guess == kind
            else confusion["confused"].get(kind, {}).get(guess, 0)
            for guess in types
        ]
        table.rows.append([kind, *map(str, cells), str(confusion["missed"][kind])])
    table.rows.append([NONE, *(str(confusion["spurious"][kind]) for kind in types), ""])
    return table


def tagging_sections(values: dict, split: str) -> list[str]:
    """The sections of one split's tagging metrics."""
    if "per_type" not in values:
        return []
    sections = [table_section(per_type_table(values, split), "Entity types")]
    if values.get("type_confusion", {}).get("correct"):
        confusion = confusion_table(values["type_confusion"], split)
        sections.append(table_section(confusion, "Confusion"))
    sections.append(_errors(values.get("confident_errors", []), split))
    return sections


def highlighted(text: str, entities: list[dict], colour_of) -> str:
    """``text`` as escaped HTML with each entity (character spans, sorted, not overlapping)
    in a ``<mark>`` of ``colour_of(entity)``, its type (and score) after it."""
    pieces, at = [], 0
    for entity in entities:
        start, end = entity["start"], entity["end"]
        score = f" {_number(entity['score'])}" if "score" in entity else ""
        pieces.append(_e(text[at:start]))
        pieces.append(
            f"<mark style='background:{colour_of(entity)}'>{_e(text[start:end])}"
            f"<sup>{_e(entity['label'])}{_e(score)}</sup></mark>"
        )
        at = end
    pieces.append(_e(text[at:]))
    return "".join(pieces)


def _errors(examples: list[dict], split: str) -> str:
    if not examples:
        return ""
    items = []
    for example in examples:
        predicted = highlighted(
            example["text"],
            example["predicted"],
            lambda e: COLOURS["correct"] if e["correct"] else COLOURS["wrong"],
        )
        true = highlighted(example["text"], example["true"], lambda e: COLOURS["true"])
        items.append(
            f"<li><p class='muted'>{_e(example['line'])}</p><p>predicted: {predicted}</p>"
            f"<p>true: {true}</p></li>"
        )
    legend = (
        f"<mark style='background:{COLOURS['wrong']}'>wrong</mark> and "
        f"<mark style='background:{COLOURS['correct']}'>right</mark> predicted entities with "
        f"their scores; <mark style='background:{COLOURS['true']}'>true</mark> entities"
    )
    return (
        f"<h2>Most confidently wrong entities ({_e(split)})</h2><p class='muted'>{legend}</p>"
        f"<ol>{''.join(items)}</ol>"
    )
