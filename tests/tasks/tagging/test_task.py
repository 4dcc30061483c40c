"""The tagging task on CoNLL-2003: its data as a fit reads them (three formats, three schemes,
told by content), sub-token alignment and windows that give every word of a long sentence
exactly one score, constrained decoding, entity F1 equal to seqeval's, and the options and
files it refuses with one line."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import torch
from seqeval.metrics import f1_score

import graft
from graft.errors import ConfigError, DataError
from graft.tasks import task_class
from graft.tasks.tagging import read_tagged, to_bioes
from graft.tasks.tagging.alignment import encode, load_tokenizer, owners, plan_windows
from graft.tasks.tagging.batches import IGNORED, TaggingCollate, TaggingDataset
from graft.tasks.tagging.decoding import transition_rules, viterbi
from graft.tasks.tagging.entity_f1 import EntityF1
from graft.tasks.tagging.schemes import spans_from_tags
from graft.tasks.tagging.task import TaggingData, TaggingTask
from graft.tasks.tagging.words import join_tokens
from tests.conftest import SHARED

CONLL = SHARED / "conll2003"


@pytest.fixture(scope="module")
def valid() -> TaggingData:
    if not (CONLL / "valid.txt").is_file():
        pytest.skip(f"{CONLL} is missing")
    return TaggingData.of(read_tagged(CONLL / "valid.txt"))


@pytest.fixture(scope="module")
def sample(valid) -> TaggingData:
    """60 sentences spread over valid.txt."""
    return valid.subset(range(0, 3000, 50))


@pytest.fixture(scope="module")
def tokenizer():
    from graft.backbones.catalogue import _minilm_path

    return load_tokenizer(str(_minilm_path()))


def write_columns(path: Path, tokens, tags) -> Path:
    blocks = [
        "\n".join(f"{w} {t}" for w, t in zip(ws, ts, strict=True))
        for ws, ts in zip(tokens, tags, strict=True)
    ]
    path.write_text("-DOCSTART- O\n\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def to_iob1(tags: list[str]) -> list[str]:
    """IOB2 tags as IOB1 writes them: I- opens an entity unless one of its type precedes it."""
    result, previous = [], "O"
    for tag in tags:
        if tag.startswith("B-") and previous[2:] != tag[2:]:
            tag = "I-" + tag[2:]
        result.append(tag)
        previous = tag
    return result


def character_spans(data: TaggingData) -> list[list[list]]:
    """Each sentence's entities as ``[start, end, type]`` character spans of its text."""
    return [
        [[offsets[a][0], offsets[b - 1][1], kind] for a, b, kind in spans_from_tags(sentence)]
        for offsets, sentence in zip(data.offsets, data.tags, strict=True)
    ]


# --- Data as a fit reads them --------------------------------------------------------------


def test_formats_and_schemes_read_to_the_same_sentences_and_tags(sample, tmp_path):
    tokens, tags = sample.tokens, sample.tags
    spans = character_spans(sample)
    files = {
        "columns.txt": write_columns(tmp_path / "columns.txt", tokens, tags),
        "iob1.conll": write_columns(tmp_path / "iob1.conll", tokens, [to_iob1(t) for t in tags]),
        "bioes.txt": write_columns(tmp_path / "bioes.txt", tokens, [to_bioes(t) for t in tags]),
        "tokens.jsonl": write_jsonl(
            tmp_path / "tokens.jsonl",
            [{"tokens": w, "ner_tags": t} for w, t in zip(tokens, tags, strict=True)],
        ),
        "doccano.jsonl": write_jsonl(
            tmp_path / "doccano.jsonl",
            [{"text": text, "label": s} for text, s in zip(sample.texts, spans, strict=True)],
        ),
    }
    config = graft.GraftClassifier().config
    for name, path in files.items():
        assert TaggingTask.claims(path), name
        read = TaggingTask.read_splits(path, None, None, {}, config).train
        assert read.texts == sample.texts, name
        if name == "doccano.jsonl":  # raw text, split into words by graft: the same entities
            assert character_spans(read) == spans
        else:
            assert read.tokens == tokens and read.tags == tags, name
            assert read.content_hash() == sample.content_hash()
    schemes = {
        n: TaggingTask.read_splits(p, None, None, {}, config).train.scheme for n, p in files.items()
    }
    assert schemes["iob1.conll"] == "IOB1" and schemes["bioes.txt"] == "BIOES"


def test_only_tagging_data_is_claimed(tmp_path, sst2):
    assert TaggingTask.claims(CONLL) and TaggingTask.claims(CONLL / "train.txt")
    classification = write_jsonl(tmp_path / "c.jsonl", [{"text": "good", "label": "positive"}])
    multilabel = write_jsonl(tmp_path / "m.jsonl", [{"text": "a", "labels": ["x", "y"]}])
    spaced = tmp_path / "spaced.tsv"
    spaced.write_text("text\tlabel\na fine film\tpositive\n", encoding="utf-8")
    for path in (sst2["train"], classification, multilabel, spaced, tmp_path):
        assert not TaggingTask.claims(path), path
    assert task_class("tagging") is TaggingTask


