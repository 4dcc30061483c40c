"""A tiny BEIR folder, written per test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCIFACT = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "scifact_beir"

DOCS = {
    "d1": ("Cats", "Cats are small furry animals that purr."),
    "d2": ("Dogs", "Dogs bark and are loyal companions."),
    "d3": ("Rockets", "Rockets burn fuel to reach orbit."),
    "d4": ("Bread", "Bread is baked from flour, water and yeast."),
    "d5": ("Rain", "Rain falls from clouds when droplets grow heavy."),
    "d6": ("Chess", "Chess is a board game of two players."),
}
QUERIES = {
    "q1": "which pet purrs",
    "q2": "animal that barks",
    "q3": "how do spacecraft get to orbit",
    "q4": "how is bread made",
    "q5": "why does it rain",
    "q6": "a game played on a board",
}


def write_beir(folder: Path, qrels: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as handle:
        for key, (title, text) in DOCS.items():
            handle.write(json.dumps({"_id": key, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as handle:
        for key, text in QUERIES.items():
            handle.write(json.dumps({"_id": key, "text": text}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    for split, lines in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(line + "\n" for line in lines)
        )
    return folder


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    return write_beir(
        tmp_path / "beir",
        {
            "train": ["q1\td1\t1", "q2\td2\t1", "q3\td3\t1", "q4\td4\t1"],
            "test": ["q5\td5\t1", "q6\td6\t1"],
        },
    )
