"""Soak test of interrupted runs: start ``graft fit`` again and again, SIGKILL it at a random
moment, and check that every run directory is either finished or resumable, never corrupt.

    .venv/bin/python bench/soak.py [--runs 20] [--seed 0]

Each fit trains on a small copy of the repository's flower photos (8 training and 4 validation
photos per class), alternating ``feature-extract`` and ``fine-tune``, with its own run
directory and a cold feature cache; it is killed with SIGKILL after a delay drawn uniformly
between 0 and the duration of an uninterrupted fit (measured first). Then the directory must be
in one of two states:

- finished: ``graft.load`` works and ``config.json`` says so;
- unfinished: ``graft.load`` refuses with "did not finish", and ``graft fit --resume`` finishes
  it, after which ``graft.load`` works (a kill before ``config.json`` was written leaves a
  directory with nothing in it, or nothing at all: also counted, as "not started").

Every JSON file in the directory must parse, and no ``model.safetensors`` may be half-written
(loading it is the check). The script prints each run's state and the counts, and exits 1 if
any run is neither finished nor resumable.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRAFT = Path(sys.executable).parent / "graft"
OPTIONS = {
    "feature-extract": ["--strategy", "feature-extract", "--epochs", "8"],
    "fine-tune": ["--strategy", "fine-tune", "--head-epochs", "3", "--epochs", "1"],
}


def small_flowers(folder: Path) -> Path:
    for split, count in (("train", 8), ("val", 4)):
        for class_folder in sorted((ROOT / "examples" / "flowers" / split).iterdir()):
            target = folder / split / class_folder.name
            target.mkdir(parents=True)
            for photo in sorted(class_folder.iterdir())[:count]:
                shutil.copy(photo, target / photo.name)
    return folder


def command(data: Path, run: Path, strategy: str, *extra: str) -> list[str]:
    return [
        str(GRAFT),
        "fit",
        str(data),
        "--out",
        str(run),
        "--no-progress",
        *OPTIONS[strategy],
        *extra,
    ]


def environment(cache: Path) -> dict:
    return {**os.environ, "GRAFT_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}


def state(run: Path, data: Path, strategy: str, cache: Path) -> str:
    """What the kill left, after resuming when that is what it needs."""
    import graft
    from graft.errors import RunError

    if not run.exists() or not any(p.name != ".graft.lock" for p in run.iterdir()):
        return "not started"
    for path in run.rglob("*.json"):
        json.loads(path.read_text())  # a corrupt JSON file fails the soak here
    try:
        graft.load(run)
        return "finished"
    except RunError as error:
        if "did not finish" not in str(error):
            raise
    resumed = subprocess.run(
        [str(GRAFT), "fit", "--resume", str(run), "--no-progress"],
        env=environment(cache),
        capture_output=True,
        text=True,
    )
    if resumed.returncode != 0:
        return f"NOT RESUMABLE: {resumed.stderr.strip()[-300:]}"
    graft.load(run)
    return "resumed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        data = small_flowers(scratch / "data")
        durations = {}
        for strategy in OPTIONS:  # an uninterrupted fit of each, to draw kill times from
            start = time.perf_counter()
            cache = scratch / f"cache-full-{strategy}"
            subprocess.run(
                command(data, scratch / f"full-{strategy}", strategy),
                env=environment(cache),
                check=True,
                capture_output=True,
            )
            durations[strategy] = time.perf_counter() - start
        print("uninterrupted:", {k: f"{v:.1f}s" for k, v in durations.items()}, flush=True)
        for index in range(args.runs):
            strategy = list(OPTIONS)[index % len(OPTIONS)]
            run, cache = scratch / f"run-{index}", scratch / f"cache-{index}"
            delay = rng.uniform(0, durations[strategy])
            process = subprocess.Popen(
                command(data, run, strategy),
                env=environment(cache),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
            found = state(run, data, strategy, cache)
            counts[found.split(":")[0]] += 1
            print(f"run {index:2d} {strategy:15s} killed at {delay:5.1f}s: {found}", flush=True)
    print("counts:", dict(counts))
    bad = sum(n for name, n in counts.items() if name.startswith("NOT"))
    print(f"{args.runs} runs killed at random moments; {bad} neither finished nor resumable")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
