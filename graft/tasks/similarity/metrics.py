"""Retrieval metrics as BEIR computes them (pytrec_eval's ``ndcg_cut`` and ``recall``, BEIR's
own MRR@k), and exact nearest-neighbour ranking by cosine similarity.

For each query, documents are ranked by score; a document whose id is the query's own is
dropped first (BEIR's ``ignore_identical_ids``). nDCG@k gains a document's relevance at rank
``i`` (from 1) by ``1 / log2(i + 1)``, divided by the same sum of the ideal order of the
query's judged documents; MRR@k is the reciprocal rank of the first relevant document in the
top k (0 without one); recall@k the share of the relevant documents (relevance > 0) in the top
k. Each is averaged over the queries of the qrels.
"""

from __future__ import annotations

import math

import numpy as np

#: The metrics reported, in order (the first is the headline).
REPORTED = ("ndcg@10", "mrr@10", "recall@100")


def rank(
    queries: np.ndarray, documents: np.ndarray, k: int, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """The indices and scores of the ``k`` documents of highest inner product with each query
    (embeddings normalised: cosine similarity), best first."""
    import torch

    k = min(k, len(documents))
    docs = torch.from_numpy(np.ascontiguousarray(documents, dtype=np.float32))
    indices, scores = [], []
    for start in range(0, len(queries), chunk):
        part = torch.from_numpy(np.ascontiguousarray(queries[start : start + chunk], np.float32))
        top = torch.topk(part @ docs.T, k, dim=1)
        indices.append(top.indices.numpy())
        scores.append(top.values.numpy())
    if not indices:
        return np.zeros((0, k), dtype=int), np.zeros((0, k), dtype=np.float32)
    return np.concatenate(indices), np.concatenate(scores)


def ranked_ids(
    query_ids: list[str], doc_ids: list[str], indices: np.ndarray, ignore_identical: bool = True
) -> dict[str, list[str]]:
    """Each query's ranked document ids (its own id dropped with ``ignore_identical``)."""
    ranked = {}
    for query, row in zip(query_ids, indices, strict=True):
        docs = [doc_ids[i] for i in row]
        ranked[query] = [d for d in docs if d != query] if ignore_identical else docs
    return ranked


def ndcg_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in judged.values() if r > 0), reverse=True)[:k]
    best = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / best if best > 0 else 0.0


def mrr_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    for i, doc in enumerate(ranked[:k]):
        if judged.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def recall_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    relevant = {d for d, r in judged.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def retrieval_metrics(ranked: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict:
    """nDCG@10, MRR@10 and recall@100 (and @10) averaged over the queries of ``qrels`` (a
    query without a ranking scores 0), and the number of queries."""
    parts = {"ndcg@10": (ndcg_at, 10), "mrr@10": (mrr_at, 10)}
    parts.update({"recall@10": (recall_at, 10), "recall@100": (recall_at, 100)})
    totals = dict.fromkeys(parts, 0.0)
    for query, judged in qrels.items():
        docs = ranked.get(query, [])
        for name, (metric, k) in parts.items():
            totals[name] += metric(docs, judged, k)
    count = max(len(qrels), 1)
    return {**{n: v / count for n, v in totals.items()}, "queries": len(qrels)}


def embedding_metrics(
    queries: np.ndarray, documents: np.ndarray, query_ids: list, doc_ids: list, qrels: dict
) -> dict:
    """BEIR's metrics (:func:`retrieval_metrics`) of queries searching documents exactly by
    their normalised embeddings (one row per id); a document whose id is its query's is
    dropped from that query's ranking."""
    indices, _ = rank(queries, documents, 101)
    return retrieval_metrics(ranked_ids(query_ids, doc_ids, indices), qrels)


#: The metrics of a recommender, in order (the first is the headline).
RECOMMENDATION = ("ndcg@10", "recall@10", "hit@10")


def hit_at(ranked: list, judged: dict, k: int) -> float:
    """1 when any relevant item is in the top ``k``, else 0 (hit rate, averaged over users)."""
    return float(any(judged.get(item, 0) > 0 for item in ranked[:k]))


def recommendation_metrics(ranked: list[list], held_out: list[list]) -> dict:
    """nDCG@10, recall@10 and hit rate @10 of each user's ranking (the items they had not
    seen, best first) against their held-out items, averaged over the users with any (binary
    relevance), and the number of those users."""
    parts = {"ndcg@10": ndcg_at, "recall@10": recall_at, "hit@10": hit_at}
    totals, users = dict.fromkeys(parts, 0.0), 0
    for row, wanted in zip(ranked, held_out, strict=True):
        judged = dict.fromkeys(wanted, 1)
        if not judged:
            continue
        users += 1
        for name, metric in parts.items():
            totals[name] += metric(list(row), judged, 10)
    return {**{n: v / max(users, 1) for n, v in totals.items()}, "users": users}
