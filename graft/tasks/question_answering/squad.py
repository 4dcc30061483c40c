"""Exact match and F1 as the official SQuAD evaluation scripts compute them.

``normalize_answer``, ``f1_score`` and ``exact_match_score`` are those of
``evaluate-v1.1.py`` (lower case, punctuation and the articles a/an/the removed, white space
collapsed; F1 over the bag of the normalised words; the best over the reference answers). For
SQuAD v2.0 (``evaluate-v2.0.py``) an unanswerable question's reference is the empty answer: the
empty prediction scores 1 on it and anything else 0, and the figures are also given for the
answerable (``HasAns``) and unanswerable (``NoAns``) questions apart. Figures are fractions
(the scripts print them times 100).
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, punctuation and articles removed, white space collapsed."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def f1_score(prediction: str, truth: str) -> float:
    """F1 of the normalised words of ``prediction`` against ``truth`` (v2.0: an empty answer
    on either side scores 1 when both are empty, else 0)."""
    predicted, true = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not predicted or not true:
        return float(predicted == true)
    same = sum((Counter(predicted) & Counter(true)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(true)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def best_over(metric, prediction: str, truths: list[str]) -> float:
    """The best ``metric`` over the reference answers (the empty answer when there are none)."""
    return max(metric(prediction, truth) for truth in (truths or [""]))


def squad_scores(predictions: list[str], references: list[list[str]]) -> dict:
    """``exact_match`` and ``f1`` over all questions; with unanswerable questions among them,
    also over the answerable (``has_answer_*``) and unanswerable (``no_answer_*``) ones with
    their counts."""
    exact = [
        best_over(exact_match_score, p, r) for p, r in zip(predictions, references, strict=True)
    ]
    f1 = [best_over(f1_score, p, r) for p, r in zip(predictions, references, strict=True)]
    scores = {"exact_match": _mean(exact), "f1": _mean(f1), "questions": len(predictions)}
    has = [i for i, r in enumerate(references) if r]
    if len(has) < len(references):
        no = [i for i, r in enumerate(references) if not r]
        for name, part in (("has_answer", has), ("no_answer", no)):
            scores[f"{name}_exact_match"] = _mean([exact[i] for i in part])
            scores[f"{name}_f1"] = _mean([f1[i] for i in part])
            scores[f"{name}_questions"] = len(part)
    return scores


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
