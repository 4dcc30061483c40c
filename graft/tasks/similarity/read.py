"""Reading similarity data: BEIR folders and tables of pairs, triplets or scored pairs.

A **BEIR folder** holds ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl``
(``{"_id", "text"}``) and ``qrels/{train,dev,test}.tsv`` (``query-id corpus-id score``, a
header line first). A document's text is its title and text joined by a space, as BEIR's
sentence-transformers models read it. A **table** (CSV, TSV, JSON Lines, Parquet, a DataFrame
or a ``datasets.Dataset``) holds a query column and a positive column, and optionally a
negative column (triplets) or a score column (scored pairs); the columns are recognised by
name (:data:`ANCHOR_NAMES`, ...). Columns whose values are all image files (by extension)
hold images, their paths relative to the table's folder (:mod:`.images`). Bad rows raise a
DataError naming the file and line.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from graft.errors import DataError
from graft.tasks.similarity.data import ImageSimilarityData, Retrieval, SimilarityData
from graft.tasks.similarity.images import image_columns, resolve_images

#: Column names (lower case) recognised as the query (anchor) of a pair, in order of preference.
ANCHOR_NAMES = ("query", "anchor", "sentence1", "text1", "sentence_a")
#: ... as the positive (the document a query should find).
POSITIVE_NAMES = ("positive", "pos", "document", "passage", "sentence2", "text2", "sentence_b")
#: ... as a hard negative of a triplet.
NEGATIVE_NAMES = ("negative", "neg", "hard_negative")
#: ... as a pair's similarity score (scored pairs train a cosine loss).
SCORE_NAMES = ("score", "similarity", "label")
#: Table files by suffix.
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
#: The qrels splits a BEIR folder may hold.
SPLITS = ("train", "dev", "test")


def is_beir(path: Path) -> bool:
    """Whether ``path`` is a folder of BEIR's three parts."""
    return path.is_dir() and all(
        (path / name).exists() for name in ("corpus.jsonl", "queries.jsonl", "qrels")
    )


def beir_near_miss(path: Path) -> str | None:
    """Why the folder ``path`` is nearly a BEIR folder (it has a corpus.jsonl), or None."""
    if not path.is_dir() or not (path / "corpus.jsonl").is_file() or is_beir(path):
        return None
    missing = [n for n in ("queries.jsonl", "qrels") if not (path / n).exists()]
    return (
        f"{path}: a BEIR folder (similarity) holds queries.jsonl and qrels/{{train,dev,test}}.tsv "
        f"beside corpus.jsonl; {' and '.join(missing)} missing"
    )


class _utf8:
    """A text file opened to read as UTF-8, refused (DataError naming it) when it is not."""

    def __init__(self, path: Path, newline: str | None = None):
        self.path, self.handle = path, open(path, encoding="utf-8", newline=newline)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()

    def __iter__(self):
        try:
            yield from self.handle
        except UnicodeDecodeError as error:
            raise DataError(
                f"{self.path}: not UTF-8 text ({error.reason} at byte {error.start})"
            ) from None


