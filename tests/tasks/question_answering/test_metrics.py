"""SQuAD exact match and F1 against the official evaluation on hand-computed cases."""

from __future__ import annotations

import pytest

from graft.tasks.question_answering.squad import f1_score, normalize_answer, squad_scores


def test_normalisation_is_the_official_one():
    assert normalize_answer("The  Eiffel-Tower, in PARIS!") == "eiffeltower in paris"
    assert normalize_answer("an apple and a pear") == "apple and pear"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words


def test_a_hand_computed_case():
    # q1: exact on its second reference. q2: "the 1889 tower" vs "1889" -> tokens
    # [1889, tower] vs [1889]: precision 1/2, recall 1 -> F1 2/3; vs "eiffel tower 1889" ->
    # precision 2/2, recall 2/3 -> F1 0.8 (the best). q3: nothing in common -> 0.
    predictions = ["Paris.", "the 1889 tower", "Lyon"]
    references = [["in Paris", "paris"], ["1889", "Eiffel Tower 1889"], ["Gustave Eiffel"]]
    scores = squad_scores(predictions, references)
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 0.8 + 0) / 3)
    assert f1_score("the 1889 tower", "1889") == pytest.approx(2 / 3)
    assert "has_answer_f1" not in scores


def test_repeated_words_count_as_a_bag():
    # prediction [a b b] (after normalisation, 'a' is an article: use other words)
    assert f1_score("x y y", "y y z") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))


def test_unanswerable_questions_split_has_answer_and_no_answer():
    scores = squad_scores(["Paris", "", "Rome", ""], [["Paris"], [], [], ["Lyon"]])
    assert scores["no_answer_exact_match"] == 0.5 and scores["no_answer_questions"] == 2
    assert scores["has_answer_f1"] == 0.5 and scores["has_answer_questions"] == 2
    assert scores["f1"] == 0.5