def test_the_fit_split_keeps_sentences_and_their_origins(sample):
    train_idx, val_idx = TaggingTask.split(sample, 0.2, seed=0)
    part = sample.subset(val_idx)
    assert isinstance(part, TaggingData) and part.modality == "text"
    assert len(part) == 12 and len(train_idx) == 48
    assert part.lines == [sample.lines[i] for i in val_idx]


# --- Sub-tokens and windows ----------------------------------------------------------------


def test_each_word_is_scored_at_its_first_sub_token(sample, tokenizer):
    words = [list(w) for w in sample.tokens[:20]] + [["Zoë", "\u200b", "Obamacare"]]
    encoded = encode(tokenizer, words, max_length=256)
    ids = encoded.inputs["input_ids"].reshape(-1)
    for sentence, sentence_words in enumerate(words):
        for position, word in enumerate(sentence_words):
            flat = int(encoded.word_position[sentence, position])
            pieces = tokenizer.tokenize(word)
            if not pieces:  # a zero-width space: nothing to score it with
                assert flat == -1
                continue
            assert tokenizer.convert_ids_to_tokens(int(ids[flat])) == pieces[0]
        assert (encoded.word_position[sentence, len(sentence_words) :] == -1).all()


def test_windows_cover_every_word_and_each_word_has_one_owner():
    rng = random.Random(0)
    for _ in range(300):
        counts = [rng.choice([0, 1, 1, 1, 2, 3, 7]) for _ in range(rng.randint(1, 80))]
        limit = rng.randint(8, 30)
        windows = plan_windows(counts, limit, limit // 4)
        assert windows[0][0] == 0 and windows[-1][1] == len(counts)
        for (a, b), (c, d) in itertools.pairwise(windows):
            assert a < c <= b < d  # moves on, and never leaves a gap
        for a, b in windows:
            assert sum(counts[a:b]) <= limit or b - a == 1
        owner = owners(windows, len(counts))
        for word, index in enumerate(owner):
            assert windows[index][0] <= word < windows[index][1]


def test_a_long_sentence_is_stitched_from_its_windows_exactly(valid, tokenizer):
    """With a 32-token window, a 120-word sentence is read in windows; every word's scores are
    those of the window that owns it, run on its own (nothing cut, nothing scored twice)."""
    from graft.backbones.hf_tokens import create_token_backbone
    from graft.tasks.tagging.answers import word_outputs

    torch.manual_seed(0)
    backbone = create_token_backbone("minilm").eval()
    backbone.preprocessing = type(backbone.preprocessing)(backbone.preprocessing.tokenizer, 32)
    task = TaggingTask(["LOC", "MISC", "ORG", "PER"])
    head = task.new_head(backbone).eval()
    tokens = [w for sentence in valid.tokens[1:9] for w in sentence][:120]
    collate = TaggingCollate(backbone.preprocessing)

    def batch(words):
        return collate([TaggingDataset([join_tokens(words)])[0]])[0]

    inputs = batch(tokens)
    with torch.inference_mode():
        whole = word_outputs(head(backbone(inputs)), inputs)["probabilities"][0]
        counts = [len(tokenizer.tokenize(w)) for w in tokens]
        windows = plan_windows(counts, 30, 7)
        assert len(windows) > 3 and whole.shape[0] == len(tokens)
        owner = owners(windows, len(tokens))
        for index, (a, b) in enumerate(windows):
            alone = batch(tokens[a:b])
            part = word_outputs(head(backbone(alone)), alone)["probabilities"][0]
            mine = [w for w in range(a, b) if owner[w] == index]
            assert torch.allclose(whole[mine], part[[w - a for w in mine]], atol=1e-5)


# --- Decoding and scoring ------------------------------------------------------------------


def test_viterbi_finds_the_best_valid_sequence():
    tags = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    start, transitions = transition_rules(tags)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        scores = torch.randn(1, 4, len(tags), generator=generator).log_softmax(-1)
        best = viterbi(scores, torch.ones(1, 4, dtype=torch.bool), tags)[0].tolist()

        def total(path, scores=scores):
            first = start[path[0]] + scores[0, 0, path[0]]
            rest = sum(
                transitions[a, b] + scores[0, i + 1, b]
                for i, (a, b) in enumerate(itertools.pairwise(path))
            )
            return float(first + rest)

        valid = [p for p in itertools.product(range(len(tags)), repeat=4) if total(p) > -1e3]
        assert total(best) == pytest.approx(max(total(p) for p in valid), abs=1e-5)
        assert spans_from_tags([tags[i] for i in best]) is not None  # valid IOB2


def test_entity_f1_metric_equals_seqeval(valid):
    """Perturbed true tags of 500 CoNLL sentences, scored in batches of 32 by the metric and at
    once by seqeval: the same micro F1."""
    task = TaggingTask(valid.entity_types)
    rng = random.Random(1)
    true = valid.tags[:500]
    predicted = [[t if rng.random() > 0.1 else rng.choice(task.classes) for t in s] for s in true]
    metric = EntityF1(task.classes)
    for start in range(0, len(true), 32):
        width = max(map(len, true[start : start + 32]))
        guess = torch.full((len(true[start : start + 32]), width), IGNORED)
        truth = guess.clone()
        for row, (p, t) in enumerate(
            zip(predicted[start : start + 32], true[start : start + 32], strict=True)
        ):
            guess[row, : len(p)] = torch.tensor([task.classes.index(x) for x in p])
            truth[row, : len(t)] = torch.tensor([task.classes.index(x) for x in t])
        metric.update(guess, truth)
    assert float(metric.compute()) == pytest.approx(f1_score(true, predicted), abs=1e-6)


# --- Refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "auto"}, "--strategy auto"),
        ({"adapt": "dann"}, "--adapt dann"),
        ({"sampler": "balanced"}, "--sampler balanced"),
        ({"tasks": "a,b"}, "--tasks"),
        ({"label_column": "ner"}, "--label-column 'ner'"),
        ({"text_column": "text"}, "--text-column"),
        ({"model": "efficientnet_lite0"}, "text"),
    ],
)
def test_options_tagging_cannot_take_are_refused(tmp_path, sample, options, message):
    path = write_columns(tmp_path / "train.txt", sample.tokens, sample.tags)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        graft.fit(path, progress=False, **options)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("EU I-ORG\nrejects O\n\nPeter I-PER\nBlackburn I-PER\n", None),  # IOB1: fine
        ("EU B-ORG\nrejects O\nGerman I-MISC\n", r"line 3: I-MISC follows O"),
        ("EU B-ORG\nrejects O X\n", r"line 2: 3 columns"),
        ("EU B-ORG\nrejects B_MISC\n", r"line 2: tag 'B_MISC'"),
    ],
)
def test_bad_files_are_refused_with_their_line(tmp_path, content, message):
    path = tmp_path / "train.txt"
    path.write_text(content, encoding="utf-8")
    config = graft.GraftClassifier(task="tagging").config
    if message is None:
        assert TaggingTask.read_splits(path, None, None, {}, config).train.scheme == "IOB1"
        return
    with pytest.raises(DataError, match=message) as raised:
        TaggingTask.read_splits(path, None, None, {}, config)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_overlapping_spans_are_refused_with_their_row(tmp_path):
    path = write_jsonl(
        tmp_path / "spans.jsonl",
        [
            {"text": "New York City", "entities": [[0, 8, "LOC"]]},
            {"text": "New York City", "entities": [[0, 8, "LOC"], [4, 13, "LOC"]]},
        ],
    )
    with pytest.raises(DataError, match=r"line 2: entities .* overlap"):
        graft.fit(path, task="tagging", progress=False)


