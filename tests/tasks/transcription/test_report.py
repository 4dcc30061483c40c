"""The report of a transcription: WER before and after a fit, per speaker, the worst
utterances aligned with their substitutions, deletions and insertions marked, and how texts
were scored; on metrics built as a fit builds them and on a tiny fit's run directory."""

from __future__ import annotations

import json

import pytest

import graft
from graft.tasks.transcription.data import SpeechData
from graft.tasks.transcription.metrics import aligned_words, before_after
from graft.tasks.transcription.report import aligned_html, transcription_sections
from graft.tasks.transcription.task import TranscriptionTask
from tests.tasks.transcription.conftest import needs_dataset

REFERENCE = "the red fox jumps over the dog"
HYPOTHESIS = "the bed fox jumps the dog today"  # red -> bed, over deleted, today inserted


def test_the_alignment_marks_a_substitution_a_deletion_and_an_insertion():
    assert aligned_words(REFERENCE, HYPOTHESIS) == [
        ("equal", "the", "the"),
        ("substitute", "red", "bed"),
        ("equal", "fox", "fox"),
        ("equal", "jumps", "jumps"),
        ("delete", "over", ""),
        ("equal", "the", "the"),
        ("equal", "dog", "dog"),
        ("insert", "", "today"),
    ]
    html, counts = aligned_html(REFERENCE, HYPOTHESIS)
    assert counts == {"substitute": 1, "delete": 1, "insert": 1}
    assert "class='sub' title='substitution'" in html
    assert ">red</mark>" in html and ">bed</mark>" in html
    assert "<del class='del' title='deletion'" in html and ">over</del>" in html
    assert "<ins class='ins' title='insertion'" in html and ">today</ins>" in html
    assert ">fox</mark>" not in html and ">dog</del>" not in html  # matches are unmarked
    assert aligned_words("", "uh oh") == [("insert", "", "uh"), ("insert", "", "oh")]
    escaped, _ = aligned_html("a <b> c", "a c")
    assert ">&lt;b&gt;</del>" in escaped and "<b>" not in escaped


def _speech(texts: list[str], speakers: list[str], split: str) -> SpeechData:
    return SpeechData([f"/data/{split}/clip{i}.flac" for i in range(len(texts))], texts, speakers)


def _outputs(transcripts: list[str]) -> list[dict]:
    return [{"transcript": text, "seconds": 0.1} for text in transcripts]


def test_the_report_shows_wer_before_and_after_from_the_validation_metrics():
    """A fit's validation metrics hold the pretrained model's on the same clips (the
    guard's, under ``pretrained``): the report and the printed table compare the two."""
    task = TranscriptionTask()
    texts = ["Good morning, sir.", "Thank you very much", "See you later"]
    val = _speech(texts, ["ann", "ann", "bo"], "val")
    pretrained = task.metrics(_outputs(["good morning sure", "thank you much", "see"]), val)
    assert before_after(pretrained) is None
    fitted = task.metrics(_outputs(texts), val)
    fitted["pretrained"] = pretrained
    test = _speech([REFERENCE, "the cat sat"], ["cy", "dee"], "test")
    scored = task.metrics(_outputs([HYPOTHESIS, "the cat sat"]), test)

    record = before_after(fitted)
    assert record["split"] == "val" and before_after(scored) is None
    assert record["pretrained"]["wer"] == pytest.approx(pretrained["wer"]) == pytest.approx(0.4)
    assert record["fitted"]["wer"] == 0.0
    assert record["pretrained"]["per_speaker"]["bo"]["wer"] == pytest.approx(2 / 3)
    assert scored["worst"][0]["clip"] == "clip0.flac" and scored["worst"][0]["speaker"] == "cy"
    printed = [row for table in task.metrics_tables(fitted, None, "val") for row in table.rows]
    assert ["pretrained WER (val)", "0.4000"] in printed
    assert ["fitted WER (val)", "0.0000"] in printed

    page = "".join(TranscriptionTask.comparison_sections(fitted))
    assert "<h2>Word error rate before and after (val)</h2>" in page
    assert "<td class='n'>0.4000</td><td class='n'>0.0000</td><td class='n'>-0.4000</td>" in page
    assert "<h2>Per speaker before and after (val)</h2>" in page and "<td>bo</td>" in page
    page = "".join(transcription_sections(scored, "test"))
    assert "before and after" not in page
    assert "<h2>Per speaker (test)</h2>" in page and "<td>dee</td>" in page
    assert "<h2>Worst utterances (test)</h2>" in page and "clip clip0.flac speaker cy" in page
    assert "1 substitution, 1 deletion, 1 insertion" in page and ">today</ins>" in page
    assert "Whisper&#x27;s English normaliser" in page
    assert "<code>mister smith said it is 25 past 4 is not it</code>" in page

    plain = TranscriptionTask(normalize=False)
    unscored = plain.metrics(_outputs(["One, two"]), _speech(["one two"], [], "val"))
    page = "".join(transcription_sections(unscored, "val"))
    assert "Texts were not normalised (--no-normalize)" in page and "Per speaker" not in page
    assert "as written: one two | heard: One, two" in page


@needs_dataset()
def test_a_fit_writes_the_transcription_report(small_speech, tiny_ctc, tmp_path):
    out = tmp_path / "ctc"
    graft.fit(
        str(small_speech), task="transcription", model=str(tiny_ctc),
        strategy="feature-extract", epochs=1, batch_size=4, out=str(out), num_workers=0,
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    record = before_after(metrics["val"])
    assert record["pretrained"]["wer"] == pytest.approx(
        1 - metrics["guard"]["pretrained_val_score"]
    )
    assert record["fitted"]["wer"] == pytest.approx(metrics["val"]["wer"])
    assert record["fitted"]["utterances"] == metrics["val"]["utterances"]
    page = (out / "report.html").read_text()
    for heading in (
        "Learning curves",
        "Word error rate before and after (val)",
        "Per speaker before and after (val)",
        "Per speaker (test)",
        "Worst utterances (test)",
        "Scoring",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert (
        "validation score: word_accuracy" in page and "<th>scored</th><td>normalised text" in page
    )
    worst = metrics["test"]["worst"]
    assert 1 <= len(worst) <= 6 and all(w["clip"].endswith(".flac") for w in worst)
