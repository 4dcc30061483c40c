"""Tagged sentences (NER): CoNLL columns, JSONL tokens/tags and text+entities, tagging schemes,
spans, and every bad-input error named with its file and line (on CoNLL-2003 where it helps)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from graft.errors import ConfigError, DataError
from graft.tasks.tagging import (
    SchemeError,
    TaggedSentences,
    detect_scheme,
    read_tagged,
    read_tagged_splits,
    spans_from_tags,
    tags_from_spans,
    to_bioes,
    to_iob2,
    word_offsets,
)
from tests.conftest import SHARED

CONLL = SHARED / "conll2003"
#: B-/I- tag counts per type, from the dataset's README.
README_COUNTS = {
    "train": {"PER": (6600, 4528), "LOC": (7140, 1157), "ORG": (6321, 3704), "MISC": (3438, 1155)},
    "valid": {"PER": (1842, 1307), "LOC": (1837, 257), "ORG": (1341, 751), "MISC": (922, 346)},
    "test": {"PER": (1617, 1156), "LOC": (1668, 257), "ORG": (1661, 835), "MISC": (702, 216)},
}


def tag_counts(data: TaggedSentences) -> dict[str, tuple[int, int]]:
    counts = Counter(tag for tags in data.tags for tag in tags)
    return {kind: (counts[f"B-{kind}"], counts[f"I-{kind}"]) for kind in data.entity_types}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list) -> Path:
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


@pytest.fixture(scope="module")
def valid() -> TaggedSentences:
    if not (CONLL / "valid.txt").is_file():
        pytest.skip(f"{CONLL} is missing")
    return read_tagged(CONLL / "valid.txt")


@pytest.fixture(scope="module")
def sample(valid) -> TaggedSentences:
    """300 sentences spread over valid.txt."""
    return valid.subset(range(0, 3000, 10))


# --- CoNLL-2003 as distributed -------------------------------------------------------------


def test_valid_reads_every_sentence_with_its_line(valid):
    assert len(valid) == 3250 and sum(map(len, valid.tokens)) == 51362
    assert valid.scheme == "IOB2" and valid.source == str(CONLL / "valid.txt")
    assert valid.tokens[0][:3] == ["CRICKET", "-", "LEICESTERSHIRE"]
    assert valid.tags[0][:3] == ["O", "O", "B-ORG"]
    assert valid.lines[:2] == ["valid.txt, line 3", "valid.txt, line 15"]
    assert valid.texts[0].startswith("CRICKET - LEICESTERSHIRE TAKE")
    assert valid.offsets[0][:3] == [(0, 7), (8, 9), (10, 24)]
    assert valid.entity_types == ["LOC", "MISC", "ORG", "PER"]
    assert valid.tag_names == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC"] + [
        "B-ORG",
        "I-ORG",
        "B-PER",
        "I-PER",
    ]
    assert tag_counts(valid) == README_COUNTS["valid"]


def test_folder_reads_train_valid_and_test_with_the_readme_counts():
    if not CONLL.is_dir():
        pytest.skip(f"{CONLL} is missing")
    train, val, test = read_tagged_splits(CONLL)
    assert [len(train), len(val), len(test)] == [14041, 3250, 3453]
    assert [sum(map(len, d.tokens)) for d in (train, val, test)] == [203621, 51362, 46435]
    assert tag_counts(train) == README_COUNTS["train"]
    assert tag_counts(test) == README_COUNTS["test"]
    assert sum(map(len, train.spans())) == 6600 + 7140 + 6321 + 3438


# --- the three formats read to the same sentences ------------------------------------------


def test_column_and_token_jsonl_files_read_to_the_same_sentences(sample, tmp_path):
    columns = "\n\n".join(
        "\n".join(f"{w}\t{t}" for w, t in zip(words, tags, strict=True))
        for words, tags in zip(sample.tokens, sample.tags, strict=True)
    )
    from_columns = read_tagged(write(tmp_path / "sample.conll", columns + "\n"))
    records = [
        {"tokens": words, ("tags" if i % 2 else "ner_tags"): tags}
        for i, (words, tags) in enumerate(zip(sample.tokens, sample.tags, strict=True))
    ]
    from_jsonl = read_tagged(write_jsonl(tmp_path / "sample.jsonl", records))
    for data in (from_columns, from_jsonl):
        assert data.content_hash() == sample.content_hash()
        assert data.tokens == sample.tokens and data.tags == sample.tags
        assert data.texts == sample.texts and data.offsets == sample.offsets
    assert from_jsonl.lines[:2] == ["sample.jsonl, line 1", "sample.jsonl, line 2"]
    assert from_columns.lines[1] == f"sample.conll, line {len(sample.tokens[0]) + 2}"


def entity_item(i: int, start: int, end: int, kind: str, text: str):
    """Each record writes its entities in one of the three shapes the reader accepts."""
    if i % 3 == 0:
        return [start, end, kind]  # Doccano
    if i % 3 == 1:
        return {"start": start, "end": end, "label": kind}
    value = {"start": start, "end": end, "text": text[start:end], "labels": [kind]}
    return {"value": value, "from_name": "label", "type": "labels"}  # Label Studio


def char_entities(data: TaggedSentences) -> list[list[tuple[int, int, str]]]:
    return [
        [(offsets[s][0], offsets[e - 1][1], kind) for s, e, kind in spans]
        for offsets, spans in zip(data.offsets, data.spans(), strict=True)
    ]


def test_text_with_entity_spans_reads_to_the_same_entities(sample, tmp_path):
    expected = char_entities(sample)
    records = [
        {"text": text, "entities": [entity_item(i, s, e, kind, text) for s, e, kind in found]}
        for i, (text, found) in enumerate(zip(sample.texts, expected, strict=True))
    ]
    data = read_tagged(write_jsonl(tmp_path / "spans.jsonl", records))
    assert len(data) == 300 and data.scheme == "IOB2"
    assert data.texts == sample.texts
    assert char_entities(data) == expected
    assert sum(map(len, expected)) > 400
    # graft's word tokenizer splits CoNLL tokens such as "1996-08-22" or "U.S."; where every
    # token is one word or one mark, tokens and tags are the CoNLL ones exactly
    atomic = [
        i
        for i, words in enumerate(sample.tokens)
        if all(word_offsets(w) == [(0, len(w))] for w in words)
    ]
    assert len(atomic) > 100
    assert [data.tokens[i] for i in atomic] == [sample.tokens[i] for i in atomic]
    assert [data.tags[i] for i in atomic] == [sample.tags[i] for i in atomic]


# --- schemes ---------------------------------------------------------------------------------


def iob1_lines(lines: list[str]) -> list[str]:
    """CoNLL lines with the last column rewritten from IOB2 to IOB1, independently of graft:
    B-X stays only where it directly follows an X token."""
    result, previous = [], "O"
    for line in lines:
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            result.append(line)
            previous = "O"
            continue
        tag = fields[-1]
        if tag.startswith("B-") and previous[2:] != tag[2:]:
            tag = "I-" + tag[2:]
        result.append(" ".join(fields[:-1] + [tag]))
        previous = fields[-1]
    return result


def test_iob1_and_bioes_files_read_back_to_the_iob2_tags(valid, tmp_path):
    lines = (CONLL / "valid.txt").read_text(encoding="utf-8").split("\n")
    iob1 = iob1_lines(lines)
    assert sum(line.endswith(" B-PER") for line in iob1) < 10  # adjacent PER entities only
    from_iob1 = read_tagged(write(tmp_path / "valid.iob", "\n".join(iob1)))
    assert from_iob1.scheme == "IOB1" and from_iob1.tags == valid.tags
    assert from_iob1.tokens == valid.tokens
    assert from_iob1.lines == [line.replace("valid.txt", "valid.iob") for line in valid.lines]

    bioes = [to_bioes(tags) for tags in valid.tags]
    text = "\n\n".join(
        "\n".join(f"{w} {t}" for w, t in zip(words, tags, strict=True))
        for words, tags in zip(valid.tokens, bioes, strict=True)
    )
    from_bioes = read_tagged(write(tmp_path / "valid.txt", text))
    assert from_bioes.scheme == "BIOES" and from_bioes.tags == valid.tags
    lengths = Counter(min(e - s, 2) for spans in valid.spans() for s, e, _ in spans)
    counts = Counter(tag[0] for tags in bioes for tag in tags)
    assert counts["S"] == lengths[1] and counts["E"] == counts["B"] == lengths[2]


def test_detect_scheme():
    assert detect_scheme([["B-PER", "I-PER", "O"], ["O"]]) == "IOB2"
    assert detect_scheme([["I-PER", "I-PER", "O", "I-LOC"]]) == "IOB1"
    assert detect_scheme([["I-PER", "B-PER"]]) == "IOB1"  # B- only after its own type
    assert detect_scheme([["O", "S-PER", "B-LOC", "E-LOC"]]) == "BIOES"
    assert detect_scheme([["O", "O"], []]) == "IOB2"
    with pytest.raises(SchemeError, match="'U-PER' is neither O nor") as caught:
        detect_scheme([["O"], ["O", "U-PER"]])
    assert (caught.value.sentence, caught.value.position) == (1, 1)


def test_conversions_between_schemes_and_spans():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
    assert to_iob2(iob1, "IOB1") == iob2
    assert to_iob2(iob2, "bio") == iob2
    bioes = ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG"]
    assert to_bioes(iob2) == bioes and to_iob2(bioes, "IOBES") == iob2
    assert to_bioes(["B-X", "I-X", "I-X", "O"]) == ["B-X", "I-X", "E-X", "O"]
    assert to_iob2(["B-X", "I-X", "O"], "BIOES") == ["B-X", "I-X", "O"]  # left open: ends there
    assert spans_from_tags(iob2) == [(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC"), (5, 6, "ORG")]
    assert tags_from_spans(6, [(4, 5, "LOC"), (0, 2, "PER")]) == [
        "B-PER",
        "I-PER",
        "O",
        "O",
        "B-LOC",
        "O",
    ]
    for bad, scheme, position in [
        (["O", "I-PER"], "IOB2", 1),
        (["B-LOC", "I-PER"], "IOB2", 1),
        (["I-PER"], "IOB2", 0),
        (["S-PER", "E-PER"], "BIOES", 1),
        (["B-PER", "E-PER", "I-PER"], "BIOES", 2),
        (["B-PER", "E-PER"], "IOB2", 1),
        (["B-PER", "E-PER"], "IOB1", 1),
    ]:
        with pytest.raises(SchemeError) as caught:
            to_iob2(bad, scheme, sentence=4)
        assert (caught.value.sentence, caught.value.position) == (4, position), bad
    with pytest.raises(SchemeError, match="I-PER follows O"):
        spans_from_tags(["O", "I-PER"])
    with pytest.raises(ValueError, match="overlaps"):
        tags_from_spans(4, [(0, 2, "A"), (1, 3, "B")])
    with pytest.raises(ValueError, match="outside"):
        tags_from_spans(2, [(1, 3, "A")])


def test_spans_and_tags_round_trip_on_real_sentences(valid):
    for tags in valid.tags:
        assert tags_from_spans(len(tags), spans_from_tags(tags)) == tags
        assert to_iob2(to_bioes(tags), "BIOES") == tags


# --- errors name the file and line ---------------------------------------------------------

CONLL_LINES = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O

Peter NNP B-NP B-PER
said VBD B-VP O
Smith NNP B-NP I-PER
"""