def _jsonl(path: Path) -> list[dict]:
    rows = []
    with _utf8(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not a JSON object ({error.msg})") from None
            except RecursionError:
                raise DataError(f"{path}:{number}: not a JSON object (nested too deeply)") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: not a JSON object")
            rows.append(row)
    return rows


def read_texts(path: Path, corpus: bool) -> dict[str, str]:
    """``corpus.jsonl`` or ``queries.jsonl`` as id -> text (a document's title first)."""
    texts: dict[str, str] = {}
    for number, row in enumerate(_jsonl(path), 1):
        if "_id" not in row or "text" not in row:
            raise DataError(f"{path}: record {number} has no _id or no text: {str(row)[:80]}")
        text = str(row.get("text") or "")
        if corpus and row.get("title"):
            text = f"{row['title']} {text}".strip()
        texts[str(row["_id"])] = text
    return texts


def read_qrels(path: Path, queries: dict, corpus: dict) -> dict[str, dict[str, int]]:
    """A qrels file as query id -> {document id: relevance}; a malformed row, or an id that
    ``queries.jsonl`` or ``corpus.jsonl`` lacks, raises a DataError naming the file and line."""
    qrels: dict[str, dict[str, int]] = {}
    first = True  # the first line that is not blank may be the header
    with _utf8(path) as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\n\r").split("\t")
            if not line.strip() or first and fields[:2] == ["query-id", "corpus-id"]:
                first = first and not line.strip()
                continue
            first = False
            if len(fields) != 3:
                raise DataError(
                    f"{path}:{number}: expected query-id, corpus-id and score separated by "
                    f"tabs, got {line.strip()[:80]!r}"
                )
            query, doc, score = fields
            try:
                relevance = int(float(score))
            except (ValueError, OverflowError):
                raise DataError(f"{path}:{number}: score {score!r} is not a number") from None
            if query not in queries:
                raise DataError(f"{path}:{number}: query-id {query!r} is not in queries.jsonl")
            if doc not in corpus:
                raise DataError(f"{path}:{number}: corpus-id {doc!r} is not in corpus.jsonl")
            qrels.setdefault(query, {})[doc] = relevance
    if not qrels:
        raise DataError(f"{path}: no relevance judgements")
    return qrels


def read_beir(path: Path) -> dict[str, SimilarityData]:
    """A BEIR folder's splits (those of ``qrels/``) as pairs of each relevant document."""
    corpus = read_texts(path / "corpus.jsonl", corpus=True)
    queries = read_texts(path / "queries.jsonl", corpus=False)
    splits = {}
    for split in SPLITS:
        file = path / "qrels" / f"{split}.tsv"
        if file.is_file():
            qrels = read_qrels(file, queries, corpus)
            splits[split] = SimilarityData.from_retrieval(
                Retrieval(corpus, {q: queries[q] for q in qrels}, qrels, str(file))
            )
    if not splits:
        raise DataError(f"{path / 'qrels'}: no train.tsv, dev.tsv nor test.tsv")
    return splits


# Tables --------------------------------------------------------------------------------------


def table_columns(path: Path) -> list[str]:
    """The column names of a table file (its first line or record), [] when unreadable."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
        if path.suffix == ".jsonl":
            row = json.loads(first)
            return list(row) if isinstance(row, dict) else []
        return next(csv.reader([first], delimiter="\t" if path.suffix == ".tsv" else ","))
    except (OSError, ValueError, ImportError, StopIteration):
        return []


def find_columns(names: list[str]) -> dict[str, str | None] | None:
    """The anchor, positive, negative and score columns among ``names`` (None when there is no
    anchor and positive pair of columns)."""
    lower = {name.lower().strip(): name for name in names}

    def first(options):
        return next((lower[o] for o in options if o in lower), None)

    found = {
        "anchor": first(ANCHOR_NAMES),
        "positive": first(POSITIVE_NAMES),
        "negative": first(NEGATIVE_NAMES),
        "score": first(SCORE_NAMES),
    }
    return found if found["anchor"] and found["positive"] else None


def _rows(data: Any) -> tuple[list[dict], str, int]:
    """The rows of a table (a file, a DataFrame or a datasets.Dataset), its name, and the line
    number of its first row."""
    if hasattr(data, "column_names") and hasattr(data, "to_list"):
        return data.to_list(), "the Dataset", 0
    if hasattr(data, "columns") and hasattr(data, "to_dict"):
        return data.to_dict("records"), "the DataFrame", 0
    path = Path(data)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist(), str(path), 1
        except (pa.ArrowException, OSError) as error:
            message = " ".join(str(error).split())[:200]
            raise DataError(f"{path}: not a Parquet file graft can read ({message})") from None
    if path.suffix == ".jsonl":
        return _jsonl(path), str(path), 1
    with _utf8(path, newline="") as handle:
        delimiter = "\t" if path.suffix == ".tsv" else ","
        reader = csv.DictReader(handle, delimiter=delimiter)  # type: ignore[arg-type]
        rows = []
        try:
            for row in reader:
                if None in row:  # DictReader's key for the cells beyond the header's
                    cells, names = len(row) - 1 + len(row[None]), len(row) - 1
                    where = f"{path}:{reader.line_num}"
                    raise DataError(f"{where}: {cells} cells under a header of {names}")
                rows.append(row)
        except csv.Error as error:
            raise DataError(f"{path}:{reader.line_num}: not a CSV row ({error})") from None
        return rows, str(path), 2


def read_table(data: Any) -> SimilarityData:
    """Pairs, triplets or scored pairs from a table (see the module docstring)."""
    rows, source, first_line = _rows(data)
    names = list(rows[0]) if rows else []
    columns = find_columns(names)
    if columns is None:
        raise DataError(
            f"{source}: similarity data needs a query column ({', '.join(ANCHOR_NAMES)}) and a "
            f"positive column ({', '.join(POSITIVE_NAMES)}); the columns are {names}"
        )
    pairs: dict[str, list] = {"anchor": [], "positive": [], "negative": [], "score": []}
    for offset, row in enumerate(rows):
        where = f"{source}:{first_line + offset}" if first_line else f"{source} row {offset}"
        for part, column in columns.items():
            if column is None:
                continue
            value = row.get(column)
            if part == "score":
                try:
                    score = float(value)
                except (TypeError, ValueError, OverflowError):
                    raise DataError(f"{where}: {column} {value!r} is not a number") from None
                if not math.isfinite(score):
                    raise DataError(f"{where}: {column} {value!r} is not a finite number")
                pairs[part].append(score)
            elif value is None or not str(value).strip():
                raise DataError(f"{where}: the {column} column is empty")
            else:
                pairs[part].append(str(value))
    if not pairs["anchor"]:
        raise DataError(f"{source}: no rows")
    made = SimilarityData
    if image_columns(pairs, columns, source):
        resolve_images(pairs, columns, source, first_line)
        made = ImageSimilarityData
    return made.from_pairs(
        pairs["anchor"],
        pairs["positive"],
        pairs["negative"] or None,
        pairs["score"] or None,
        source,
    )


def read_any(data: Any) -> dict[str, SimilarityData]:
    """A BEIR folder's splits, or a table as ``{"train": ...}``."""
    if isinstance(data, SimilarityData):
        return {"train": data}
    if isinstance(data, str | Path):
        path = Path(data).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        if path.is_dir():
            if not is_beir(path):
                raise DataError(
                    beir_near_miss(path)
                    or f"{path}: a folder of similarity data is a BEIR folder (corpus.jsonl, "
                    "queries.jsonl, qrels/)"
                )
            return read_beir(path)
        if path.suffix not in TABLE_SUFFIXES:
            raise DataError(f"{path}: similarity data is a BEIR folder or a CSV/TSV/JSONL/Parquet")
    return {"train": read_table(data)}
