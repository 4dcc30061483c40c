"""Hard negatives mined by the pretrained encoder: for each pair, a document the pretrained
encoder ranks high for the query but that is not relevant to it.

The negative is drawn (seeded) among the non-relevant documents ranked from :data:`SKIP` to
:data:`DEPTH`: the very first ones are skipped, since a document ranked above the known
positives is often an unjudged relevant one (a false negative).
"""

from __future__ import annotations

import numpy as np

from graft.tasks.similarity.data import SimilarityData
from graft.tasks.similarity.metrics import rank

SKIP = 3
DEPTH = 30


def mine_negatives(embed, data: SimilarityData, seed: int) -> SimilarityData:
    """``data`` with a mined hard negative per pair (pairs that had negatives keep theirs);
    ``embed``: texts (or image paths) -> normalised embeddings."""
    if data.negatives is not None:
        return data
    doc_ids = list(data.corpus)
    queries = sorted(set(data.query_ids))
    text_of = dict(zip(data.query_ids, data.anchors, strict=True))
    docs = embed([data.corpus[d] for d in doc_ids])
    found, _ = rank(embed([text_of[q] for q in queries]), docs, DEPTH + 10)
    relevant: dict[str, set] = {}
    for q, d in zip(data.query_ids, data.doc_ids, strict=True):
        relevant.setdefault(q, set()).add(d)
    rng = np.random.default_rng(seed)
    choices = {}
    for query, row in zip(queries, found, strict=True):
        candidates = [doc_ids[i] for i in row if doc_ids[i] not in relevant[query]]
        pool = candidates[SKIP:DEPTH] or candidates
        choices[query] = pool
    negatives = []
    for query in data.query_ids:
        pool = choices[query]
        negatives.append(data.corpus[pool[int(rng.integers(len(pool)))]] if pool else "")
    mined = data.subset(range(len(data)))
    mined.negatives = negatives
    return mined