def test_an_i_tag_that_continues_nothing_is_named_with_its_line(tmp_path):
    path = write(tmp_path / "train.txt", CONLL_LINES)
    with pytest.raises(DataError) as caught:
        read_tagged(path)
    assert str(caught.value).startswith(f"{path}, line 8: I-PER follows O and so continues")
    assert "read as IOB2" in str(caught.value)
    bioes = write(tmp_path / "bioes.txt", "EU S-ORG\n\nsaid O\nSmith E-PER\n")
    with pytest.raises(DataError, match=r"bioes.txt, line 4: E-PER follows O"):
        read_tagged(bioes)
    rows = [{"tokens": ["a", "b"], "tags": ["B-X", "O"]}, {"tokens": ["c"], "tags": ["I-Y"]}]
    with pytest.raises(DataError, match=r"rows.jsonl, line 2, token 1: I-Y starts the sentence"):
        read_tagged(write_jsonl(tmp_path / "rows.jsonl", rows))
    # the same tags read as IOB1 when asked
    data = read_tagged(path, scheme="IOB1")
    assert data.scheme == "IOB1" and data.tags[1] == ["B-PER", "O", "B-PER"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", "", "the file is empty"),
        ("blank.txt", "\n  \n\n", "the file is empty"),
        ("docs.txt", "-DOCSTART- -X- -X- O\n\n", "holds no sentences"),
        ("few.txt", "EU\nrejects\n", "line 1: 1 column; a column file needs the token"),
        ("width.txt", "EU NNP B-ORG\nrejects VBZ O\n\nPeter B-PER\n", "line 4: 2 columns where"),
        ("tag.txt", "EU NNP B-ORG\nrejects VBZ ORG\n", "line 2: tag 'ORG' is neither O nor"),
        ("bad.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n\n{"tokens": [\n', "line 3: not valid"),
        ("list.jsonl", '["a", "b"]\n', "line 1: expected a JSON object"),
        ("array.txt", '[\n {"text": "a"}\n]\n', "a JSON array; graft reads JSON Lines"),
        ("keys.jsonl", '{"words": ["a"]}\n', "line 1: expected 'tokens' with 'tags'"),
        ("len.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', "line 1: 2 tokens but 1 tags"),
        ("ids.jsonl", '{"tokens": ["a"], "ner_tags": [3]}\n', "line 1: 'ner_tags' holds numbers"),
        (
            "tok.jsonl",
            '{"tokens": ["a", " "], "tags": ["O", "O"]}\n',
            r"line 1: token 2 \(' '\) is not",
        ),
        ("mixed.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"text": "a"}\n', "line 2: no 'tokens'"),
        ("none.jsonl", '{"text": "EU rejects"}\n', "no record holds entities"),
    ],
)
def test_bad_files_are_named_with_their_line(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match=message) as caught:
        read_tagged(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_text_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("EU B-ORG\n\nM\u00fcller B-PER\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt, line 3: not valid UTF-8"):
        read_tagged(path)


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ([[0, 2, "ORG"], [1, 10, "MISC"]], r"line 2: entities \[0, 2, 'ORG'\] and .* overlap"),
        ([[3, 40, "ORG"]], r"line 2: .*outside the text of 10 characters"),
        ([[3, 3, "ORG"]], r"line 2: .*empty or outside"),
        ([[2, 3, "ORG"]], r"line 2: entity \[2, 3, 'ORG'\] \(' '\) covers no word"),
        ([[0, "2", "ORG"]], "line 2: .*start and end must be integers"),
        ([[0, 2, ""]], "line 2: .*the label must be a non-empty type name"),
        ([{"start": 0, "end": 2, "labels": ["ORG", "LOC"]}], "line 2: .*has 2 labels"),
        ([{"value": {"start": 0, "end": 2, "text": "EV", "labels": ["ORG"]}}], "differs from"),
        ([{"begin": 0}], "line 2: entity .* is neither"),
        ({"start": 0}, "line 2: the entities must be a list"),
    ],
)
def test_bad_entity_spans_are_refused_with_their_line(tmp_path, entities, message):
    first = {"text": "Fine.", "entities": []}
    path = write_jsonl(
        tmp_path / "spans.jsonl", [first, {"text": "EU rejects", "entities": entities}]
    )
    with pytest.raises(DataError, match=message):
        read_tagged(path)


def test_label_column_picks_the_tag_column(tmp_path):
    path = write(tmp_path / "three.txt", "EU B-ORG B-NP\nrejects O B-VP\n\nPeter B-PER B-NP\n")
    assert read_tagged(path, label_column=1).tags == [["B-ORG", "O"], ["B-PER"]]
    assert read_tagged(path, label_column=-2).tags == [["B-ORG", "O"], ["B-PER"]]
    assert read_tagged(path).tags == [["B-NP", "B-VP"], ["B-NP"]]  # the last column
    for bad, message in [(0, "token column"), (3, "outside the 3 columns"), ("1", "an integer")]:
        with pytest.raises(ConfigError, match=message):
            read_tagged(path, label_column=bad)
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"tokens": ["a"], "tags": ["O"]}])
    with pytest.raises(ConfigError, match="label_column applies to column files"):
        read_tagged(rows, label_column=1)
    with pytest.raises(ConfigError, match="unknown tagging scheme 'BILOU'"):
        read_tagged(path, scheme="BILOU")


