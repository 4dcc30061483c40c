"""Where the few-labels regime should end: every example trains with a fixed recipe, against
the seeded 20% hold-out that chooses the epoch, at growing sizes per class.

    .venv/bin/python bench/few_labels_threshold.py --sizes 25,50,100,200 --seeds 0,1,2

graft's fit without validation data trains on every labelled example, keeps each phase's
last epoch and cross-validates below ``FEW_LABELS_PER_CLASS`` examples a class (the median;
:mod:`graft.fewshot.few_labels`), and above it holds 20% out to choose the epoch and report.
This benchmark fits both regimes on the same seeded draws (the constant is patched to force
one or the other), with ``--cv-folds 0`` (the estimate does not change the model), and scores
each on data neither saw:

- ``sst2``: MiniLM, feature-extract, ``subsets.per_class`` of compare.py's 1,000-per-class
  pool, tested on test.csv (872);
- ``flowers``: efficientnet_lite0 at 128 px, feature-extract, per class of flowers5_128px's
  train split, tested on the 417 photos ``subsets.flowers`` keeps for test.

Both regimes share the feature cache, so wall time is not compared. The table gives the mean
test accuracy and the difference ``every example - hold-out`` per size: the threshold belongs
where that difference stops being positive.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import subsets
from compare import class_indices, scores

import graft
import graft.fewshot.few_labels as few_labels

REGIMES = {"every example": 10**9, "20% hold-out": 0}
CASES = {
    "sst2": (lambda: subsets.sst2()[::2], dict(model="minilm")),
    "flowers": (lambda: subsets.flowers()[::2], dict(model="efficientnet_lite0", image_size=128)),
}


def one(case: str, regime: str, size: int, seed: int) -> dict:
    (pool, test), options = CASES[case][0](), CASES[case][1]
    train = subsets.per_class(pool, size, seed)
    few_labels.FEW_LABELS_PER_CLASS = REGIMES[regime]
    fitted = graft.fit(
        train, strategy="feature-extract", cv_folds=0, seed=seed, progress=False, **options
    )
    predicted = class_indices(fitted.predict(test.items), test)
    return {"case": case, "regime": regime, "size": size, "seed": seed, **scores(predicted, test)}


def table(records: list[dict]) -> str:
    lines = [
        "| case | per class | seeds | every example | 20% hold-out | difference |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["case"], r["size"]) for r in records})
    for case, size in keys:
        runs = {
            regime: {
                r["seed"]: r["accuracy"]
                for r in records
                if r["regime"] == regime and (r["case"], r["size"]) == (case, size)
            }
            for regime in REGIMES
        }
        seeds = sorted(set(runs["every example"]) & set(runs["20% hold-out"]))
        if not seeds:
            continue
        every, held = ([runs[regime][s] for s in seeds] for regime in REGIMES)
        spread = [a - b for a, b in zip(every, held, strict=True)]
        deviation = statistics.stdev(spread) if len(spread) > 1 else 0.0
        lines.append(
            f"| {case} | {size} | {','.join(map(str, seeds))} | {statistics.mean(every):.4f} "
            f"| {statistics.mean(held):.4f} | {statistics.mean(spread):+.4f} ± {deviation:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="sst2,flowers")
    parser.add_argument("--sizes", default="25,50,100,200")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("bench/out/few_labels_threshold.json"))
    args = parser.parse_args()
    records = json.loads(args.out.read_text()) if args.out.is_file() else []
    for case in args.cases.split(","):
        for size in map(int, args.sizes.split(",")):
            for seed in map(int, args.seeds.split(",")):
                for regime in REGIMES:
                    record = one(case, regime, size, seed)
                    print(json.dumps(record), flush=True)
                    records = [
                        r
                        for r in records
                        if (r["case"], r["regime"], r["size"], r["seed"])
                        != (case, regime, size, seed)
                    ] + [record]
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(records, indent=2))
    print(table(records))


if __name__ == "__main__":
    main()
