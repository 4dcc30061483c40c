"""Text normalisation and error rates."""

from __future__ import annotations

from graft.tasks.transcription.metrics import error_rates, normalize_text, transcription_metrics


def test_whisper_normalisation_is_applied_to_both_sides():
    assert normalize_text("Hello, World! It's five apples.") == "hello world it is 5 apples"
    assert (
        error_rates(["SO OF COURSE I WAS PICKED ON"], ["So, of course I was picked on."])["wer"]
        == 0.0
    )
    assert error_rates(["TWENTY FIVE APPLES"], ["25 apples"])["wer"] == 0.0


def test_normalisation_switched_off_only_lower_cases():
    assert normalize_text("Hello,  World!", normalize=False) == "hello, world!"
    scored = error_rates(["SO OF COURSE"], ["So, of course."], normalize=False)
    assert scored["wer"] == 2 / 3


def test_per_speaker_rates_and_the_worst_utterances():
    metrics = transcription_metrics(
        ["A CAT SAT", "THE DOG RAN", "HELLO"], ["a cat sat", "the dog", "yellow"], ["x", "x", "y"]
    )
    assert metrics["per_speaker"]["y"]["wer"] == 1.0
    assert abs(metrics["per_speaker"]["x"]["wer"] - 1 / 6) < 1e-9
    worst = metrics["worst"][0]
    assert {k: worst[k] for k in ("wer", "reference", "hypothesis")} == {
        "wer": 1.0,
        "reference": "hello",
        "hypothesis": "yellow",
    }
    assert worst["speaker"] == "y" and worst["reference_text"] == "HELLO"
    assert abs(metrics["wer"] - 2 / 7) < 1e-9