# --- raw text with entities ----------------------------------------------------------------


def test_an_entity_boundary_inside_a_word_splits_the_word(tmp_path):
    text = "Obamacare passed in  the U.S. yesterday"
    records = [{"text": text, "label": [[0, 5, "PER"], [24, 29, "LOC"]]}]  # Doccano's key
    data = read_tagged(write_jsonl(tmp_path / "doccano.jsonl", records))
    assert data.tokens == [
        ["Obama", "care", "passed", "in", "the", "U", ".", "S", ".", "yesterday"]
    ]
    assert data.tags == [["B-PER", "O", "O", "O", "O", "B-LOC", "I-LOC", "I-LOC", "I-LOC", "O"]]
    assert data.texts == [text] and data.offsets[0][:2] == [(0, 5), (5, 9)]
    assert [text[s:e] for s, e in data.offsets[0]] == data.tokens[0]


def test_entity_text_details(tmp_path, caplog):
    records = [
        {"text": "  Paris  is nice", "entities": [[0, 8, "LOC"]]},
        {"text": "Berlin Berlin", "entities": [[0, 6, "LOC"], [0, 6, "LOC"], [7, 13, "LOC"]]},
        {"text": "   ", "entities": []},
        {"text": "नमस्ते दुनिया", "entities": [{"start": 7, "end": 13, "label": "LOC"}]},
        {"text": "no entities here"},
    ]
    with caplog.at_level(logging.WARNING, logger="graft"):
        data = read_tagged(write_jsonl(tmp_path / "text.jsonl", records))
    assert "skipped 1 record(s) with no tokens (first: line 3)" in caplog.text
    assert data.tokens[0] == ["Paris", "is", "nice"] and data.tags[0] == ["B-LOC", "O", "O"]
    assert data.tags[1] == ["B-LOC", "B-LOC"]  # a duplicate counts once; adjacent stay apart
    assert data.tokens[2] == ["नमस्ते", "दुनिया"] and data.tags[2] == ["O", "B-LOC"]
    assert data.tags[3] == ["O", "O", "O"]
    assert data.lines == [f"text.jsonl, line {n}" for n in (1, 2, 4, 5)]


