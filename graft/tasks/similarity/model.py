"""A similarity model in use: a fitted model's embeddings, or a pretrained encoder as it is.

:meth:`SimilarityModel.of` wraps a fitted or loaded estimator (``graft.load(RUN)``: its
embeddings are its predictions), :meth:`SimilarityModel.pretrained` the model a model string
names (``minilm``). Either embeds texts, writes an index of a corpus, searches an index or a
list of documents, and evaluates retrieval on a BEIR folder's qrels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from graft.errors import DataError
from graft.tasks.similarity.index import VectorIndex, build_index, read_corpus
from graft.tasks.similarity.metrics import REPORTED, embedding_metrics, rank
from graft.tasks.similarity.read import is_beir, read_beir


class SimilarityModel:
    """Texts embedded, indexed and searched (see the module docstring).

    Attributes:
        embedder: texts -> normalised ``float32[n, width]`` embeddings.
        name: the run directory or model string (an index records it, so that
            ``graft search`` embeds its queries with the same model).
    """

    def __init__(self, embedder: Callable[[list[str]], np.ndarray], name: str):
        self.embedder = embedder
        self.name = name

    @classmethod
    def pretrained(cls, spec: str) -> SimilarityModel:
        """The pretrained encoder a model string names, as it is."""
        from graft.tasks.similarity.encoder import pretrained_embedder

        return cls(pretrained_embedder(spec), spec)

    @classmethod
    def of(cls, predictor: Any) -> SimilarityModel:
        """A fitted similarity estimator's model: its embeddings are what it predicts (each
        text as given: none is read as a file's path)."""
        run = getattr(predictor, "run_dir_", None)
        name = str(Path(run).resolve()) if run is not None else str(predictor.model_)

        def embed(texts: list[str]) -> np.ndarray:
            texts = list(texts)
            if not texts:
                return np.zeros((0, int(predictor.backbone_.feature_dim)), dtype=np.float32)
            return predictor.fitted_task_.answers(predictor._outputs(texts))

        return cls(embed, name)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings of ``texts``, one row each."""
        return self.embedder(list(texts))

    def index(self, corpus: str | Path, out: str | Path, progress=None) -> dict:
        """Embed the corpus at ``corpus`` into the index folder ``out`` (resumable)."""
        return build_index(self.embed, read_corpus(Path(corpus)), Path(out), self.name, progress)

    def open_index(self, folder: str | Path) -> VectorIndex:
        """The index folder ``folder`` opened for search (once, for many queries)."""
        return VectorIndex(Path(folder).expanduser())

    def search(self, queries: str | list[str], index: Any, top_k: int = 10) -> list:
        """The ``top_k`` documents of each query (one list, for a single query string) in
        ``index``: an index folder, a :class:`VectorIndex`, or a list of document texts."""
        single = isinstance(queries, str)
        vectors = self.embed([queries] if single else list(queries))
        if isinstance(index, list):
            found, scores = rank(vectors, self.embed(index), top_k)
            answers = [
                [
                    {"id": int(i), "score": float(s), "text": index[i]}
                    for i, s in zip(r, q, strict=True)
                ]
                for r, q in zip(found, scores, strict=True)
            ]
        else:
            opened = index if isinstance(index, VectorIndex) else VectorIndex(Path(index))
            answers = opened.search(vectors, top_k)
        return answers[0] if single else answers

    def evaluate(self, data: str | Path, split: str = "test") -> dict:
        """nDCG@10, MRR@10 and recall@100 (BEIR's) on a BEIR folder's ``split`` qrels."""
        path = Path(data).expanduser()
        if not is_beir(path):
            raise DataError(f"{path}: similarity is evaluated on a BEIR folder")
        splits = read_beir(path)
        if split not in splits:
            raise DataError(f"{path}/qrels: no {split}.tsv (it has {', '.join(splits)})")
        retrieval = splits[split].retrieval()
        query_ids, doc_ids = list(retrieval.queries), list(retrieval.corpus)
        metrics = embedding_metrics(
            self.embed([retrieval.queries[q] for q in query_ids]),
            self.embed([retrieval.corpus[d] for d in doc_ids]),
            query_ids,
            doc_ids,
            retrieval.qrels,
        )
        return {"split": split, **{k: metrics[k] for k in (*REPORTED, "recall@10", "queries")}}
