"""Domain adaptation: source-only training against DANN, CORAL and MK-MMD, over seeds.

    .venv/bin/python bench/adaptation.py --pairs mnist:usps,usps:mnist
    .venv/bin/python bench/adaptation.py --pairs books:kitchen,electronics:dvd --epochs 2 \
        --per-class 200 --target-per-class 250 --max-length 128
    .venv/bin/python bench/adaptation.py --replay bench/out/adaptation.json

Each pair ``SOURCE:TARGET`` is a domain of ``mnist_usps_16x16`` (efficientnet_lite0 at
``--image-size`` pixels) or of ``amazon_reviews_4domains`` (minilm). The source domain is cut
per class into training and validation data (seed 0, the same for every run); the whole target
domain (or ``--target-per-class`` of each class of it, to bound the cost of the text runs) is the
unlabelled target data and, with its labels, the target test data (the standard unsupervised
protocol: the labels are read only to report). Every method trains every layer
(``--strategy full``) for ``--epochs`` epochs with graft's defaults, once per seed; the kept
epoch is chosen by the label-free target score. The table gives the target accuracy's mean and
spread (sample standard deviation) over seeds, its gain over source-only, and the domain gap
(proxy A-distance) before and after training.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import subsets

import graft
from graft.data import LabelledData, load_data

DIGITS = ("mnist", "usps")
REVIEWS = ("books", "dvd", "electronics", "kitchen")


def domain(name: str) -> LabelledData:
    if name in DIGITS:
        return load_data(subsets.DATASETS / "mnist_usps_16x16" / name)
    if name in REVIEWS:
        return load_data(subsets.DATASETS / "amazon_reviews_4domains" / f"{name}.csv")
    raise SystemExit(f"unknown domain {name!r}: one of {', '.join(DIGITS + REVIEWS)}")


def run(pair: str, method: str, seed: int, args, scratch: Path) -> dict:
    source_name, target_name = pair.split(":")
    source, target = domain(source_name), domain(target_name)
    if args.per_class:
        source = subsets.per_class(source, args.per_class + args.val_per_class)
    val, train = subsets.split_per_class(source, [args.val_per_class, None])
    if args.target_per_class:
        target = subsets.per_class(target, args.target_per_class)
    image = source.modality == "image"
    start = time.perf_counter()
    fitted = graft.fit(
        train,
        val,
        target=target,
        target_test=target,
        model="efficientnet_lite0" if image else "minilm",
        strategy="full",
        epochs=args.epochs,
        adapt=method,
        adapt_weight=args.adapt_weight,
        adapt_guard=False,  # the guarded result is replayed from the source-only run
        seed=seed,
        image_size=args.image_size if image else None,
        max_length=None if image else args.max_length,
        progress=False,
        cache_dir=scratch / pair,
    )
    adaptation = fitted.metrics_["adaptation"]
    return {
        "pair": pair,
        "method": method_label(method, args.adapt_weight),
        "seed": seed,
        "train": len(train),
        "target_accuracy": fitted.metrics_["target_test"]["accuracy"],
        "source_val_accuracy": fitted.metrics_["val"]["accuracy"],
        "gap_before": adaptation["domain_gap"]["before"],
        "gap_after": adaptation["domain_gap"]["after"],
        "label_free": adaptation["label_free"],
        "epochs": [
            {
                k: r.get(k)
                for k in (
                    "epoch",
                    "val_score",
                    "val_target_im",
                    "val_target_snd",
                    "val_target_entropy",
                    "val_target_acc",
                    "kept",
                )
            }
            for r in fitted.history_
        ],
        "kept_epoch": next((r["epoch"] for r in fitted.history_ if r.get("kept")), None),
        "seconds": time.perf_counter() - start,
    }


def method_label(method: str, weight: float) -> str:
    return method if weight == 1.0 or method == "none" else f"{method}@{weight:g}"


def guarded(records: list[dict]) -> list[dict]:
    """The runs graft's default (the source-risk guard, :mod:`graft.adaptation.guard`) would
    return: each adapted run, or the source-only run of the same pair and seed when that one
    scores higher on the source validation data. The guarded fit trains exactly these two
    models (tests/test_adaptation.py checks it returns the very same weights), so replaying
    the recorded runs gives its result without training the source-only model again."""
    source_only = {(r["pair"], r["seed"]): r for r in records if r["method"] == "none"}
    replayed = []
    for record in records:
        baseline = source_only.get((record["pair"], record["seed"]))
        if record["method"] == "none" or baseline is None:
            continue
        adapted = record["source_val_accuracy"] >= baseline["source_val_accuracy"]
        kept = record if adapted else baseline
        replayed.append(
            {
                **kept,
                "method": f"{record['method']}+guard",
                "guard_kept": "adapted" if adapted else "source-only",
                "seconds": record["seconds"] + baseline["seconds"],
            }
        )
    return replayed


def table(records: list[dict]) -> str:
    lines = [
        "| pair | method | seeds | target acc mean | spread | gain over none | source val acc "
        "| gap before | gap after | s / run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_case: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        by_case.setdefault((record["pair"], record["method"]), []).append(record)
    for (pair, method), runs in by_case.items():
        accuracy = [r["target_accuracy"] for r in runs]
        baseline = by_case.get((pair, "none"))
        mean = statistics.mean(accuracy)
        gain = mean - statistics.mean(r["target_accuracy"] for r in baseline) if baseline else None
        spread = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
        lines.append(
            f"| {pair} | {method} | {len(runs)} | {mean:.4f} | {spread:.4f} | "
            + ("n/a" if gain is None else f"{gain:+.4f}")
            + f" | {statistics.mean(r['source_val_accuracy'] for r in runs):.4f}"
            f" | {statistics.mean(r['gap_before'] for r in runs):.3f}"
            f" | {statistics.mean(r['gap_after'] for r in runs):.3f}"
            f" | {statistics.mean(r['seconds'] for r in runs):.0f} |"
        )
    return "\n".join(lines)


def guard_table(records: list[dict]) -> str:
    """The table of :func:`table` for the guarded runs, with how often adaptation was kept."""
    replayed = guarded(records)
    lines = table(records=[r for r in records if r["method"] == "none"] + replayed).splitlines()
    kept: dict[tuple[str, str], list[str]] = {}
    for record in replayed:
        kept.setdefault((record["pair"], record["method"]), []).append(record["guard_kept"])
    lines[0] += " adapted kept |"
    lines[1] += "---|"
    for index, line in enumerate(lines[2:], start=2):
        pair, method = (cell.strip() for cell in line.split("|")[1:3])
        choices = kept.get((pair, method))
        lines[index] += (
            " n/a |" if choices is None else f" {choices.count('adapted')}/{len(choices)} |"
        )
    return "\n".join(lines)


#: Ways to pick the kept epoch from a run's history: the label-free scores (target data
#: without labels), the source validation score, the last epoch, and the oracle (target labels).
RULES = {
    "IM (graft)": ("val_target_im", max),
    "SND": ("val_target_snd", max),
    "entropy": ("val_target_entropy", min),
    "source val": ("val_score", max),
    "last epoch": ("epoch", max),
    "oracle": ("val_target_acc", max),
}


def selection_table(records: list[dict]) -> str:
    """Mean target accuracy over seeds of the epoch each rule keeps, per pair and method."""
    header = " | ".join(RULES)
    lines = [f"| pair | method | {header} |", "|---|---|" + "---|" * len(RULES)]
    by_case: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        if record["method"] != "none":
            by_case.setdefault((record["pair"], record["method"]), []).append(record)
    for (pair, method), runs in by_case.items():
        cells = []
        for key, best in RULES.values():
            kept = [best(r["epochs"], key=lambda e, k=key: e[k]) for r in runs]
            cells.append(f"{statistics.mean(e['val_target_acc'] for e in kept):.4f}")
        lines.append(f"| {pair} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="mnist:usps,usps:mnist")
    parser.add_argument("--methods", default="none,dann,coral,mmd")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--per-class", type=int, help="source training examples per class")
    parser.add_argument("--val-per-class", type=int, default=20)
    parser.add_argument("--target-per-class", type=int, help="target examples per class")
    parser.add_argument("--max-length", type=int, help="tokens per text (text pairs)")
    parser.add_argument("--adapt-weight", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/adaptation.json"))
    parser.add_argument("--replay", type=Path, nargs="+", help="recorded JSON files")
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs already in --out, run the rest"
    )
    args = parser.parse_args()
    if args.replay:
        records = [r for path in args.replay for r in json.loads(path.read_text())]
    else:
        records = json.loads(args.out.read_text()) if args.resume and args.out.is_file() else []
        done = {(r["pair"], r["method"], r["seed"]) for r in records}
        with tempfile.TemporaryDirectory() as scratch:
            for pair in args.pairs.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    for method in args.methods.split(","):
                        if (pair, method_label(method, args.adapt_weight), seed) in done:
                            continue
                        records.append(run(pair, method, seed, args, Path(scratch)))
                        print(records[-1], flush=True)
                        args.out.parent.mkdir(parents=True, exist_ok=True)
                        args.out.write_text(json.dumps(records, indent=2))
    print(table(records))
    print("\nwith the source-risk guard (graft's default), replayed from the runs above:")
    print(guard_table(records))
    print("\ntarget accuracy of the epoch each rule keeps (mean over seeds):")
    print(selection_table(records))


if __name__ == "__main__":
    main()