# --- the container and the folder ----------------------------------------------------------


def test_tagged_sentences_subset_and_hash(sample):
    part = sample.subset([2, 0])
    assert len(part) == 2 and part.tokens == [sample.tokens[2], sample.tokens[0]]
    assert part.lines == [sample.lines[2], sample.lines[0]] and part.offsets[1] == sample.offsets[0]
    assert part.content_hash() == sample.subset([2, 0]).content_hash()
    assert part.content_hash() != sample.subset([0, 2]).content_hash()
    changed = sample.subset([2, 0])
    changed.tags[0] = ["O"] * len(changed.tags[0])
    assert changed.content_hash() != part.content_hash()
    with pytest.raises(ValueError, match="2 tokens, 1 tags"):
        TaggedSentences([["a", "b"]], [["O"]], "x", ["x, line 1"])


def test_format_is_decided_by_content_and_folders_name_their_splits(tmp_path):
    folder = tmp_path / "ner"
    folder.mkdir()
    write_jsonl(folder / "train.txt", [{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}])
    write(folder / "dev.tsv", "{\tO\nPeter\tB-PER\n")  # a column file whose first token is "{"
    write(folder / ".test.txt", "junk")
    train, val, test = read_tagged_splits(folder)
    assert train.tags == [["B-ORG", "O"]] and val.tokens == [["{", "Peter"]] and test is None
    assert read_tagged_splits(folder / "dev.tsv")[1:] == (None, None)
    write(folder / "train.conll", "EU B-ORG\n")
    with pytest.raises(DataError, match="train.conll, train.txt could each be the same split"):
        read_tagged_splits(folder)
    with pytest.raises(DataError, match="no training file"):
        read_tagged_splits(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        read_tagged(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="a folder; read_tagged_splits reads"):
        read_tagged(folder)
