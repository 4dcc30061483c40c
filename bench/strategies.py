"""Every strategy side by side: validation accuracy, wall time and trained parameters.

    .venv/bin/python bench/strategies.py [--datasets ../shared/datasets] [--only flowers|sst2]
                                         [--strategies a,b,...]

flowers5_128px (train, val) with efficientnet_lite0 and a 2,000-row seeded subset of sst2 with
minilm (400 rows held out for validation, accuracy on test.csv), graft's defaults for each
strategy, seed 0, a cold feature cache for every row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from core import sst2_subset

import graft
import graft.strategies

STRATEGIES = tuple(graft.strategies.STRATEGIES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
    parser.add_argument("--datasets", type=Path, default=default)
    parser.add_argument("--only", choices=["flowers", "sst2"])
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        tasks = {
            "flowers": (args.datasets / "flowers5_128px", None),
            "sst2": (
                sst2_subset(args.datasets, 2000, scratch),
                args.datasets / "sst2" / "test.csv",
            ),
        }
        for name, (data, test) in tasks.items():
            if args.only and name != args.only:
                continue
            for strategy in args.strategies.split(","):
                start = time.perf_counter()
                model = graft.fit(
                    data,
                    test=test,
                    strategy=strategy,
                    progress=False,
                    cache_dir=str(scratch / f"cache-{name}-{strategy}"),
                )
                seconds = time.perf_counter() - start
                split = "test" if test else "val"
                trained = max(row["trained_parameters"] for row in model.history_)
                rows.append(
                    (
                        name,
                        strategy,
                        split,
                        model.metrics_[split]["accuracy"],
                        seconds,
                        trained,
                        model.summary_["kept_phase"]["phase"],
                    )
                )
                print(" ".join(map(str, rows[-1])), flush=True)
    print("\n| data | strategy | split | accuracy | wall s | trained parameters | kept phase |")
    print("|---|---|---|---|---|---|---|")
    for name, strategy, split, accuracy, seconds, trained, kept in rows:
        print(
            f"| {name} | {strategy} | {split} | {accuracy:.4f} | {seconds:.1f} | "
            f"{trained:,} | {kept} |"
        )


if __name__ == "__main__":
    main()
