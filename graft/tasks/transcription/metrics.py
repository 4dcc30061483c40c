"""Word and character error rates (jiwer's), on normalised text, and the word alignment of
a reference and a hypothesis that the report marks.

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
from pathlib import Path


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


#: The worst utterances kept in the metrics (highest WER first, then most errors).
WORST = 10


def transcription_metrics(
    references: list[str],
    hypotheses: list[str],
    speakers: list[str],
    normalize: bool = True,
    clips: list[str] | None = None,
) -> dict:
    """:func:`error_rates` overall, per speaker when ``speakers`` are known, and the
    :data:`WORST` utterances (:func:`worst_utterances`)."""
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
    metrics["worst"] = worst_utterances(references, hypotheses, speakers, normalize, clips)
    metrics["normalized"] = normalize
    return metrics


def worst_utterances(
    references: list[str],
    hypotheses: list[str],
    speakers: list[str],
    normalize: bool = True,
    clips: list[str] | None = None,
) -> list[dict]:
    """The :data:`WORST` utterances by WER (then by their count of errors), of those with an
    error: the reference and hypothesis as scored (normalised), as written when normalising
    changed them (``reference_text``, ``transcript``), and the clip's file name and speaker
    where known."""
    scored = []
    for i, (ref, hyp) in enumerate(zip(references, hypotheses, strict=True)):
        single = error_rates([ref], [hyp], normalize)
        errors = single["substitutions"] + single["deletions"] + single["insertions"]
        if errors:
            scored.append((-single["wer"], -errors, i))
    worst = []
    for negative_wer, _, i in sorted(scored)[:WORST]:
        reference, hypothesis = references[i], hypotheses[i]
        record = {
            "wer": -negative_wer,
            "reference": normalize_text(reference, normalize),
            "hypothesis": normalize_text(hypothesis, normalize),
        }
        if (record["reference"], record["hypothesis"]) != (reference, hypothesis):
            record.update(reference_text=reference, transcript=hypothesis)
        if clips:
            record["clip"] = Path(clips[i]).name
        if speakers:
            record["speaker"] = speakers[i]
        worst.append(record)
    return worst


def aligned_words(reference: str, hypothesis: str) -> list[tuple[str, str, str]]:
    """jiwer's word alignment of ``reference`` and ``hypothesis`` (texts as scored), one
    ``(operation, reference word, hypothesis word)`` a position: ``equal``, ``substitute``,
    ``delete`` (no hypothesis word) or ``insert`` (no reference word)."""
    import jiwer

    ref_words, hyp_words = reference.split(), hypothesis.split()
    if not ref_words:
        return [("insert", "", word) for word in hyp_words]
    found = jiwer.process_words(" ".join(ref_words), " ".join(hyp_words))
    pairs: list[tuple[str, str, str]] = []
    for chunk in found.alignments[0]:
        refs = ref_words[chunk.ref_start_idx : chunk.ref_end_idx]
        hyps = hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if chunk.type == "delete":
            pairs += [("delete", word, "") for word in refs]
        elif chunk.type == "insert":
            pairs += [("insert", "", word) for word in hyps]
        else:  # equal or substitute: as many words on each side
            pairs += [(chunk.type, r, h) for r, h in zip(refs, hyps, strict=True)]
    return pairs


def before_after(metrics: dict) -> dict | None:
    """The pretrained and the fitted model's scores (:func:`scores_brief`) on the same
    validation clips, from a fit's validation metrics (the pretrained model's are under
    ``pretrained``, which :mod:`graft.fitting` adds for a kind that guards its pretrained
    model); None for metrics without them."""
    pretrained = metrics.get("pretrained")
    if not pretrained:
        return None
    return {"split": "val", "pretrained": scores_brief(pretrained), "fitted": scores_brief(metrics)}


def scores_brief(metrics: dict) -> dict:
    """WER, CER, word accuracy and utterances of :func:`transcription_metrics`' result, with
    each speaker's WER and utterances: what the report compares before and after a fit."""
    brief = {k: metrics[k] for k in ("wer", "cer", "word_accuracy", "utterances")}
    if metrics.get("per_speaker"):
        brief["per_speaker"] = {
            speaker: {"wer": row["wer"], "utterances": row["utterances"]}
            for speaker, row in metrics["per_speaker"].items()
        }
    return brief
