"""Transfer gain: pretrained against the same network from random weights, same budget.

    .venv/bin/python bench/transfer_gain.py [--tasks flowers,digits] [--epochs 5]

``graft fit --strategy full --baseline scratch`` with efficientnet_lite0 on two image tasks
(``subsets.py``): flowers5_128px (100 training photos per class; ImageNet photos are close to
these) and the MNIST digits of mnist_usps_16x16 (140 per class; 16x16 grey digits are far
from ImageNet). Both arms train every layer for ``--epochs`` epochs with the same seed; the
gain is pretrained minus scratch test accuracy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import subsets

import graft

PER_CLASS = {"flowers": 100, "digits": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="flowers,digits")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/out/transfer_gain.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for task in args.tasks.split(","):
            train, val, test = subsets.TASKS[task]()
            train = subsets.per_class(train, PER_CLASS[task])
            start = time.perf_counter()
            model = graft.fit(
                train,
                val,
                test,
                model="efficientnet_lite0",
                strategy="full",
                epochs=args.epochs,
                baseline="scratch",
                progress=False,
                cache_dir=Path(scratch) / task,
            )
            transfer = model.metrics_["transfer"]
            results.append(
                {"task": task, "train": len(train), "seconds": time.perf_counter() - start}
                | transfer
            )
            print(results[-1], flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))
    print("\n| data | train | epochs | split | pretrained | scratch | gain | verdict | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for split in ("val", "test"):
            row = r[split]
            print(
                f"| {r['task']} | {r['train']} | {r['epochs']} | {split} | "
                f"{row['pretrained']:.4f} | {row['scratch']:.4f} | {row['gain']:+.4f} | "
                f"{r['verdict']} | {r['seconds']:.0f} |"
            )


if __name__ == "__main__":
    main()
