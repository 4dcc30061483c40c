"""Does ``--vocabulary`` (Whisper's prompt) help with the words the pretrained model gets
wrong? Measured on speechocean762_adults with graft's offline ``whisper-tiny.en``.

Protocol (no test transcript is used to choose the terms):

1. the pretrained model transcribes the **training** utterances; a *term* is a content word
   (four letters or more, not a function word) of a training reference that the model missed
   there at least ``--min-misses`` times; the ``--terms`` most often missed form the
   vocabulary file, as a user would list the words a model gets wrong on their speech;
2. the **test** utterances (other speakers) are transcribed without and with the vocabulary
   (the same file ``graft fit --vocabulary`` reads, joined as graft joins it);
3. reported: test WER of each, WER of the test utterances that contain a term and of those
   that do not (a prompt can also hurt the rest), and the *term recall*: the share of the
   term occurrences in test references that appear in the hypothesis of their utterance.

A control arm gives a vocabulary of the same size made of words the model already gets
right, to separate the effect of the terms from the effect of a prompt as such. Usage::

    OMP_NUM_THREADS=2 python bench/speech_vocabulary.py --out bench/out/speech_vocabulary.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "speechocean762_adults"
MODEL = "whisper-tiny.en"
FUNCTION_WORDS = set(
    "about after again also because been before being could does doing down each from have "
    "having here into just more most only other over same should some such than that their "
    "them then there these they this those through under until very were what when where "
    "which while with would your yours will shall".split()
)


def missed_words(references: list[str], hypotheses: list[str]) -> Counter:
    """Content words of each normalised reference absent from its normalised hypothesis."""
    from graft.tasks.transcription.metrics import normalize_text

    missed: Counter = Counter()
    for ref, hyp in zip(references, hypotheses, strict=True):
        heard = set(normalize_text(hyp).split())
        for word in set(normalize_text(ref).split()):
            if len(word) >= 4 and word.isalpha() and word not in FUNCTION_WORDS:
                missed[word] += word not in heard
    return missed


def term_recall(references: list[str], hypotheses: list[str], terms: set[str]) -> dict:
    """Occurrences of ``terms`` in the references and the share found in their hypotheses."""
    from graft.tasks.transcription.metrics import normalize_text

    found = total = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        heard = set(normalize_text(hyp).split())
        for word in normalize_text(ref).split():
            if word in terms:
                total += 1
                found += word in heard
    return {"occurrences": total, "recall": found / total if total else None}


def scored(references, hypotheses, terms: set[str]) -> dict:
    from graft.tasks.transcription.metrics import error_rates, normalize_text

    with_terms = [i for i, r in enumerate(references) if terms & set(normalize_text(r).split())]
    rest = [i for i in range(len(references)) if i not in set(with_terms)]

    def wer(rows):
        if not rows:
            return None
        return error_rates([references[i] for i in rows], [hypotheses[i] for i in rows])["wer"]

    return {
        "wer": wer(range(len(references))),
        "wer_with_terms": wer(with_terms),
        "utterances_with_terms": len(with_terms),
        "wer_without_terms": wer(rest),
        **term_recall(references, hypotheses, terms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--terms", type=int, default=30)
    parser.add_argument("--min-misses", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/out/speech_vocabulary.json"))
    args = parser.parse_args()

    from graft.tasks.transcription.evaluate import transcribe_clips
    from graft.tasks.transcription.model import build_encoder
    from graft.tasks.transcription.read import read_speech
    from graft.tasks.transcription.task import vocabulary_prompt

    started = time.perf_counter()
    backbone = build_encoder(MODEL, pretrained=True)
    train, test = read_speech(args.data / "train"), read_speech(args.data / "test")

    def transcripts(data, prompt=None) -> list[str]:
        return [f["transcript"] for f in transcribe_clips(backbone, data.paths, prompt=prompt)]

    missed = missed_words(train.texts, transcripts(train))
    terms = [w for w, n in missed.most_common() if n >= args.min_misses][: args.terms]
    right = [w for w, n in sorted(missed.items()) if n == 0][: len(terms)]
    test_texts = {"none": transcripts(test)}
    results: dict = {"terms": terms, "control_words": right}
    for arm, words in (("vocabulary", terms), ("control", right)):
        vocabulary = args.out.parent / f"speech_vocabulary_{arm}.txt"
        vocabulary.parent.mkdir(parents=True, exist_ok=True)
        vocabulary.write_text("\n".join(words) + "\n")
        test_texts[arm] = transcripts(test, vocabulary_prompt(vocabulary))
    for arm, hypotheses in test_texts.items():
        results[arm] = scored(test.texts, hypotheses, set(terms))
        print(arm, json.dumps(results[arm]), flush=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
