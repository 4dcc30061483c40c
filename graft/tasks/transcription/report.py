"""Where a speech model goes wrong, in the report: the word error rate before and after the
fit (the pretrained model scored on validation by the guard, beside the fitted model, overall
and per speaker), each speaker's error rates, the worst utterances with reference and
hypothesis aligned word by word (jiwer's alignment; substitutions, deletions and insertions
marked; every word escaped: a transcript is data, never markup), and how texts were
normalised before they were scored."""

from __future__ import annotations

from graft.report.html import escape as _e
from graft.report.html import table_section
from graft.tasks.base import MetricsTable

#: How each operation of an alignment is drawn: the tag (on the reference word, the
#: hypothesis word) and its background.
MARKS = {
    "substitute": ("mark", "mark", "#fde2a7", "substitution"),
    "delete": ("del", None, "#f8d7da", "deletion"),
    "insert": (None, "ins", "#d4edda", "insertion"),
}
#: What a position with no word on one side shows.
GAP = "—"
#: One aligned position: its reference word above its hypothesis word.
CELL = "<span style='display:inline-block;margin:0 0.4em 0.3em 0;text-align:center'>"
#: A text shown normalised in the section on scoring.
EXAMPLE = "Mr. Smith said: \"It's twenty-five past four, isn't it?\""


def transcription_sections(values: dict, split: str) -> list[str]:
    """The report's sections of one split's transcription metrics."""
    sections = []
    speakers = values.get("per_speaker") or {}
    if speakers and not (split == "val" and values.get("pretrained")):  # shown before/after
        sections.append(table_section(speaker_table(speakers, split), f"Per speaker ({split})"))
    if values.get("worst"):
        sections.append(worst_section(values["worst"], split))
    if "normalized" in values:
        sections.append(scoring_section(bool(values["normalized"])))
    return sections


def _change(before: float, after: float) -> str:
    return f"{after - before:+.4f}"


def before_after_sections(record: dict) -> list[str]:
    """WER and CER of the pretrained and the fitted model on the same clips, and each
    speaker's WER (the speakers whose WER rose first)."""
    split, before, after = record.get("split", "val"), record["pretrained"], record["fitted"]
    overall = MetricsTable(
        f"the pretrained model scored as it is and the fitted model, on the same {split} clips "
        f"({after['utterances']} utterances); the learning curves' validation score is word "
        "accuracy, 1 - WER",
        ["metric", "pretrained", "fitted", "change"],
        left=("metric",),
    )
    for name in ("wer", "cer"):
        row = [name.upper(), f"{before[name]:.4f}", f"{after[name]:.4f}"]
        overall.rows.append([*row, _change(before[name], after[name])])
    sections = [table_section(overall, f"Word error rate before and after ({split})")]
    speakers_before = before.get("per_speaker") or {}
    speakers_after = after.get("per_speaker") or {}
    shared = [s for s in speakers_after if s in speakers_before]
    if shared:
        table = MetricsTable(
            f"WER of each {split} speaker, before and after (the largest rise first)",
            ["speaker", "utterances", "pretrained WER", "fitted WER", "change"],
            left=("speaker",),
        )
        rise = {s: speakers_after[s]["wer"] - speakers_before[s]["wer"] for s in shared}
        for speaker in sorted(shared, key=lambda s: (-rise[s], s)):
            was, now = speakers_before[speaker]["wer"], speakers_after[speaker]["wer"]
            count = str(speakers_after[speaker]["utterances"])
            table.rows.append([speaker, count, f"{was:.4f}", f"{now:.4f}", _change(was, now)])
        sections.append(table_section(table, f"Per speaker before and after ({split})"))
    return sections


def speaker_table(speakers: dict[str, dict], split: str) -> MetricsTable:
    """Each speaker's WER, CER and utterances, the highest WER first."""
    table = MetricsTable(
        f"error rates of each {split} speaker (the highest WER first)",
        ["speaker", "WER", "CER", "utterances"],
        left=("speaker",),
    )
    for speaker, row in sorted(speakers.items(), key=lambda item: (-item[1]["wer"], item[0])):
        table.rows.append(
            [speaker, f"{row['wer']:.4f}", f"{row['cer']:.4f}", str(row["utterances"])]
        )
    return table


