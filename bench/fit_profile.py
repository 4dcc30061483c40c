"""Where a default fit's time goes, by kind: data loading, forward, backward, optimiser step,
validation, the end of each epoch (checkpoints and logs), and around training (reading the
data and building the model, caching features, the final evaluation, writing the run).

    .venv/bin/python bench/fit_profile.py [--only KIND] [--rows N] [--val N] [--epochs N]
        [--strategy NAME] [--out bench/out/profile.json]

KIND: image, text, amazon, amazon4, audio, tagging, detection, segmentation (all by default).

(Not ``bench/profile.py``: that name would hide the standard library's ``profile`` module,
which torch imports through ``cProfile``, from every script run in ``bench/``.)

A Lightning callback (added to every phase through
:func:`graft.training.engine.training_callbacks`) times each training step's parts between
Lightning's hooks: data is the wait between two steps (the loader's next batch and its move to
the device), forward runs from the step's start to the loss's backward, backward to its end,
the optimiser step from there to the step's end; validation is the validation loop; epoch end
is from the end of the training epoch's hooks to the next epoch (Lightning's checkpoint
callbacks and the CSV logger's flush run there). The rest of the fit is read from
``summary.json``'s seconds and the call's wall time. Beside the wall time, the process's CPU
time (``time.process_time``, all its threads) of the fit and of each phase: on a machine
shared with other work, wall time counts the waits for a core, CPU time much less so.

Image: flowers5_128px, 40 training and 10 validation photos a class (``--rows``, ``--val``),
the rest of its val split to test, efficientnet_lite0 at 128 px. Text: sst2, 200 training and
50 validation rows a class, test.csv (872) to test, minilm. Amazon: the electronics reviews of
amazon_reviews_4domains, 200 training and 50 validation rows a class, the rest to test; amazon4:
its four domains pooled, 500 others a class to test; minilm. Audio: FSDD's training clips (index
5-49), 40 training and 10 validation clips a digit, its 300 test clips (index 0-4); graft's
audio default (EfficientNet-Lite0 on the spectrogram at its own size). Tagging: CoNLL-2003, 500
training and 100 validation sentences (``--rows``, ``--val``: counts, not per class) drawn with
seed 0, 500 test sentences; minilm. Detection and segmentation: Penn-Fudan's shipped split, 60
training images (``--rows``) and 25 validation (``--val``) of its 120 and 50, the other
validation images to test, EfficientNet-Lite0 at a shorter side of 256 px (``--image-size``
of the detection benchmark). graft's default (fine-tune: a head phase on cached features, then
the whole network; ``--epochs`` sets its fine-tuning epochs, ``--strategy feature-extract``
trains the head alone), seed 0, cold cache. The score is each kind's headline metric
(accuracy, entity F1, box mAP, mean IoU).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lightning as L
from subsets import DATASETS, per_class, split_per_class

import graft
from graft.data import load_data
from graft.training.engine import training_callbacks


class StepTimes(L.Callback):
    """Seconds of each part of training, per phase, and each phase's CPU seconds (see the
    module docstring)."""

    def __init__(self):
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.steps: dict[str, int] = defaultdict(int)
        self.cpu: dict[str, float] = defaultdict(float)
        self.mark = time.perf_counter()
        self.epoch_end: float | None = None
        self.first_start: float | None = None
        self._cpu_start = 0.0

    def _add(self, module, part: str) -> None:
        now = time.perf_counter()
        self.seconds[module.phase.name][part] += now - self.mark
        self.mark = now

    def on_train_start(self, trainer, module) -> None:
        self.first_start = self.first_start or time.perf_counter()
        self.mark = time.perf_counter()
        self._cpu_start = time.process_time()

    def on_train_epoch_start(self, trainer, module) -> None:
        if self.epoch_end is not None:
            self.seconds[module.phase.name]["epoch end"] += time.perf_counter() - self.epoch_end
            self.epoch_end = None
        self.mark = time.perf_counter()

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._add(module, "data")

    def on_before_backward(self, trainer, module, loss) -> None:
        self._add(module, "forward")

    def on_after_backward(self, trainer, module) -> None:
        self._add(module, "backward")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._add(module, "optimiser")
        self.steps[module.phase.name] += 1

    def on_validation_start(self, trainer, module) -> None:
        self._validation = time.perf_counter()

    def on_validation_end(self, trainer, module) -> None:
        self.seconds[module.phase.name]["validation"] += time.perf_counter() - self._validation
        self.mark = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        self.epoch_end = time.perf_counter()

    def on_train_end(self, trainer, module) -> None:
        if self.epoch_end is not None:
            self.seconds[module.phase.name]["epoch end"] += time.perf_counter() - self.epoch_end
            self.epoch_end = None
        self.cpu[module.phase.name] += time.process_time() - self._cpu_start


def image_parts(datasets: Path, rows: int | None, val: int | None) -> tuple:
    root = datasets / "flowers5_128px"
    val_data, test = split_per_class(load_data(root / "val"), [val or 10, None])
    return per_class(load_data(root / "train"), rows or 40), val_data, test, {"image_size": 128}


def text_parts(datasets: Path, rows: int | None, val: int | None) -> tuple:
    root = datasets / "sst2"
    train = per_class(load_data(root / "train.csv"), rows or 200)
    val_data = per_class(load_data(root / "validation.csv"), val or 50)
    return train, val_data, load_data(root / "test.csv"), {}


def amazon_parts(datasets: Path, rows: int | None, val: int | None) -> tuple:
    reviews = load_data(datasets / "amazon_reviews_4domains" / "electronics.csv")
    train, val_data, test = split_per_class(reviews, [rows or 200, val or 50, None])
    return train, val_data, test, {}


def amazon4_parts(datasets: Path, rows: int | None, val: int | None) -> tuple:
    import pandas as pd

    folder = datasets / "amazon_reviews_4domains"
    domains = ("books", "dvd", "electronics", "kitchen")
    frames = [pd.read_csv(folder / f"{domain}.csv")[["text", "label"]] for domain in domains]
    reviews = load_data(pd.concat(frames, ignore_index=True))
    train, val_data, test = split_per_class(reviews, [rows or 200, val or 50, 500])
    return train, val_data, test, {}


def audio_parts(datasets: Path, rows: int | None, val: int | None) -> tuple:
    from audio import official_split

    train, test = official_split(None, 0)
    train, val_data = split_per_class(train, [rows or 40, val or 10])
    return train, val_data, test, {}


def tagging_parts(datasets: Path, rows: int | None, val: int | None) -> tuple:
    from ner import sample

    folder = datasets / "conll2003"
    train = sample(folder / "train.txt", str(rows or 500), 0)
    return (
        train,
        sample(folder / "valid.txt", str(val or 100), 0),
        sample(folder / "test.txt", "500", 0),
        {},
    )


def dense_parts(read, folder: Path, rows: int | None, val: int | None) -> tuple:
    train, held = read(folder / "annotations_train.json"), read(folder / "annotations_val.json")
    count = val or 25
    train = train.subset(range(min(rows or 60, len(train))))
    val_data, test = held.subset(range(count)), held.subset(range(count, len(held)))
    return train, val_data, test, {"image_size": 256}


def detection_parts(datasets: Path, rows: int | None, val: int | None) -> tuple:
    from graft.tasks.detection import read_detection

    return dense_parts(read_detection, datasets / "pennfudan", rows, val)


def segmentation_parts(datasets: Path, rows: int | None, val: int | None) -> tuple:
    from graft.tasks.segmentation.read import read_segmentation

    return dense_parts(read_segmentation, datasets / "pennfudan", rows, val)


KINDS = {
    "image": image_parts,
    "text": text_parts,
    "amazon": amazon_parts,
    "amazon4": amazon4_parts,
    "audio": audio_parts,
    "tagging": tagging_parts,
    "detection": detection_parts,
    "segmentation": segmentation_parts,
}


def profile(parts: tuple, **chosen) -> dict:
    """One default fit under the timing callback: seconds by part, per phase and overall."""
    train, val, test, options = parts
    times = StepTimes()
    with tempfile.TemporaryDirectory(prefix="graft-profile-") as folder:
        start, cpu = time.perf_counter(), time.process_time()
        with training_callbacks(times):
            model = graft.fit(
                train,
                val,
                cache_dir=folder,
                out=Path(folder) / "run",
                progress=False,
                seed=0,
                **options,
                **chosen,
            )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    seconds = model.summary_["seconds"]
    phases = {
        name: {
            "steps": times.steps[name],
            "epochs": sum(1 for row in model.history_ if row.get("phase") == name),
            "seconds": round(seconds.get(f"phase_{name}", 0.0), 2),
            "cpu_seconds": round(times.cpu[name], 2),
            **{part: round(value, 2) for part, value in parts_.items()},
        }
        for name, parts_ in times.seconds.items()
    }
    trained = sum(seconds.get(f"phase_{name}", 0.0) for name in phases)
    headline = model.fitted_task_.headline
    before = (times.first_start or start) - start - seconds.get("features", 0.0)
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "phases": phases,
        "reading and building": round(before, 2),
        "features": round(seconds.get("features", 0.0), 2),
        "evaluation": round(seconds["total"] - trained - before, 2),
        "writing the run": round(wall - seconds["total"], 2),
        "score": headline,
        "val_score": round(float(model.metrics_["val"][headline]), 4),
        "test_score": round(float(model.evaluate(test)[headline]), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--only", choices=sorted(KINDS))
    parser.add_argument("--rows", type=int, help="training rows a class (default: per kind)")
    parser.add_argument("--val", type=int, help="validation rows a class (default: per kind)")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (default: graft's)")
    parser.add_argument("--strategy", help="another strategy (feature-extract: the head alone)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/profile.json"))
    args = parser.parse_args()
    results = {}
    for kind in [args.only] if args.only else list(KINDS):
        chosen = {"epochs": args.epochs} if args.epochs else {}
        chosen.update({"strategy": args.strategy} if args.strategy else {})
        results[kind] = profile(KINDS[kind](args.datasets, args.rows, args.val), **chosen)
        print(kind, json.dumps(results[kind]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    parts = ("data", "forward", "backward", "optimiser", "validation", "epoch end")
    print(f"\n| kind | phase | epochs | steps | seconds | CPU s | {' | '.join(parts)} |")
    print("|---|---|---|---|---|---|" + "---|" * len(parts))
    for kind, record in results.items():
        for name, phase in record["phases"].items():
            cells = " | ".join(f"{phase.get(part, 0.0):.1f}" for part in parts)
            print(
                f"| {kind} | {name} | {phase['epochs']} | {phase['steps']} | "
                f"{phase['seconds']:.1f} | {phase['cpu_seconds']:.1f} | {cells} |"
            )
        around = ("reading and building", "features", "evaluation", "writing the run")
        print(
            f"| {kind} | around | | | {record['wall_seconds']:.1f} wall | "
            f"{record['cpu_seconds']:.1f} | "
            + ", ".join(f"{part} {record[part]:.1f}" for part in around)
            + f"; val {record['score']} {record['val_score']:.4f}, test {record['test_score']:.4f}"
            + " | | | | | |"
        )


if __name__ == "__main__":
    main()
