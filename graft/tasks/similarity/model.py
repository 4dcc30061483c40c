"""A similarity model in use: a fitted run's encoder, or a pretrained one as it is.

``SimilarityModel.open("RUN")`` (or a model string such as ``minilm``) embeds texts, writes an
index of a corpus, searches an index or a list of documents, and evaluates retrieval on a BEIR
folder's qrels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from graft.errors import ConfigError, DataError
from graft.tasks.similarity.encoder import SentenceEncoder, load_encoder, pretrained_encoder
from graft.tasks.similarity.index import VectorIndex, build_index, read_corpus
from graft.tasks.similarity.metrics import REPORTED, rank
from graft.tasks.similarity.read import is_beir, read_beir
from graft.tasks.similarity.training import evaluate_encoder

#: A run's folder that holds its encoder.
ENCODER_FOLDER = "encoder"


def is_run(path: Any) -> bool:
    """Whether ``path`` is a similarity run directory."""
    return (Path(str(path)) / ENCODER_FOLDER / "encoder.json").is_file()


class SimilarityModel:
    """An encoder and what it answers (see the module docstring).

    Attributes:
        encoder: the :class:`SentenceEncoder`; name: the run folder or model string.
    """

    def __init__(self, encoder: SentenceEncoder, name: str):
        self.encoder = encoder
        self.name = name

    @classmethod
    def open(cls, source: str | Path) -> SimilarityModel:
        """A run directory's encoder, or the pretrained encoder a model string names."""
        if is_run(source):
            path = Path(source).resolve()
            return cls(load_encoder(path / ENCODER_FOLDER), str(path))
        if Path(str(source)).is_dir() and (Path(str(source)) / "config.json").is_file():
            record = json.loads((Path(str(source)) / "config.json").read_text())
            if "task" in record:
                raise ConfigError(f"{source}: a run of another kind of task, not similarity")
        return cls(pretrained_encoder(str(source)), str(source))

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Normalised embeddings of ``texts``, one row each."""
        return self.encoder.embed(list(texts), batch_size)

    def index(self, corpus: str | Path, out: str | Path, progress=None) -> dict:
        """Embed the corpus at ``corpus`` into the index folder ``out`` (resumable)."""
        return build_index(self.embed, read_corpus(Path(corpus)), Path(out), self.name, progress)

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
        metrics = evaluate_encoder(self.encoder, splits[split].retrieval())
        return {"split": split, **{k: metrics[k] for k in (*REPORTED, "recall@10", "queries")}}
