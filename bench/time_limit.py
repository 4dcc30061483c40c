"""Accuracy against ``--time-limit``: graft's default fit (fine-tune) under several limits and
without one, on an image and a text dataset.

    .venv/bin/python bench/time_limit.py [--limits 30s,1m,3m] [--only flowers|sst2]
                                         [--rows N] [--out bench/out/time_limit.json]

flowers5_128px: 50 training photos a class (``--rows``), 20 a class of its val split for
validation and 40 a class of the rest for test, efficientnet_lite0 at 128 px (the photos'
size). sst2: 250 training rows a class (``--rows``), 50 a class of validation.csv for
validation, 200 a class of test.csv for test, minilm. Seed 0, a cold feature cache for every
row (caching features and evaluating the test split count against the limit), the wall time of
the whole ``graft.fit`` call. A limit refused before training is recorded with its message.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from subsets import DATASETS, per_class, split_per_class

import graft
from graft.data import load_data
from graft.errors import ConfigError


def flowers_parts(datasets: Path, rows: int | None) -> tuple:
    root = datasets / "flowers5_128px"
    train = per_class(load_data(root / "train"), rows or 50)
    val, test = split_per_class(load_data(root / "val"), [20, 40])
    return train, val, test, {"image_size": 128}


def sst2_parts(datasets: Path, rows: int | None) -> tuple:
    root = datasets / "sst2"
    train = per_class(load_data(root / "train.csv"), rows or 250)
    val = per_class(load_data(root / "validation.csv"), 50)
    return train, val, per_class(load_data(root / "test.csv"), 200), {}


DATASETS_BY_NAME = {"flowers": flowers_parts, "sst2": sst2_parts}


def one_fit(parts: tuple, limit: str | None) -> dict:
    """A cold-cache fit under ``limit`` (None: none): wall time, test accuracy, what was cut."""
    train, val, test, options = parts
    with tempfile.TemporaryDirectory(prefix="graft-bench-") as folder:
        start = time.perf_counter()
        try:
            model = graft.fit(
                train,
                val,
                test,
                strategy="fine-tune",
                time_limit=limit,
                cache_dir=folder,
                out=Path(folder) / "run",
                progress=False,
                seed=0,
                **options,
            )
        except ConfigError as refusal:
            wall = round(time.perf_counter() - start, 1)
            return {"limit": limit, "wall_seconds": wall, "refused": str(refusal)}
        wall = time.perf_counter() - start
    record = model.summary_.get("time_limit") or {}
    epochs = {}
    for row in model.history_:
        epochs[row["phase"]] = max(epochs.get(row["phase"], 0), row["epoch"])
    return {
        "limit": limit or "none",
        "wall_seconds": round(wall, 1),
        "test_accuracy": round(float(model.metrics_["test"]["accuracy"]), 4),
        "val_accuracy": round(float(model.metrics_["val"]["accuracy"]), 4),
        "epochs": epochs,
        "kept_phase": model.kept_phase_["phase"],
        "cut": record.get("cut", []),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--limits", default="30s,1m,3m")
    parser.add_argument("--only", choices=sorted(DATASETS_BY_NAME))
    parser.add_argument("--rows", type=int, help="training rows a class (default 50 / 250)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/time_limit.json"))
    args = parser.parse_args()
    names = [args.only] if args.only else list(DATASETS_BY_NAME)
    results: dict[str, list[dict]] = {}
    for name in names:
        parts = DATASETS_BY_NAME[name](args.datasets, args.rows)
        results[name] = []
        for limit in [*args.limits.split(","), None]:
            row = one_fit(parts, limit)
            results[name].append(row)
            print(name, json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print("\n| dataset | limit | wall s | test accuracy | epochs (head, finetune) | cut |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        for row in rows:
            if "refused" in row:
                print(
                    f"| {name} | {row['limit']} | {row['wall_seconds']} | refused | - | "
                    f"{row['refused']} |"
                )
                continue
            epochs = ", ".join(str(row["epochs"].get(p, 0)) for p in ("head", "finetune"))
            cut = "; ".join(row["cut"]) or "-"
            print(
                f"| {name} | {row['limit']} | {row['wall_seconds']} | "
                f"{row['test_accuracy']:.3f} | {epochs} | {cut} |"
            )


if __name__ == "__main__":
    main()
