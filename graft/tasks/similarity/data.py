"""What a similarity fit reads: pairs to train on and a retrieval set to score them.

:class:`Retrieval` is a corpus, queries and their relevant documents (BEIR's three parts).
:class:`SimilarityData` holds the pairs a loss reads (a query and a positive, optionally a
hard negative or a score) with the ids that place them in a retrieval set, so that any part of
it (a validation split of its queries) is scored by retrieval as the test is.
:class:`ImageSimilarityData` is the same of images, each named by its file's path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass
class Retrieval:
    """A retrieval set.

    Attributes:
        corpus: document id -> text.
        queries: query id -> text (the queries that have relevant documents).
        qrels: query id -> {document id: relevance (> 0 is relevant)}.
        source: where it was read (a qrels file, a table).
    """

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: str


@dataclass
class SimilarityData:
    """Pairs of a similarity fit, one per relevant (query, document).

    Attributes:
        anchors, positives: the texts of each pair.
        negatives: a hard negative per pair (triplets), or None.
        scores: a similarity score per pair (scored pairs: a cosine loss), or None.
        query_ids, doc_ids: each pair's query and document in :attr:`corpus`.
        corpus: document id -> text: what a query of these pairs is searched in.
        source: where the pairs were read.
    """

    anchors: list[str]
    positives: list[str]
    negatives: list[str] | None
    scores: list[float] | None
    query_ids: list[str]
    doc_ids: list[str]
    corpus: dict[str, str]
    source: str
    modality: ClassVar[str] = "text"
    task: ClassVar[str] = "similarity"
    skipped: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.anchors)

    @classmethod
    def from_retrieval(cls, retrieval: Retrieval) -> SimilarityData:
        """A pair for each relevant (query, document) of a retrieval set."""
        query_ids, doc_ids = [], []
        for query, docs in retrieval.qrels.items():
            for doc, relevance in docs.items():
                if relevance > 0:
                    query_ids.append(query)
                    doc_ids.append(doc)
        queries, corpus = retrieval.queries, retrieval.corpus
        return cls(
            anchors=[queries[q] for q in query_ids],
            positives=[corpus[d] for d in doc_ids],
            negatives=None,
            scores=None,
            query_ids=query_ids,
            doc_ids=doc_ids,
            corpus=corpus,
            source=retrieval.source,
        )

    @classmethod
    def from_pairs(cls, anchors, positives, negatives, scores, source: str) -> SimilarityData:
        """Pairs of a table: texts are their own ids; the corpus holds every positive and
        negative."""
        corpus = {text: text for text in positives}
        corpus.update({text: text for text in negatives or ()})
        return cls(
            list(anchors),
            list(positives),
            None if negatives is None else list(negatives),
            None if scores is None else [float(s) for s in scores],
            list(anchors),
            list(positives),
            corpus,
            source,
        )

    def relevant(self) -> np.ndarray:
        """Which pairs are relevant: all, or for scored pairs those scored above the middle
        of the scores' range."""
        if self.scores is None:
            return np.ones(len(self), dtype=bool)
        scores = np.asarray(self.scores, dtype=float)
        return scores > (scores.min() + scores.max()) / 2

    def retrieval(self) -> Retrieval:
        """The retrieval set of these pairs: each query searches the whole corpus for its
        relevant documents."""
        qrels: dict[str, dict[str, int]] = {}
        queries: dict[str, str] = {}
        for i in np.flatnonzero(self.relevant()):
            qrels.setdefault(self.query_ids[i], {})[self.doc_ids[i]] = 1
            queries[self.query_ids[i]] = self.anchors[i]
        return Retrieval(self.corpus, queries, qrels, self.source)

    def subset(self, indices) -> SimilarityData:
        """The pairs at ``indices`` (the corpus whole)."""
        index = [int(i) for i in indices]

        def pick(values):
            return None if values is None else [values[i] for i in index]

        return type(self)(
            pick(self.anchors),
            pick(self.positives),
            pick(self.negatives),
            pick(self.scores),
            pick(self.query_ids),
            pick(self.doc_ids),
            self.corpus,
            self.source,
        )

    def content_hash(self) -> str:
        """A SHA-256 of the pairs (texts, negatives, scores), for the run's data record."""
        import hashlib
        import json

        parts = [self.anchors, self.positives, self.negatives, self.scores]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def with_corpus_cut(self, limit: int, seed: int) -> SimilarityData:
        """These pairs searched among at most ``limit`` documents: every document of a pair and
        a seeded sample of the others (a validation set: embedding a large corpus every epoch
        would cost more than training)."""
        if len(self.corpus) <= limit:
            return self
        relevant = set(self.doc_ids) | set(self.negatives or ())
        others = sorted(set(self.corpus) - relevant)
        rng = np.random.default_rng(seed)
        count = min(max(limit - len(relevant), 0), len(others))
        sample = [others[i] for i in sorted(rng.choice(len(others), count, replace=False))]
        cut = self.subset(range(len(self)))
        cut.corpus = {d: self.corpus[d] for d in sorted(relevant & set(self.corpus)) + sample}
        return cut

    def split_by_query(self, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of training and validation pairs: a seeded ``fraction`` of the queries
        (with all their pairs) held out, so that no validation query was trained on."""
        queries = sorted(set(self.query_ids))
        rng = np.random.default_rng(seed)
        held = max(1, round(len(queries) * fraction)) if len(queries) > 1 else 0
        chosen = set(rng.permutation(len(queries))[:held].tolist())
        held_out = {queries[i] for i in chosen}
        val = np.array([i for i, q in enumerate(self.query_ids) if q in held_out], dtype=int)
        train = np.array([i for i, q in enumerate(self.query_ids) if q not in held_out], dtype=int)
        return train, val


@dataclass
class ImageSimilarityData(SimilarityData):
    """Pairs of images (:mod:`graft.tasks.similarity.images`): each "text" is an image file's
    absolute path, which is also its id."""

    modality: ClassVar[str] = "image"
