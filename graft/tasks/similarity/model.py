"""A similarity model in use: a fitted model's embeddings, or a pretrained encoder as it is.

:meth:`SimilarityModel.of` wraps a fitted or loaded estimator (``graft.load(RUN)``: its
embeddings are its predictions), :meth:`SimilarityModel.pretrained` the model a model string
names (``minilm``, or an image backbone: ``efficientnet_lite0``). Either embeds texts (or
images, by their files' paths), writes an index of a corpus (or of a folder of images),
searches an index or a list of documents, and evaluates retrieval on a BEIR folder's qrels or
on a table of pairs. A model of images is searched by images only: a text query would need an
image-text model, and is refused in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from graft.errors import ConfigError, DataError
from graft.tasks.similarity.index import VectorIndex, build_index, read_corpus
from graft.tasks.similarity.metrics import REPORTED, embedding_metrics, rank
from graft.tasks.similarity.read import TABLE_SUFFIXES, is_beir, read_beir, read_table


class SimilarityModel:
    """Texts embedded, indexed and searched (see the module docstring).

    Attributes:
        embedder: texts -> normalised ``float32[n, width]`` embeddings.
        name: the run directory or model string (an index records it, so that
            ``graft search`` embeds its queries with the same model).
        modality: what it embeds: ``text``, or ``image`` (image files by their paths).
        unsaved: a fit held in memory only (not loaded from its run): it searches, but writes
            no index, which must name a model that ``graft search`` can load.
    """

    def __init__(
        self, embedder: Callable[[list[str]], np.ndarray], name: str, modality: str = "text"
    ):
        self.embedder = embedder
        self.name = name
        self.modality = modality
        self.unsaved = False

    @classmethod
    def pretrained(cls, spec: str) -> SimilarityModel:
        """The pretrained encoder a model string names, as it is."""
        from graft.tasks.similarity.image_encoder import pretrained_embedder

        embedder = pretrained_embedder(spec)
        return cls(embedder, spec, embedder.modality)

    @classmethod
    def of(cls, predictor: Any) -> SimilarityModel:
        """A fitted similarity estimator's model: its embeddings are what it predicts (each
        text as given: none is read as a file's path)."""
        run = getattr(predictor, "run_dir_", None)
        name = str(Path(run).resolve()) if run is not None else str(predictor.model_)
        unsaved = run is None  # an index would name the pretrained model, not these weights

        def embed(texts: list[str]) -> np.ndarray:
            texts = list(texts)
            if not texts:
                return np.zeros((0, int(predictor.backbone_.feature_dim)), dtype=np.float32)
            return predictor.fitted_task_.answers(predictor._outputs(texts))

        model = cls(embed, name, predictor.backbone_.modality)
        model.unsaved = unsaved
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings of ``texts``, one row each."""
        return self.embedder(list(texts))

    def index(self, corpus: str | Path, out: str | Path, progress=None) -> dict:
        """Embed the corpus at ``corpus`` (texts; a folder of images for a model of images)
        into the index folder ``out`` (resumable)."""
        from graft.tasks.similarity.images import CROSS_MODAL, is_image_path

        if self.unsaved:
            raise ConfigError(
                "an index names the model that embeds its queries: index with a saved run "
                "(graft index RUN CORPUS, or graft.load(RUN))"
            )
        documents = read_corpus(Path(corpus))
        images = bool(documents) and all(is_image_path(t) for t in documents.values())
        if images != (self.modality == "image"):
            held = "images" if images else "texts"
            raise ConfigError(
                f"{corpus} holds {held}; {self.name} embeds {self.modality}s: {CROSS_MODAL}"
            )
        return build_index(
            self.embed, documents, Path(out), self.name, progress, modality=self.modality
        )

    def open_index(self, folder: str | Path) -> VectorIndex:
        """The index folder ``folder`` opened for search (once, for many queries)."""
        return VectorIndex(Path(folder).expanduser())

    def search(self, queries: str | list[str], index: Any, top_k: int = 10) -> list:
        """The ``top_k`` documents of each query (one list, for a single query string) in
        ``index``: an index folder, a :class:`VectorIndex`, or a list of document texts."""
        single = isinstance(queries, str)
        asked = [queries] if single else list(queries)
        if self.modality == "image":
            from graft.tasks.similarity.images import check_image_queries

            where = "the documents" if isinstance(index, list) else f"{self.name}'s index"
            check_image_queries(asked, where)
        vectors = self.embed(asked)
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
        """nDCG@10, MRR@10 and recall@100 (BEIR's) on a BEIR folder's ``split`` qrels, or on a
        table of pairs (its queries searching all its documents; ``split``: ``table``)."""
        path = Path(data).expanduser()
        if is_beir(path):
            splits = read_beir(path)
            if split not in splits:
                raise DataError(f"{path}/qrels: no {split}.tsv (it has {', '.join(splits)})")
            pairs = splits[split]
        elif path.is_file() and path.suffix in TABLE_SUFFIXES:
            pairs, split = read_table(path), "table"
        else:
            raise DataError(f"{path}: similarity is evaluated on a BEIR folder or a table of pairs")
        if pairs.modality != self.modality:
            raise ConfigError(
                f"{path} holds {pairs.modality} pairs; {self.name} embeds {self.modality}s"
            )
        retrieval = pairs.retrieval()
        query_ids, doc_ids = list(retrieval.queries), list(retrieval.corpus)
        metrics = embedding_metrics(
            self.embed([retrieval.queries[q] for q in query_ids]),
            self.embed([retrieval.corpus[d] for d in doc_ids]),
            query_ids,
            doc_ids,
            retrieval.qrels,
        )
        return {"split": split, **{k: metrics[k] for k in (*REPORTED, "recall@10", "queries")}}