def aligned_html(reference: str, hypothesis: str) -> tuple[str, dict[str, int]]:
    """``reference`` above ``hypothesis``, aligned word by word
    (:func:`~graft.tasks.transcription.metrics.aligned_words`): substitutions in ``<mark>``,
    deleted reference words in ``<del>``, inserted hypothesis words in ``<ins>``, each with a
    class and a title naming it; and the count of each operation."""
    from graft.tasks.transcription.metrics import aligned_words

    counts = {"substitute": 0, "delete": 0, "insert": 0}
    cells = [f"{CELL}<span class='muted'>ref</span><br><span class='muted'>hyp</span></span>"]
    for operation, ref, hyp in aligned_words(reference, hypothesis):
        if operation == "equal":
            words = [_e(ref), _e(hyp)]
        else:
            counts[operation] += 1
            ref_tag, hyp_tag, colour, name = MARKS[operation]
            words = [_word(ref, ref_tag, colour, name), _word(hyp, hyp_tag, colour, name)]
        cells.append(f"{CELL}{words[0]}<br>{words[1]}</span>")
    return f"<div style='line-height:1.6'>{''.join(cells)}</div>", counts


def _word(word: str, tag: str | None, colour: str, name: str) -> str:
    if tag is None:
        return f"<span class='muted'>{GAP}</span>"
    short = {"substitution": "sub", "deletion": "del", "insertion": "ins"}[name]
    return f"<{tag} class='{short}' title='{name}' style='background:{colour}'>{_e(word)}</{tag}>"


def worst_section(examples: list[dict], split: str) -> str:
    """The worst utterances, each aligned (:func:`aligned_html`), with its clip, speaker and
    WER, and the texts as written when normalising changed them."""
    items = []
    for example in examples:
        aligned, counts = aligned_html(example["reference"], example["hypothesis"])
        where = " ".join(
            f"{label} {_e(example[key])}"
            for key, label in (("clip", "clip"), ("speaker", "speaker"))
            if example.get(key)
        )
        tally = ", ".join(
            f"{count} {MARKS[operation][3]}{'' if count == 1 else 's'}"
            for operation, count in counts.items()
            if count
        )
        written = ""
        if "reference_text" in example:
            written = (
                f"<p class='muted'>as written: {_e(example['reference_text'])} | "
                f"heard: {_e(example['transcript'] or '(nothing)')}</p>"
            )
        items.append(
            f"<li><p><b>WER {example['wer']:.2f}</b> {where} ({_e(tally or 'no errors')})</p>"
            f"{aligned}{written}</li>"
        )
    legend = " ".join(
        _word(name, tag or hyp_tag, colour, name) for tag, hyp_tag, colour, name in MARKS.values()
    )
    return (
        f"<h2>Worst utterances ({_e(split)})</h2><p>reference (ref) above hypothesis (hyp), "
        f"as scored; {legend}</p><ol>{''.join(items)}</ol>"
    )


def scoring_section(normalized: bool) -> str:
    """Whether texts were normalised before scoring, what that does, and an example."""
    from graft.tasks.transcription.metrics import normalize_text

    if normalized:
        what = (
            "References and hypotheses were both normalised before they were scored, by "
            "Whisper's English normaliser: lower case; punctuation, symbols, text in brackets "
            "and filler words (uh, um, hmm) removed; numbers written as digits on both sides "
            "(twenty-five becomes 25); contractions expanded (it's becomes it is); whitespace "
            "collapsed. "
            "--no-normalize scores them only lower-cased."
        )
    else:
        what = (
            "Texts were not normalised (--no-normalize): references and hypotheses were only "
            "lower-cased and their whitespace collapsed, so punctuation, numbers written "
            "differently and contractions count as errors."
        )
    example = (
        f"<p>{_e(EXAMPLE)} is scored as <code>{_e(normalize_text(EXAMPLE, normalized))}</code></p>"
    )
    return f"<h2>Scoring</h2><p>{_e(what)}</p>{example}"
