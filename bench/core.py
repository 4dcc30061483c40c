"""Accuracy and wall time of both core strategies on the full shared datasets.

    .venv/bin/python bench/core.py [--datasets ../shared/datasets] [--only flowers|sst2]

flowers5_128px (train, val) with efficientnet_lite0, and sst2 (2,000 training rows, test.csv)
with minilm; feature-extract and fine-tune each, from a cold feature cache. Floors from the core
issue: flowers 0.70 / 0.80, SST-2 0.75 / 0.82.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

import graft

FLOORS = {
    ("flowers", "feature-extract"): 0.70,
    ("flowers", "fine-tune"): 0.80,
    ("sst2", "feature-extract"): 0.75,
    ("sst2", "fine-tune"): 0.82,
}


def sst2_subset(datasets: Path, rows: int, folder: Path) -> Path:
    with open(datasets / "sst2" / "train.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    random.Random(0).shuffle(records)
    target = folder / f"sst2_train_{rows}.csv"
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in records[:rows])
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "datasets"
    )
    parser.add_argument("--only", choices=["flowers", "sst2"])
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        tasks = {
            "flowers": dict(data=args.datasets / "flowers5_128px", test=None),
            "sst2": dict(
                data=sst2_subset(args.datasets, 2000, scratch),
                test=args.datasets / "sst2" / "test.csv",
            ),
        }
        for name, task in tasks.items():
            if args.only and name != args.only:
                continue
            for strategy in ("feature-extract", "fine-tune"):
                cache = scratch / f"cache-{name}-{strategy}"  # cold cache for each row
                start = time.perf_counter()
                model = graft.fit(
                    task["data"],
                    test=task["test"],
                    strategy=strategy,
                    cache_dir=str(cache),
                    progress=False,
                )
                seconds = time.perf_counter() - start
                split = "test" if task["test"] else "val"
                metrics = model.metrics_[split]
                results.append(
                    (
                        name,
                        strategy,
                        split,
                        metrics["accuracy"],
                        metrics["macro_f1"],
                        seconds,
                        model.summary_["kept_phase"]["phase"],
                    )
                )
                print(
                    f"{name:8s} {strategy:16s} {split:5s} acc={metrics['accuracy']:.4f} "
                    f"f1={metrics['macro_f1']:.4f} {seconds:7.1f}s kept={results[-1][-1]}",
                    flush=True,
                )
    print("\n| data | strategy | split | accuracy | macro-F1 | wall s | floor | ok |")
    print("|---|---|---|---|---|---|---|---|")
    failed = 0
    for name, strategy, split, acc, f1, seconds, _ in results:
        floor = FLOORS[(name, strategy)]
        ok = acc >= floor
        failed += not ok
        print(
            f"| {name} | {strategy} | {split} | {acc:.4f} | {f1:.4f} | {seconds:.1f} "
            f"| {floor:.2f} | {'yes' if ok else 'NO'} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
