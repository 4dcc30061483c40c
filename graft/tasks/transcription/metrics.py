"""Word and character error rates (jiwer's), on normalised text.

Text is normalised the same way on both sides before it is scored: for English, Whisper's
``EnglishTextNormalizer`` (transformers ships it: lower case, punctuation and filler words
removed, numbers written as digits on both sides, British spellings as American where a
spelling map is given, contractions expanded); ``--no-normalize`` scores the texts only
lower-cased with their whitespace collapsed (``normalize=False``).
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict


@functools.cache
def _english():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})


def normalize_text(text: str, normalize: bool = True) -> str:
    """``text`` as it is scored (see the module docstring)."""
    if normalize:
        return _english()(text)
    return re.sub(r"\s+", " ", text.lower()).strip()


def error_rates(references: list[str], hypotheses: list[str], normalize: bool = True) -> dict:
    """``wer``, ``cer`` and the word counts of ``references`` against ``hypotheses``, each
    normalised by :func:`normalize_text` (an empty normalised reference counts as one word so
    that jiwer scores it)."""
    import jiwer

    refs = [normalize_text(r, normalize) or "<empty>" for r in references]
    hyps = [normalize_text(h, normalize) for h in hypotheses]
    words = jiwer.process_words(refs, hyps)
    characters = jiwer.cer(refs, hyps)
    total = words.hits + words.substitutions + words.deletions
    return {
        "wer": float(words.wer),
        "cer": float(characters),
        "word_accuracy": 1.0 - float(words.wer),
        "substitutions": int(words.substitutions),
        "deletions": int(words.deletions),
        "insertions": int(words.insertions),
        "words": int(total),
        "utterances": len(refs),
    }


def transcription_metrics(
    references: list[str], hypotheses: list[str], speakers: list[str], normalize: bool = True
) -> dict:
    """:func:`error_rates` overall, per speaker when ``speakers`` are known, and the worst
    utterances (reference and hypothesis, normalised)."""
    metrics = error_rates(references, hypotheses, normalize)
    if speakers:
        grouped: dict[str, list[int]] = defaultdict(list)
        for i, speaker in enumerate(speakers):
            grouped[speaker].append(i)
        metrics["per_speaker"] = {
            speaker: {
                k: v
                for k, v in error_rates(
                    [references[i] for i in rows], [hypotheses[i] for i in rows], normalize
                ).items()
                if k in ("wer", "cer", "utterances")
            }
            for speaker, rows in sorted(grouped.items())
        }
    scored = []
    for ref, hyp in zip(references, hypotheses, strict=True):
        single = error_rates([ref], [hyp], normalize)
        shown = normalize_text(ref, normalize), normalize_text(hyp, normalize)
        scored.append((single["wer"], *shown))
    scored.sort(key=lambda row: -row[0])
    metrics["worst"] = [{"wer": w, "reference": r, "hypothesis": h} for w, r, h in scored[:5]]
    metrics["normalized"] = normalize
    return metrics
