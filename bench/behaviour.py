"""Same behaviour before and after a change: one quick fit of every kind, whose
``metrics.json`` must not move.

Runs, on the CPU with seed 0, a flowers feature-extract fit, an sst2 (2,000 rows) fine-tune
fit, a multi-task fit (amazon reviews: sentiment and product domain), a DANN-adapted MNIST
to USPS fit, an NER fit (CoNLL-2003, 200 sentences), detection, instance segmentation and
semantic segmentation fits (Penn-Fudan, 24 images) and an audio fit (FSDD, 20 clips a digit),
each through the ``graft`` command line of the checkout given, and writes their
``metrics.json`` under ``--out``. ``--compare A B`` then says, fit by fit, whether two such
folders hold identical metrics (every number equal, not close; wall-clock times aside).

    python bench/behaviour.py --checkout /path/to/old --out bench/out/behaviour-before
    python bench/behaviour.py --checkout . --out bench/out/behaviour-after
    python bench/behaviour.py --compare bench/out/behaviour-before bench/out/behaviour-after
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRAFT_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))


def _sst2_rows(folder: Path, rows: int = 2000) -> Path:
    with open(SHARED / "sst2" / "train.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    random.Random(0).shuffle(records)
    path = folder / "sst2_2000.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in records[:rows])
    return path


def _reviews(folder: Path, per_domain: int = 300) -> Path:
    path = folder / "reviews.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "sentiment", "domain"])
        writer.writeheader()
        for domain in ("books", "kitchen"):
            with open(SHARED / "amazon_reviews_4domains" / f"{domain}.csv", newline="") as source:
                records = list(csv.DictReader(source))
            random.Random(0).shuffle(records)
            for record in records[:per_domain]:
                writer.writerow(
                    {"text": record["text"], "sentiment": record["label"], "domain": domain}
                )
    return path


def _conll(folder: Path) -> Path:
    """Every 20th of the first 4,000 CoNLL training sentences and every 30th of the first
    3,000 validation ones, as ``train.txt`` and ``valid.txt``."""
    out = folder / "conll"
    out.mkdir()
    for name, stop, step in (("train", 4000, 20), ("valid", 3000, 30)):
        blocks = (SHARED / "conll2003" / f"{name}.txt").read_text().split("\n\n")
        kept = [b for b in blocks if b.strip() and "-DOCSTART-" not in b][:stop:step]
        (out / f"{name}.txt").write_text("\n\n".join(kept) + "\n")
    return out


def _pennfudan(folder: Path, name: str, images: int) -> Path:
    """The first ``images`` images of a Penn-Fudan COCO file, beside links to its pictures."""
    out = folder / "pennfudan"
    out.mkdir(exist_ok=True)
    for sub in ("PNGImages", "PedMasks"):
        if not (out / sub).exists():
            (out / sub).symlink_to(SHARED / "pennfudan" / sub)
    coco = json.loads((SHARED / "pennfudan" / f"annotations_{name}.json").read_text())
    coco["images"] = coco["images"][:images]
    kept = {image["id"] for image in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
    path = out / f"{name}.json"
    path.write_text(json.dumps(coco))
    return path


def _fsdd(folder: Path, per_digit: int = 20) -> Path:
    """``per_digit`` clips of each spoken digit (recordings 5 onwards), copied as class
    folders."""
    out = folder / "fsdd"
    for digit in range(10):
        (out / str(digit)).mkdir(parents=True)
        clips = sorted((SHARED / "fsdd" / str(digit)).glob("*.wav"))
        clips = [c for c in clips if int(c.stem.split("_")[-1]) >= 5][:per_digit]
        for clip in clips:
            shutil.copy(clip, out / str(digit) / clip.name)
    return out


def fits(data: Path) -> dict[str, list[str]]:
    """The fits, as ``graft fit`` arguments (without ``--out``)."""
    digits = SHARED / "mnist_usps_16x16"
    dense = ["--image-size", "128", "--head-epochs", "1", "--epochs", "1"]
    return {
        "flowers-feature-extract": [
            str(SHARED / "flowers5_128px"),
            "--strategy",
            "feature-extract",
        ],
        "sst2-fine-tune": [str(_sst2_rows(data)), "--strategy", "fine-tune", "--max-length", "64"],
        "reviews-multitask": [
            str(_reviews(data)),
            "--tasks",
            "sentiment,domain",
            "--strategy",
            "fine-tune",
            "--epochs",
            "1",
            "--head-epochs",
            "10",
            "--max-length",
            "64",
        ],
        "digits-dann": [
            str(digits / "mnist"),
            "--target-unlabeled",
            str(digits / "usps"),
            "--target-test",
            str(digits / "usps"),
            "--adapt",
            "dann",
            "--strategy",
            "full",
            "--epochs",
            "2",
            "--image-size",
            "32",
        ],
        "conll-ner": [str(_conll(data)), "--strategy", "feature-extract", "--max-length", "64"],
        "pennfudan-detection": [
            str(_pennfudan(data, "train", 24)),
            "--val",
            str(_pennfudan(data, "val", 10)),
            "--task",
            "detection",
            *dense,
        ],
        "pennfudan-instance-segmentation": [
            str(_pennfudan(data, "train", 24)),
            "--val",
            str(_pennfudan(data, "val", 10)),
            "--task",
            "instance-segmentation",
            *dense,
        ],
        "pennfudan-segmentation": [
            str(_pennfudan(data, "train", 24)),
            "--val",
            str(_pennfudan(data, "val", 10)),
            "--task",
            "segmentation",
            *dense,
        ],
        "fsdd-audio": [str(_fsdd(data)), "--epochs", "2", "--head-epochs", "5"],
    }


def run(checkout: Path, out: Path, only: list[str] | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout.resolve()),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "CUDA_VISIBLE_DEVICES": "",
    }
    with tempfile.TemporaryDirectory(prefix="graft-behaviour-") as scratch:
        scratch = Path(scratch)
        env["GRAFT_CACHE_DIR"] = str(scratch / "cache")
        for name, arguments in fits(scratch).items():
            if only and name not in only:
                continue
            run_dir = scratch / name
            command = [sys.executable, "-c", "from graft.cli import main; main()", "fit"]
            command += [*arguments, "--seed", "0", "--no-progress", "--out", str(run_dir)]
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, cwd=scratch, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            metrics = json.loads((run_dir / "metrics.json").read_text())
            (out / f"{name}.json").write_text(json.dumps(metrics, indent=2) + "\n")
            print(f"{name}: {seconds:.0f}s -> {out / (name + '.json')}", flush=True)


#: Keys that hold wall-clock times, which no change keeps identical.
TIMINGS = ("seconds",)


def _without_timings(value):
    """``value`` (a metrics.json document) without its wall-clock times."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def compare(before: Path, after: Path) -> bool:
    """Whether every fit's metrics are equal (every number equal, wall-clock times aside)."""
    same = True
    for path in sorted(before.glob("*.json")):
        other = after / path.name
        if not other.is_file():
            print(f"{path.stem}: missing in {after}")
            same = False
            continue
        equal = _without_timings(json.loads(path.read_text())) == _without_timings(
            json.loads(other.read_text())
        )
        same &= equal
        print(f"{path.stem}: {'identical' if equal else 'DIFFERENT'}")
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "behaviour")
    parser.add_argument("--only", nargs="*", help="run only these fits")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        raise SystemExit(0 if compare(*args.compare) else 1)
    run(args.checkout, args.out, args.only)


if __name__ == "__main__":
    main()
