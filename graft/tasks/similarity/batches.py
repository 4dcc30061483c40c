"""The batches of a similarity fit: pairs to train on, texts to embed.

- Training: a :class:`Pair` per relevant (query, document), batched by :class:`DistinctBatches`
  so that no batch holds two pairs of one query nor two of one document (a duplicate would be
  a false in-batch negative), in an order of (seed, epoch) only.
- Validation: every query of the validation pairs and every document of their (cut) corpus, as
  a :class:`Text` that knows its role, its index and its query's relevant documents, so that
  the validation score (:class:`graft.tasks.similarity.module.RetrievalScore`) ranks them at the
  end of the epoch as the test is ranked.
- Prediction: plain texts.

:class:`SimilarityCollate` turns each into a batch ``(inputs, targets)``: the tokens of the
anchors, positives (and negatives) and the pairs' scores; the tokens of texts and their roles.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from graft.tasks.similarity.encoder import tokenizer_of, tokens

#: A text's role in a validation batch.
QUERY, DOCUMENT, INPUT = 0, 1, -1


class Pair(NamedTuple):
    """A training pair: its texts, a hard negative ("" without) and its score (0 without)."""

    anchor: str
    positive: str
    negative: str | None
    score: float


class Text(NamedTuple):
    """A validation text: its role (:data:`QUERY` or :data:`DOCUMENT`), its index among the
    queries or documents, for a document the index of the query with its id (BEIR drops a
    document from its own query's ranking; -1: none), for a query its relevant documents'
    indices and relevances (padded with -1 and 0 to one width)."""

    text: str
    role: int
    index: int
    twin: int
    relevant: tuple
    relevance: tuple


class Items(Dataset):
    """A list of items (pairs, texts or plain strings) as a Dataset."""

    def __init__(self, items: list):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def pairs_of(data: Any) -> list[Pair]:
    """The training pairs of similarity data."""
    negatives = data.negatives or [None] * len(data)
    scores = data.scores or [0.0] * len(data)
    return [
        Pair(a, p, n, float(s))
        for a, p, n, s in zip(data.anchors, data.positives, negatives, scores, strict=True)
    ]


def texts_of(retrieval: Any) -> list[Text]:
    """Each query and document of a retrieval set as a :class:`Text`, longest first."""
    query_ids, doc_ids = list(retrieval.queries), list(retrieval.corpus)
    doc_index = {d: i for i, d in enumerate(doc_ids)}
    query_index = {q: i for i, q in enumerate(query_ids)}
    width = max((len(r) for r in retrieval.qrels.values()), default=1)
    texts = []
    for i, query in enumerate(query_ids):
        judged = [(doc_index[d], r) for d, r in retrieval.qrels.get(query, {}).items()]
        judged += [(-1, 0)] * (width - len(judged))
        docs, relevance = zip(*judged, strict=True)
        texts.append(Text(retrieval.queries[query], QUERY, i, -1, docs, relevance))
    empty = ((-1,) * width, (0,) * width)
    for j, doc in enumerate(doc_ids):
        texts.append(Text(retrieval.corpus[doc], DOCUMENT, j, query_index.get(doc, -1), *empty))
    return sorted(texts, key=lambda t: -len(t.text))


class SimilarityCollate:
    """A list of :class:`Pair`, :class:`Text` or strings as ``(inputs, targets)``: for pairs,
    ``{"anchor", "positive"[, "negative"]}`` tokens and the scores; for texts, their tokens and
    ``{"role", "index", "twin", "relevant", "relevance"}`` (strings: roles of -1). Image pairs
    and images alike, their "texts" the images' paths (:meth:`tokens`)."""

    def __init__(self, preprocessing: Any, features: dict | None = None):
        self.preprocessing = preprocessing
        self.features = features
        self._tokenizer = None

    def tokens(self, texts: list[str]) -> Any:
        """The backbone's input of ``texts``: tokens; for an image backbone the pixels of the
        image files they name; with ``features`` (image path -> cached features of a frozen
        backbone) ``{"features": float32[n, width]}``, which the module hands to the head."""
        if self.features is not None:
            return {"features": torch.stack([self.features[t] for t in texts])}
        if getattr(self.preprocessing, "modality", "text") == "image":
            from graft.tasks.similarity.images import pixels

            return pixels(self.preprocessing, texts)
        if self._tokenizer is None:
            self._tokenizer = tokenizer_of(self.preprocessing)
        return tokens(self._tokenizer, texts, int(self.preprocessing.max_length))

    def __call__(self, batch: list):
        if isinstance(batch[0], Pair):
            inputs = {
                "anchor": self.tokens([p.anchor for p in batch]),
                "positive": self.tokens([p.positive for p in batch]),
            }
            if batch[0].negative is not None:
                inputs["negative"] = self.tokens([p.negative or "" for p in batch])
            return inputs, torch.tensor([p.score for p in batch], dtype=torch.float32)
        if isinstance(batch[0], Text):
            targets = {
                "role": torch.tensor([t.role for t in batch]),
                "index": torch.tensor([t.index for t in batch]),
                "twin": torch.tensor([t.twin for t in batch]),
                "relevant": torch.tensor([t.relevant for t in batch]),
                "relevance": torch.tensor([t.relevance for t in batch], dtype=torch.float32),
            }
            return self.tokens([t.text for t in batch]), targets
        return self.tokens([str(t) for t in batch]), torch.full((len(batch),), INPUT)


def distinct_batches(
    query_ids: list, doc_ids: list, size: int, seed: int, epoch: int
) -> list[list[int]]:
    """Pair indices in batches of ``size`` in an order of (seed, epoch), no query nor document
    twice in one batch (a pair that would repeat one waits for the next batch)."""
    order = np.random.default_rng([seed, epoch]).permutation(len(query_ids)).tolist()
    out, pending = [], order
    while pending:
        batch, seen, later = [], set(), []
        for i in pending:
            keys = {("q", query_ids[i]), ("d", doc_ids[i])}
            if len(batch) < size and not keys & seen:
                batch.append(i)
                seen |= keys
            else:
                later.append(i)
        out.append(batch)
        pending = later
    return out


class DistinctBatches(Sampler[list[int]]):
    """The batches of :func:`distinct_batches` for the epoch Lightning sets (``set_epoch``)."""

    def __init__(self, query_ids: list, doc_ids: list, size: int, seed: int):
        self.query_ids, self.doc_ids = list(query_ids), list(doc_ids)
        self.size, self.seed = size, seed
        self.epoch = 0
        self._batches: dict[int, list[list[int]]] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        if self.epoch not in self._batches:
            self._batches = {
                self.epoch: distinct_batches(
                    self.query_ids, self.doc_ids, self.size, self.seed, self.epoch
                )
            }
        return self._batches[self.epoch]

    def __len__(self) -> int:
        return len(self.batches())

    def __iter__(self):
        return iter(self.batches())
