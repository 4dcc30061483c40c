"""An on-disk vector index of a corpus: FAISS, exact inner product.

Why FAISS (``faiss-cpu``, abi3 wheels on PyPI): an exact flat index answers as the evaluation
ranks (the same documents in the same order), one file written and read by one call, with
approximate indexes (HNSW, IVF) at hand for corpora too large for exact search; usearch is
smaller but approximate by design, LanceDB a database with far more than a search needs.

A folder holds ``index.json`` (the encoder that embedded it, the count, the width, whether
the documents are texts or images),
``documents.jsonl`` (each document's id and text, in index order), ``shards/`` (the embeddings
of each :data:`SHARD` documents, written as they are embedded, so that an interrupted indexing
resumes at the first missing shard) and ``vectors.faiss``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from graft.errors import DataError, RunError

SHARD = 2048
RECORD = "index.json"


def read_corpus(path: Path) -> dict[str, str]:
    """A corpus: a BEIR folder's ``corpus.jsonl``, a JSON Lines file of ``_id`` (or ``id``),
    ``title`` and ``text``, a CSV/TSV of ``id`` and ``text`` columns, or a folder of images
    (id: the path in the folder; text: the absolute path,
    :func:`~graft.tasks.similarity.images.image_folder`)."""
    import csv

    path = Path(path).expanduser()
    if path.is_dir() and not (path / "corpus.jsonl").is_file():
        from graft.tasks.similarity.images import image_folder

        return image_folder(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no such corpus (a BEIR folder, a JSONL, CSV or TSV file)")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))
    corpus = {}
    for number, row in enumerate(rows, 1):
        key = row.get("_id", row.get("id"))
        if key is None or "text" not in row:
            raise DataError(f"{path}: record {number} has no _id (or id) or no text")
        corpus[str(key)] = f"{row.get('title') or ''} {row['text'] or ''}".strip()
    return corpus


def build_index(
    embed, corpus: dict[str, str], out: Path, encoder: str, progress=None, modality: str = "text"
) -> dict:
    """Embed ``corpus`` with ``embed`` (texts, or image paths, -> normalised float32 rows) into
    the index folder ``out``, shard by shard, resuming after the shards already there; its
    record (``modality``: what the documents are, ``text`` or ``image``)."""
    import faiss

    out.mkdir(parents=True, exist_ok=True)
    shards = out / "shards"
    shards.mkdir(exist_ok=True)
    ids, texts = list(corpus), list(corpus.values())
    record_path = out / RECORD
    if record_path.is_file():
        old = json.loads(record_path.read_text())
        if old.get("encoder") != encoder or old.get("count") != len(ids):
            raise RunError(f"{out}: an index of another encoder or corpus; choose another --out")
    record = {"encoder": encoder, "count": len(ids), "metric": "cosine", "complete": False}
    record["modality"] = modality
    record_path.write_text(json.dumps(record, indent=2))
    with (out / "documents.jsonl").open("w", encoding="utf-8") as handle:
        for key, text in corpus.items():
            handle.write(json.dumps({"_id": key, "text": text}) + "\n")
    starts = range(0, len(ids), SHARD)
    for start in progress(starts) if progress else starts:
        file = shards / f"{start // SHARD:05d}.npy"
        if not file.is_file():
            vectors = np.asarray(embed(texts[start : start + SHARD]), dtype=np.float32)
            np.save(file.with_suffix(".tmp.npy"), vectors)
            file.with_suffix(".tmp.npy").rename(file)
    vectors = np.concatenate([np.load(shards / f"{s // SHARD:05d}.npy") for s in starts])
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.write_index(index, str(out / "vectors.faiss"))
    record.update(dim=int(vectors.shape[1]), complete=True)
    record_path.write_text(json.dumps(record, indent=2))
    return record


class VectorIndex:
    """An index folder opened for search: ``record`` (``index.json``), ``ids`` and ``texts``
    of the documents in index order, the FAISS index."""

    def __init__(self, folder: Path):
        import faiss

        folder = Path(folder)
        if not (folder / RECORD).is_file():
            raise RunError(f"{folder}: not an index (no {RECORD}); write one with graft index")
        self.record = json.loads((folder / RECORD).read_text())
        if not self.record.get("complete"):
            raise RunError(f"{folder}: indexing did not finish; run graft index again to resume")
        documents = [json.loads(line) for line in (folder / "documents.jsonl").open()]
        self.ids = [d["_id"] for d in documents]
        self.texts = [d["text"] for d in documents]
        self.index = faiss.read_index(str(folder / "vectors.faiss"))

    def search(self, vectors: np.ndarray, top_k: int) -> list[list[dict]]:
        """The ``top_k`` documents of each query vector: ``{"id", "score", "text"}``, best
        first."""
        scores, found = self.index.search(np.ascontiguousarray(vectors, np.float32), top_k)
        return [
            [
                {"id": self.ids[i], "score": float(s), "text": self.texts[i]}
                for i, s in zip(row, row_scores, strict=True)
                if i >= 0
            ]
            for row, row_scores in zip(found, scores, strict=True)
        ]
