"""Multi-task training against one model per task: accuracy per task and total wall time.

    .venv/bin/python bench/multitask.py
    .venv/bin/python bench/multitask.py --per-class 200 --strategy fine-tune --epochs 2
    .venv/bin/python bench/multitask.py --missing 0.5      # half the sentiment labels blanked
    .venv/bin/python bench/multitask.py --replay bench/out/multitask.json

``amazon_reviews_4domains`` with ``minilm``: every review has two labels, its sentiment
(the ``label`` column) and its product domain (the file it comes from: books, dvd, electronics,
kitchen). Per domain and sentiment, ``--per-class`` reviews train, ``--val-per-class`` validate
and ``--test-per-class`` test (disjoint, drawn with seed 0, the same for every run); with
``--missing``, that share of the training rows loses its sentiment label (the multi-task fit
still trains the domain on them; the single-task sentiment model skips them).

Each seed trains, with the same strategy, epochs, batch size and data:
- ``single-task``: one model for sentiment and one for the domain (two fits, two backbones);
- ``multi-task`` with each weighting of ``--weightings``: one fit, one backbone, two heads
  (``fixed``: both weights 1; ``uncertainty``: learned, Kendall et al. 2018).

Every fit starts from a cold feature cache of its own, so each model pays for its own
backbone passes, and the wall time of ``single-task`` is that of both fits. The table gives
the test accuracy of each task (mean and sample standard deviation over seeds), the wall time
per seed and, a count that no other load on the machine changes, how many texts went through
the frozen backbone.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import subsets

import graft
from graft.data import load_data

DOMAINS = ("books", "dvd", "electronics", "kitchen")
TASKS = ("sentiment", "domain")
SENTIMENT = {"0": "negative", "1": "positive"}


def write_splits(args, folder: Path) -> dict[str, Path]:
    """train.csv, val.csv and test.csv with the columns text, sentiment and domain."""
    rows: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    counts = [args.per_class, args.val_per_class, args.test_per_class]
    for domain in DOMAINS:
        data = load_data(subsets.DATASETS / "amazon_reviews_4domains" / f"{domain}.csv")
        parts = subsets.split_per_class(data, counts)
        for name, part in zip(("train", "val", "test"), parts, strict=True):
            rows[name] += [
                {"text": text, "sentiment": SENTIMENT[part.classes[label]], "domain": domain}
                for text, label in zip(part.items, part.labels, strict=True)
            ]
    generator = random.Random(0)
    for name in rows:
        generator.shuffle(rows[name])
    missing = round(len(rows["train"]) * args.missing)
    for row in rows["train"][:missing]:
        row["sentiment"] = ""
    paths = {}
    for name, part in rows.items():
        paths[name] = folder / f"{name}.csv"
        with open(paths[name], "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["text", "sentiment", "domain"])
            writer.writeheader()
            writer.writerows(part)
    return paths


def fit(paths: dict[str, Path], cache: Path, args, seed: int, **task) -> tuple:
    start = time.perf_counter()
    model = graft.fit(
        paths["train"],
        paths["val"],
        paths["test"],
        model="minilm",
        strategy=args.strategy,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=seed,
        cache_dir=str(cache),
        progress=False,
        **task,
    )
    return model, time.perf_counter() - start


def run_single(paths, scratch: Path, args, seed: int) -> dict:
    record = {"setup": "single-task", "seed": seed, "seconds": 0.0, "backbone_inputs": 0}
    for task in TASKS:
        model, seconds = fit(paths, scratch / f"cache-{seed}-{task}", args, seed, label_column=task)
        record[f"{task}_accuracy"] = model.metrics_["test"]["accuracy"]
        record["seconds"] += seconds
        record["backbone_inputs"] += backbone_inputs(model)
    return record


def backbone_inputs(model) -> int:
    """Texts the fit ran through the frozen backbone (its feature-cache misses; a phase that
    trains the backbone runs it on every batch instead, not counted)."""
    return model.summary_["feature_cache"]["misses"]


def run_multi(paths, scratch: Path, args, seed: int, weighting: str) -> dict:
    weights = "uncertainty" if weighting == "uncertainty" else None
    cache = scratch / f"cache-{seed}-multi-{weighting}"
    model, seconds = fit(paths, cache, args, seed, tasks=list(TASKS), task_weights=weights)
    record = {"setup": f"multi-task ({weighting})", "seed": seed, "seconds": seconds}
    record["backbone_inputs"] = backbone_inputs(model)
    for task in TASKS:
        record[f"{task}_accuracy"] = model.metrics_["test"][task]["accuracy"]
    record["weights"] = model.task_weights_
    return record


def table(records: list[dict]) -> str:
    lines = [
        "| setup | seeds | sentiment acc | spread | domain acc | spread | wall s per seed "
        "(both tasks) | frozen-backbone passes (texts) | learned weights (sentiment, domain) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_setup: dict[str, list[dict]] = {}
    for record in records:
        by_setup.setdefault(record["setup"], []).append(record)
    for setup, runs in by_setup.items():
        cells = []
        for task in TASKS:
            accuracy = [r[f"{task}_accuracy"] for r in runs]
            spread = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
            cells += [f"{statistics.mean(accuracy):.4f}", f"{spread:.4f}"]
        seconds = statistics.mean(r["seconds"] for r in runs)
        weights = "-"
        if "uncertainty" in setup:
            weights = ", ".join(
                f"{statistics.mean(r['weights'][t] for r in runs):.2f}" for t in TASKS
            )
        passes = statistics.mean(r["backbone_inputs"] for r in runs)
        lines.append(
            f"| {setup} | {len(runs)} | {' | '.join(cells)} | {seconds:.1f} | {passes:.0f} "
            f"| {weights} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=50, help="per domain and sentiment")
    parser.add_argument("--val-per-class", type=int, default=15)
    parser.add_argument("--test-per-class", type=int, default=30)
    parser.add_argument("--missing", type=float, default=0.0, help="share of sentiment blanked")
    parser.add_argument("--strategy", default="feature-extract")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--weightings", default="fixed,uncertainty")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("bench/out/multitask.json"))
    parser.add_argument("--replay", type=Path, nargs="+", help="recorded JSON files")
    args = parser.parse_args()
    if not 0.0 <= args.missing < 1.0:
        parser.error("--missing must be in [0, 1)")
    if args.replay:
        records = [r for path in args.replay for r in json.loads(path.read_text())]
    else:
        records = []
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            paths = write_splits(args, scratch)
            for seed in (int(s) for s in args.seeds.split(",")):
                runs = [lambda s=seed: run_single(paths, scratch, args, s)]
                runs += [
                    lambda s=seed, w=w: run_multi(paths, scratch, args, s, w)
                    for w in args.weightings.split(",")
                ]
                for run in runs:
                    records.append(run())
                    print(records[-1], flush=True)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(records, indent=2))
        print(f"\nbenchmark wall time {time.perf_counter() - started:.0f}s")
    print(table(records))


if __name__ == "__main__":
    main()