def test_training_data_without_entities_is_refused(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("nothing O\nhere O\n\nat O\nall O\n", encoding="utf-8")
    with pytest.raises(DataError, match="hold no entity"):
        graft.fit(path, task="tagging", progress=False)


def test_highlighted_sentences_are_escaped():
    from graft.tasks.tagging.report import highlighted

    text = "<b>Acme</b> & <script>Bob</script>"
    entities = [
        {"start": 3, "end": 7, "label": "ORG", "score": 0.5},
        {"start": 22, "end": 25, "label": "<i>"},
    ]
    shown = highlighted(text, entities, lambda entity: "#fff")
    assert "<script>" not in shown and "<b>" not in shown and "<i>" not in shown
    assert "&lt;b&gt;<mark style='background:#fff'>Acme<sup>ORG 0.5000</sup></mark>" in shown
    assert "<mark style='background:#fff'>Bob<sup>&lt;i&gt;</sup></mark>&lt;/script&gt;" in shown


def test_length_grouped_batches_depend_on_seed_and_epoch_only(valid):
    from graft.training.sampling import LengthGroupedBatches

    lengths = [len(text) for text in valid.texts]
    sampler = LengthGroupedBatches(lengths, 32, seed=3)
    first = sampler.batches()
    assert sorted(i for batch in first for i in batch) == list(range(len(lengths)))
    assert len(first) == len(sampler) and max(map(len, first)) == 32
    sampler.set_epoch(1)
    assert sampler.batches() != first
    again = LengthGroupedBatches(lengths, 32, seed=3)
    again.set_epoch(1)
    assert again.batches() == sampler.batches()

    def padded(batches):  # characters read with each batch padded to its longest sentence
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(3)).tolist()
    plain = [shuffled[i : i + 32] for i in range(0, len(shuffled), 32)]
    assert padded(first) < 0.6 * padded(plain)
