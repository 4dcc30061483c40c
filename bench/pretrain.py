"""Pre-training on data you own, then fine-tuning on few labels, against not pre-training.

    .venv/bin/python bench/pretrain.py --parts images --simclr-epochs 30 --supervised-epochs 30 \
        --out bench/out/pretrain-images.json
    .venv/bin/python bench/pretrain.py --parts text --out bench/out/pretrain.json

(a) Images: ``graft pretrain`` on the MNIST half of ``mnist_usps_16x16`` (2,000 digits, 10%
held out for the loss), at ``--image-size`` pixels with efficientnet_lite0: SimCLR continued
from the ImageNet weights, SimCLR from scratch, and supervised (MNIST's labels) from scratch.
Each pre-trained backbone is then fitted on USPS with ``--per-class`` labelled digits per class
(and ``--val-per-class`` more for validation), and tested on the rest of USPS, against the
same fitting of the architecture from random weights (``scratch:efficientnet_lite0``) and of
the ImageNet weights alone. Every backbone is fitted twice: ``feature-extract`` (a linear probe
of its frozen features, ``--head-epochs``) and ``fine-tune`` (graft's default: the head on
frozen features, then every layer for ``--epochs``, or ``--text-epochs`` for text).

(b) Text: masked-language-model pre-training of minilm continued on the texts of
``kitchen.csv`` that are not in its test part (labels dropped), at ``--max-length`` tokens, then
fitted on ``--text-per-class`` labelled kitchen reviews per class (and ``--text-val-per-class``
for validation) drawn from those same rows, tested on the held-out 300 reviews per class, against
minilm fitted directly, both at ``--max-length`` tokens.

Each pre-training runs once (seed 0) and is reused by every seed; each seed draws its own labelled
subset and seeds its fit. The tables give the test accuracy's mean and spread (sample standard
deviation) over seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

import subsets

import graft
from graft.data import LabelledData, load_data

DIGITS = subsets.DATASETS / "mnist_usps_16x16"
KITCHEN = subsets.DATASETS / "amazon_reviews_4domains" / "kitchen.csv"


def pretrain_images(args, folder: Path) -> dict[str, dict]:
    """The image backbones to compare: name -> model string and pre-training record."""
    arms = {
        "scratch": {"model": "scratch:efficientnet_lite0"},
        "imagenet": {"model": "efficientnet_lite0"},
    }
    runs = {
        "simclr-imagenet": dict(objective="simclr", init="pretrained", epochs=args.simclr_epochs),
        "simclr-scratch": dict(objective="simclr", init="scratch", epochs=args.simclr_epochs),
        "supervised-scratch": dict(
            objective="supervised",
            init="scratch",
            epochs=args.supervised_epochs,
            augment=args.supervised_augment,  # graft's presets flip, and a mirrored 2 is no 2
        ),
    }
    for name, options in runs.items():
        if name not in args.image_arms:
            continue
        result = graft.pretrain(
            DIGITS / "mnist",
            out=folder / name,
            image_size=args.image_size,
            flip=False,  # a mirrored digit is another symbol
            progress=False,
            **options,
        )
        arms[name] = {"model": str(result.path), "pretrain": _summary(result.record)}
        print(name, json.dumps(arms[name]["pretrain"]), flush=True)
    return {k: v for k, v in arms.items() if k in args.image_arms}


def pretrain_text(args, folder: Path, corpus: list[str]) -> dict[str, dict]:
    arms = {"minilm": {"model": "minilm"}}
    if "mlm-minilm" in args.text_arms:
        texts = folder / "kitchen-unlabelled.csv"
        with open(texts, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text"])
            writer.writerows([text] for text in corpus)
        result = graft.pretrain(
            texts,
            out=folder / "mlm-minilm",
            objective="mlm",
            epochs=args.mlm_epochs,
            max_length=args.max_length,
            progress=False,
        )
        arms["mlm-minilm"] = {"model": str(result.path), "pretrain": _summary(result.record)}
        print("mlm-minilm", json.dumps(arms["mlm-minilm"]["pretrain"]), flush=True)
    return {k: v for k, v in arms.items() if k in args.text_arms}


def _summary(record: dict) -> dict:
    return {
        "objective": record["objective"],
        "init": record["init"],
        "items": record["data"]["items"],
        "epochs": record["epochs"]["ran"],
        "kept_epoch": record["epochs"]["kept"],
        "initial_val_loss": round(record["initial_val_loss"], 4),
        "train_loss": [round(v, 4) for v in record["loss"]["train"]],
        "val_loss": [round(v, 4) for v in record["loss"]["val"]],
        "epoch_seconds": [row["seconds"] for row in record["history"]],
        "seconds": record["seconds"],
    }


def fit_arm(arm: str, spec: dict, strategy: str, parts, seed: int, args, cache: Path) -> dict:
    """One fit of ``arm``'s backbone on a seed's labelled subset; its test accuracy."""
    train, val, test = parts
    epochs = args.epochs if train.modality == "image" else args.text_epochs
    options: dict = dict(strategy=strategy, head_epochs=args.head_epochs, epochs=epochs)
    if strategy == "feature-extract":
        options["epochs"] = args.head_epochs
    if train.modality == "image":
        options["image_size"] = args.image_size
    else:
        options["max_length"] = args.max_length
    start = time.perf_counter()
    fitted = graft.fit(
        train,
        val,
        test,
        model=spec["model"],
        seed=seed,
        progress=False,
        cache_dir=str(cache),
        **options,
    )
    return {
        "arm": arm,
        "strategy": options["strategy"],
        "seed": seed,
        "train": len(train),
        "test_accuracy": fitted.metrics_["test"]["accuracy"],
        "val_accuracy": fitted.metrics_["val"]["accuracy"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def image_parts(seed: int, args) -> tuple[LabelledData, LabelledData, LabelledData]:
    usps = load_data(DIGITS / "usps")
    return tuple(subsets.split_per_class(usps, [args.per_class, args.val_per_class, None], seed))


def kitchen() -> tuple[LabelledData, LabelledData]:
    """kitchen.csv: 300 reviews per class held out for test (seed 0, the same for every run),
    and the rest, whose texts are the unlabelled corpus and from which labelled data are drawn."""
    test, pool = subsets.split_per_class(load_data(KITCHEN), [300, None], seed=0)
    return test, pool


def table(results: list[dict], arms: dict, part: str) -> list[str]:
    lines = [
        f"\n({part}) test accuracy over seeds",
        "| backbone | strategy | seeds | train | test acc mean | spread | s / fit |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["arm"], r["strategy"]) for r in results)
    for arm, strategy in keys:
        rows = [r for r in results if r["arm"] == arm and r["strategy"] == strategy]
        accuracies = [r["test_accuracy"] for r in rows]
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        lines.append(
            f"| {arm} | {strategy} | {len(rows)} | {rows[0]['train']} | "
            f"{statistics.mean(accuracies):.4f} | {spread:.4f} | "
            f"{statistics.mean(r['seconds'] for r in rows):.0f} |"
        )
    pretrained = [(name, spec["pretrain"]) for name, spec in arms.items() if "pretrain" in spec]
    if pretrained:
        lines += [
            f"\n({part}) pre-training (once, seed 0)",
            "| run | objective | init | items | epochs | held-out loss before | first epoch | "
            "kept epoch | s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, p in pretrained:
            kept = p["val_loss"][p["kept_epoch"] - 1]
            lines.append(
                f"| {name} | {p['objective']} | {p['init']} | {p['items']['train']} | "
                f"{p['epochs']} | {p['initial_val_loss']:.4f} | {p['val_loss'][0]:.4f} | "
                f"{kept:.4f} | {p['seconds']:.0f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="images,text")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--image-arms", default="scratch,imagenet,simclr-imagenet,simclr-scratch,supervised-scratch"
    )
    parser.add_argument("--text-arms", default="minilm,mlm-minilm")
    parser.add_argument("--strategies", default="feature-extract,fine-tune")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--simclr-epochs", type=int, default=4)
    parser.add_argument("--supervised-epochs", type=int, default=5)
    parser.add_argument("--supervised-augment", default="none")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--val-per-class", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--mlm-epochs", type=int, default=2)
    parser.add_argument("--text-per-class", type=int, default=100)
    parser.add_argument("--text-val-per-class", type=int, default=50)
    parser.add_argument("--head-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--text-epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/out/pretrain.json"))
    args = parser.parse_args()
    args.image_arms = args.image_arms.split(",")
    args.text_arms = args.text_arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = args.strategies.split(",")
    report: dict = {"arguments": {k: str(v) for k, v in vars(args).items()}, "parts": {}}
    lines: list[str] = []

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))

    with tempfile.TemporaryDirectory(prefix="graft-bench-pretrain-") as scratch:
        scratch = Path(scratch)
        cache = scratch / "cache"
        started = time.perf_counter()
        if "images" in args.parts:
            arms = pretrain_images(args, scratch)
            results: list[dict] = []
            report["parts"]["images"] = {"arms": arms, "results": results}
            save()
            for seed in seeds:
                parts = image_parts(seed, args)
                for arm, spec in arms.items():
                    for strategy in strategies:
                        results.append(fit_arm(arm, spec, strategy, parts, seed, args, cache))
                        print(json.dumps(results[-1]), flush=True)
                        save()
            lines += table(results, arms, "a: USPS digits")
        if "text" in args.parts:
            test, pool = kitchen()
            arms = pretrain_text(args, scratch, pool.items)
            results = []
            report["parts"]["text"] = {"arms": arms, "results": results}
            save()
            for seed in seeds:
                counts = [args.text_per_class, args.text_val_per_class, None]
                train, val, _ = subsets.split_per_class(pool, counts, seed)
                for arm, spec in arms.items():
                    for strategy in strategies:
                        parts = (train, val, test)
                        results.append(fit_arm(arm, spec, strategy, parts, seed, args, cache))
                        print(json.dumps(results[-1]), flush=True)
                        save()
            lines += table(results, arms, "b: kitchen reviews")
        report["seconds"] = round(time.perf_counter() - started, 1)
        save()
    print("\n".join(lines))
    print(f"\ntotal {report['seconds']:.0f} s; written to {args.out}")


if __name__ == "__main__":
    main()
