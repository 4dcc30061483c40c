"""Readers of similarity data: BEIR folders, tables, recognition, one-line errors."""

from __future__ import annotations

import json

import pytest

from graft.errors import DataError
from graft.tasks import claiming_kind, task_class
from graft.tasks.similarity.read import read_any, read_beir, read_table
from tests.tasks.similarity.conftest import SCIFACT, write_beir


def test_beir_folder_reads_splits_with_titles_and_pairs(beir):
    splits = read_beir(beir)
    assert set(splits) == {"train", "test"}
    train = splits["train"]
    assert len(train) == 4
    assert train.anchors[0] == "which pet purrs"
    assert train.positives[0] == "Cats Cats are small furry animals that purr."
    retrieval = splits["test"].retrieval()
    assert retrieval.qrels == {"q5": {"d5": 1}, "q6": {"d6": 1}}
    assert len(retrieval.corpus) == 6


def test_auto_recognises_beir_folders_and_pair_tables(beir, tmp_path):
    assert claiming_kind(str(beir)) is task_class("similarity")
    table = tmp_path / "pairs.csv"
    table.write_text("query,positive\nwhich pet purrs,cats purr\n")
    assert claiming_kind(str(table)) is task_class("similarity")
    labels = tmp_path / "labels.csv"
    labels.write_text("text,label\nhello,a\n")
    assert not task_class("similarity").claims(str(labels))


def test_triplets_and_scored_pairs_from_tables(tmp_path):
    triplets = tmp_path / "t.jsonl"
    rows = [
        {"anchor": "a", "positive": "p", "negative": "n"},
        {"anchor": "b", "positive": "q", "negative": "m"},
    ]
    triplets.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = read_table(triplets)
    assert data.negatives == ["n", "m"] and data.scores is None
    scored = tmp_path / "s.tsv"
    scored.write_text("sentence1\tsentence2\tscore\nx\ty\t0.9\nu\tv\t0.1\n")
    data = read_table(scored)
    assert data.scores == [0.9, 0.1]
    assert data.relevant().tolist() == [True, False]


def test_malformed_qrels_row_names_file_and_line(tmp_path):
    folder = write_beir(tmp_path / "b", {"test": ["q1\td1\t1", "q2 d2 1"]})
    with pytest.raises(
        DataError, match=r"qrels/test.tsv:3: expected query-id, corpus-id and score"
    ):
        read_beir(folder)


def test_unknown_document_id_names_file_and_line(tmp_path):
    folder = write_beir(tmp_path / "b", {"test": ["q1\td1\t1", "q2\tnope\t1"]})
    with pytest.raises(DataError, match=r"test.tsv:3: corpus-id 'nope' is not in corpus.jsonl"):
        read_beir(folder)


def test_table_row_errors_are_one_line(tmp_path):
    table = tmp_path / "p.csv"
    table.write_text("query,positive\na,b\nc,\n")
    with pytest.raises(DataError, match=r"p.csv:3: the positive column is empty"):
        read_table(table)


def test_near_miss_names_what_a_beir_folder_lacks(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    reason = task_class("similarity").near_miss(str(folder))
    assert "queries.jsonl and qrels missing" in reason
    with pytest.raises(DataError, match="queries.jsonl and qrels missing"):
        read_any(folder)


def test_validation_split_holds_out_whole_queries(beir):
    train = read_beir(beir)["train"]
    fit, val = task_class("similarity").split(train, 0.25, 0)
    assert len(val) == 1
    assert not {train.query_ids[i] for i in fit} & {train.query_ids[i] for i in val}


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs shared/datasets/scifact_beir")
def test_scifact_counts_match_beir():
    splits = read_beir(SCIFACT)
    assert len(splits["train"].retrieval().qrels) == 809
    assert len(splits["test"].retrieval().qrels) == 300
    assert sum(len(d) for d in splits["test"].retrieval().qrels.values()) == 339
    assert len(splits["test"].corpus) == 5183
