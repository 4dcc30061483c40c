"""Does ``--strategy auto`` pick the best strategy? Every strategy it chooses among, measured.

    .venv/bin/python bench/advisor.py [--tasks flowers,sst2,digits] [--sizes 10,50,all]
    .venv/bin/python bench/advisor.py --replay bench/out/advisor.json [more.json ...]

For each dataset (flowers5_128px and the MNIST digits of mnist_usps_16x16 with
efficientnet_lite0, a 2,000-row sst2 sample with minilm; see ``subsets.py``) and each training
size (10, 50 and all examples per class, the same validation and test data throughout), fit
feature-extract, partial and full with graft's defaults (seed 0) and record the test accuracy
and wall time, then the measurements the advisor takes and the strategy it picks. The table
shows whether auto's pick is the best, or near it (within ``--near`` accuracy points).
``--replay`` re-applies the advisor's current rule to recorded measurements without training.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import subsets

import graft
from graft.backbones import create_backbone
from graft.config import DEFAULT_MODELS
from graft.features import FeatureCache
from graft.selection.advisor import CHOICES, Measurements, decide, measure


def run_case(task: str, size: int | None, scratch: Path) -> dict:
    train, val, test = subsets.TASKS[task]()
    train = subsets.per_class(train, size)
    model = DEFAULT_MODELS[train.modality]
    cache_dir = scratch / f"cache-{task}"
    record = {"task": task, "size": size or "all", "model": model, "strategies": {}}
    for strategy in CHOICES:
        start = time.perf_counter()
        fitted = graft.fit(
            train, val, test, model=model, strategy=strategy, progress=False, cache_dir=cache_dir
        )
        record["strategies"][strategy] = {
            "test_accuracy": fitted.metrics_["test"]["accuracy"],
            "val_accuracy": fitted.metrics_["val"]["accuracy"],
            "seconds": time.perf_counter() - start,
        }
        print(task, size or "all", strategy, record["strategies"][strategy], flush=True)
    cache = FeatureCache(cache_dir / "features")
    record["measurements"] = asdict(measure(train, val, create_backbone(model), cache))
    return record


def table(records: list[dict], near: float) -> tuple[str, int, int]:
    lines = [
        "| data | per class | k-NN | src entropy | "
        + " | ".join(CHOICES)
        + " | best | auto | auto - best |",
        "|---|---|---|---|" + "---|" * len(CHOICES) + "---|---|---|",
    ]
    hits = nears = 0
    for record in records:
        measured = Measurements(**record["measurements"])
        auto, _ = decide(measured)
        accuracy = {s: record["strategies"][s]["test_accuracy"] for s in CHOICES}
        best = max(accuracy, key=accuracy.get)
        regret = accuracy[auto] - accuracy[best]
        hits += auto == best
        nears += regret >= -near
        entropy = measured.source_entropy
        lines.append(
            f"| {record['task']} | {record['size']} | {measured.knn_accuracy:.3f} | "
            + ("n/a" if entropy is None else f"{entropy:.2f}")
            + " | "
            + " | ".join(
                f"{accuracy[s]:.4f} ({record['strategies'][s]['seconds']:.0f}s)" for s in CHOICES
            )
            + f" | {best} | {auto} | {regret:+.4f} |"
        )
    return "\n".join(lines), hits, nears


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="flowers,sst2,digits")
    parser.add_argument("--sizes", default="10,50,all")
    parser.add_argument("--near", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=Path("bench/out/advisor.json"))
    parser.add_argument("--replay", type=Path, nargs="+", help="recorded JSON files")
    args = parser.parse_args()
    if args.replay:
        records = [r for path in args.replay for r in json.loads(path.read_text())]
    else:
        records = []
        sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
        with tempfile.TemporaryDirectory() as scratch:
            for task in args.tasks.split(","):
                for size in sizes:
                    records.append(run_case(task, size, Path(scratch)))
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(records, indent=2))
    text, hits, nears = table(records, args.near)
    print(text)
    print(
        f"\nauto picked the best strategy in {hits} of {len(records)} cases, and one within "
        f"{args.near * 100:g} points of the best in {nears} of {len(records)}."
    )


if __name__ == "__main__":
    main()
