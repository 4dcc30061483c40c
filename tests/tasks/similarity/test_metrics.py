"""Retrieval metrics against a case computed by hand, and against sentence-transformers'
InformationRetrievalEvaluator (a reference implementation) on random embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graft.tasks.similarity.losses import multiple_negatives_ranking
from graft.tasks.similarity.metrics import rank, ranked_ids, retrieval_metrics


def test_metrics_equal_a_hand_computed_case():
    ranked = {"q1": ["a", "b", "c", "d"], "q2": ["x", "y", "z"]}
    qrels = {"q1": {"b": 1, "d": 2}, "q2": {"w": 1}}
    found = retrieval_metrics(ranked, qrels)
    # q1: DCG = 1/log2(3) + 2/log2(5); ideal = 2/log2(2) + 1/log2(3); q2 finds nothing.
    dcg = 1 / math.log2(3) + 2 / math.log2(5)
    ideal = 2 + 1 / math.log2(3)
    assert found["ndcg@10"] == pytest.approx((dcg / ideal + 0) / 2)
    assert found["mrr@10"] == pytest.approx((1 / 2 + 0) / 2)
    assert found["recall@100"] == pytest.approx((1.0 + 0.0) / 2)
    assert found["queries"] == 2


def test_identical_ids_are_dropped_as_beir_does():
    ranked = ranked_ids(["q"], ["q", "d"], np.array([[0, 1]]))
    assert ranked == {"q": ["d"]}


def test_rank_is_exact_cosine_order():
    docs = np.eye(4, dtype=np.float32)
    queries = np.array([[0.1, 0.9, 0.3, 0.0]], dtype=np.float32)
    indices, scores = rank(queries, docs, 3)
    assert indices.tolist() == [[1, 2, 0]]
    assert scores[0].tolist() == pytest.approx([0.9, 0.3, 0.1])


def test_metrics_equal_sentence_transformers_evaluator():
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(150, 8)).astype(np.float32)
    queries = rng.normal(size=(12, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    doc_ids, query_ids = [f"d{i}" for i in range(150)], [f"q{i}" for i in range(12)]
    qrels = {q: {f"d{j}": 1 for j in rng.choice(150, 3, replace=False)} for q in query_ids}
    indices, scores = rank(queries, docs, 100)
    ours = retrieval_metrics(ranked_ids(query_ids, doc_ids, indices), qrels)
    evaluator = evaluation.InformationRetrievalEvaluator(
        {q: q for q in query_ids},
        {d: d for d in doc_ids},
        {q: set(found) for q, found in qrels.items()},
        ndcg_at_k=[10],
        mrr_at_k=[10],
        accuracy_at_k=[1],
        precision_recall_at_k=[10, 100],
        map_at_k=[10],
    )
    results = [
        [{"corpus_id": doc_ids[i], "score": float(s)} for i, s in zip(row, values, strict=True)]
        for row, values in zip(indices, scores, strict=True)
    ]
    reference = evaluator.compute_metrics(results)
    assert ours["ndcg@10"] == pytest.approx(reference["ndcg@k"][10], abs=1e-9)
    assert ours["mrr@10"] == pytest.approx(reference["mrr@k"][10], abs=1e-9)
    assert ours["recall@100"] == pytest.approx(reference["recall@k"][100], abs=1e-9)
    assert ours["recall@10"] == pytest.approx(reference["recall@k"][10], abs=1e-9)
    assert 0 < ours["recall@100"] < 1


def test_in_batch_loss_is_lowest_when_pairs_match():
    import torch

    anchors = torch.nn.functional.normalize(torch.eye(4), dim=-1)
    matched = multiple_negatives_ranking(anchors, anchors)
    shuffled = multiple_negatives_ranking(anchors, anchors.roll(1, 0))
    assert matched < 0.01 < shuffled
