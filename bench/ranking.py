"""Does ranking by transferability predict fine-tuned accuracy, and at what cost?

    .venv/bin/python bench/ranking.py [--tasks flowers,sst2] [--per-class 100]

flowers5_128px (``--per-class`` training photos per class, 50 per class of its val split for
validation, the other 417 for test) with the three offline EfficientNet-Lite models and a
random-weight EfficientNet-Lite0; sst2 (5 x ``--per-class`` rows per class, 200 per class of
validation.csv, test.csv) with MiniLM and a random-weight MiniLM. Each backbone is ranked
(``graft.rank``, cold feature cache) and fine-tuned with graft's defaults (its own cold
cache, seed 0). Prints each score beside the fine-tuned test accuracy, the Kendall rank
correlation of each score with that accuracy, and the time of ranking against the time of
fine-tuning them all.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import subsets
from scipy.stats import kendalltau

import graft

MODELS = {
    "flowers": [
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "scratch:efficientnet_lite0",
    ],
    "sst2": ["minilm", "scratch:minilm"],
}
SCORES = ("logme", "leep", "h_score", "knn_accuracy")


def run_task(task: str, per_class: int, scratch: Path) -> dict:
    train, val, test = subsets.TASKS[task]()
    train = subsets.per_class(train, per_class * (5 if task == "sst2" else 1))
    models = MODELS[task]
    start = time.perf_counter()
    ranking = graft.rank(train, models, val=val, cache_dir=scratch / f"rank-{task}")
    rank_seconds = time.perf_counter() - start
    rows = {row.model: row.to_dict() for row in ranking.scores}
    fine_tune_seconds = 0.0
    for model in models:
        start = time.perf_counter()
        fitted = graft.fit(
            train, val, test, model=model, progress=False, cache_dir=scratch / f"fit-{model}"
        )
        seconds = time.perf_counter() - start
        fine_tune_seconds += seconds
        rows[model]["fine_tuned_accuracy"] = fitted.metrics_["test"]["accuracy"]
        rows[model]["fine_tune_seconds"] = seconds
        print(task, model, rows[model], flush=True)
    return {
        "task": task,
        "train": len(train),
        "rows": list(rows.values()),
        "rank_seconds": rank_seconds,
        "fine_tune_seconds": fine_tune_seconds,
    }


def report(result: dict) -> None:
    rows = sorted(result["rows"], key=lambda r: r["rank"])
    print(f"\n{result['task']}: {result['train']} training examples")
    print(
        "| rank | model | LogME | LEEP | H-score | k-NN | fine-tuned test acc | rank s | tune s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        leep = "n/a" if r["leep"] is None else f"{r['leep']:.3f}"
        print(
            f"| {r['rank']} | {r['model']} | {r['logme']:.3f} | {leep} | {r['h_score']:.2f} | "
            f"{r['knn_accuracy']:.3f} | {r['fine_tuned_accuracy']:.4f} | "
            f"{r['feature_seconds'] + r['score_seconds']:.1f} | {r['fine_tune_seconds']:.1f} |"
        )
    accuracy = [r["fine_tuned_accuracy"] for r in rows]
    for score in SCORES:
        pairs = [(r[score], a) for r, a in zip(rows, accuracy, strict=True) if r[score] is not None]
        if len(pairs) < 2:
            continue
        tau = kendalltau(*zip(*pairs, strict=True)).statistic
        print(f"Kendall tau ({score} vs fine-tuned accuracy, {len(pairs)} backbones): {tau:+.3f}")
    ratio = result["fine_tune_seconds"] / result["rank_seconds"]
    print(
        f"ranking all: {result['rank_seconds']:.1f}s; fine-tuning all: "
        f"{result['fine_tune_seconds']:.1f}s ({ratio:.1f}x the ranking)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="flowers,sst2")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench/out/ranking.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for task in args.tasks.split(","):
            results.append(run_task(task, args.per_class, Path(scratch)))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))
    for result in results:
        report(result)


if __name__ == "__main__":
    main()
