"""Domain adaptation: source-only training against every method of graft's catalogue, ``auto``
and source-free adaptation, over seeds.

    .venv/bin/python bench/adaptation.py --pairs mnist:usps,usps:mnist
    .venv/bin/python bench/adaptation.py --pairs photo:cartoon,cartoon:photo --image-size 128 \
        --epochs 3 --methods none,cdan,mcc,mdd,self-training,mcc+cdan,auto,source-free
    .venv/bin/python bench/adaptation.py --pairs books:kitchen,electronics:dvd --epochs 2 \
        --per-class 200 --target-per-class 250 --max-length 128
    .venv/bin/python bench/adaptation.py --replay bench/out/adaptation.json
    cd bench && ../.venv/bin/python adaptation.py --level features --pairs photo:cartoon \
        --image-size 160 --feature-epochs 15 --source-free-epochs 10 --methods none,mcc,auto

``--level features`` (``bench/adaptation_features.py``) adapts a bottleneck and the head on the
frozen backbone's features instead of fine-tuning the whole network: minutes instead of hours
for every method, seed and pair on one CPU thread.

Each pair ``SOURCE:TARGET`` is a domain of ``mnist_usps_16x16`` or ``pacs_photo_cartoon``
(efficientnet_lite0 at ``--image-size`` pixels) or of ``amazon_reviews_4domains`` (minilm). The
source domain is cut per class into training and validation data (seed 0, the same for every
run); the whole target domain (or ``--target-per-class`` of each class of it, to bound the cost
of the text runs) is the unlabelled target data and, with its labels, the target test data (the
standard unsupervised protocol: the labels are read only to report). Every method trains every
layer (``--strategy full``) for ``--epochs`` epochs with graft's defaults, once per seed, without
the source-risk guard (``--no-adapt-guard``); the kept epoch is chosen by the label-free target
score. The guarded result is replayed from the source-only run of the same pair and seed (the
guarded fit trains exactly these two models). ``auto`` is replayed too: its label-free
measurements are taken (no training), and the run of the method it chooses, which a fit with
``--adapt auto`` trains identically (``tests/adaptation/test_objectives_wired.py``), stands for
it; it is trained only when that method was not. ``source-free`` adapts the saved source-only
run of the same pair and seed with ``graft.adapt`` (SHOT's self-training, the head frozen, no
source item read) for ``--source-free-epochs`` epochs. The tables give the target accuracy's
mean and spread (sample standard deviation) over seeds, its gain over source-only, and the
domain gap (proxy A-distance) before and after training.
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
from graft.adaptation.guard import noise_tolerance
from graft.data import DataSplits, LabelledData, load_data

DIGITS = ("mnist", "usps")
PACS = ("photo", "cartoon")
REVIEWS = ("books", "dvd", "electronics", "kitchen")
EPOCH_KEYS = (
    "epoch",
    "val_score",
    "val_target_im",
    "val_target_snd",
    "val_target_entropy",
    "val_target_acc",
    "kept",
)


def domain(name: str) -> LabelledData:
    if name in DIGITS:
        return load_data(subsets.DATASETS / "mnist_usps_16x16" / name)
    if name in PACS:
        return load_data(subsets.DATASETS / "pacs_photo_cartoon" / name)
    if name in REVIEWS:
        return load_data(subsets.DATASETS / "amazon_reviews_4domains" / f"{name}.csv")
    raise SystemExit(f"unknown domain {name!r}: one of {', '.join(DIGITS + PACS + REVIEWS)}")


def pair_data(pair: str, args) -> tuple[LabelledData, LabelledData, LabelledData]:
    """The source training and validation data and the target of ``pair``."""
    source_name, target_name = pair.split(":")
    source, target = domain(source_name), domain(target_name)
    if args.per_class:
        source = subsets.per_class(source, args.per_class + args.val_per_class)
    val, train = subsets.split_per_class(source, [args.val_per_class, None])
    if args.target_per_class:
        target = subsets.per_class(target, args.target_per_class)
    return train, val, target


def fit_options(modality: str, args, scratch: Path, pair: str) -> dict:
    image = modality == "image"
    return dict(
        model="efficientnet_lite0" if image else "minilm",
        strategy="full",
        epochs=args.epochs,
        adapt_weight=args.adapt_weight,
        adapt_guard=False,  # the guarded result is replayed from the source-only run
        image_size=args.image_size if image else None,
        max_length=None if image else args.max_length,
        progress=False,
        cache_dir=scratch / pair,
    )


def run(pair: str, method: str, seed: int, args, scratch: Path) -> dict:
    train, val, target = pair_data(pair, args)
    start = time.perf_counter()
    out = source_run_dir(args, pair, seed) if method == "none" else None
    fitted = graft.fit(
        train,
        val,
        target=target,
        target_test=target,
        adapt=method,
        seed=seed,
        out=out,
        overwrite=True,
        **fit_options(train.modality, args, scratch, pair),
    )
    adaptation = fitted.metrics_["adaptation"]
    return {
        "pair": pair,
        "method": method_label(method, args.adapt_weight),
        "seed": seed,
        "train": len(train),
        "val": len(val),
        "target_accuracy": fitted.metrics_["target_test"]["accuracy"],
        "source_val_accuracy": fitted.metrics_["val"]["accuracy"],
        "gap_before": adaptation["domain_gap"]["before"],
        "gap_after": adaptation["domain_gap"]["after"],
        "label_free": adaptation["label_free"],
        **({"auto": adaptation["auto"]} if "auto" in adaptation else {}),
        "epochs": [{k: r.get(k) for k in EPOCH_KEYS} for r in fitted.history_],
        "kept_epoch": next((r["epoch"] for r in fitted.history_ if r.get("kept")), None),
        "seconds": time.perf_counter() - start,
    }


def source_run_dir(args, pair: str, seed: int) -> Path:
    """Where the source-only run of ``pair`` and ``seed`` is saved for source-free adaptation."""
    return args.runs_dir / pair.replace(":", "-") / f"seed{seed}"


def run_source_free(pair: str, seed: int, args, records: list[dict]) -> dict:
    """SHOT on the saved source-only run: no source item is read."""
    _, _, target = pair_data(pair, args)
    baseline = next(
        r for r in records if (r["pair"], r["method"], r["seed"]) == (pair, "none", seed)
    )
    start = time.perf_counter()
    adapted = graft.adapt(
        source_run_dir(args, pair, seed),
        target,
        out=args.runs_dir / pair.replace(":", "-") / f"seed{seed}-source-free",
        overwrite=True,
        method=args.source_free_method,
        target_test=target,
        epochs=args.source_free_epochs,
        seed=seed,
        progress=False,
    )
    record = adapted.metrics_["adaptation"]
    return {
        "pair": pair,
        "method": "source-free",
        "seed": seed,
        "train": 0,
        "target_accuracy": adapted.metrics_["target_test"]["accuracy"],
        "source_val_accuracy": None,
        "gap_before": baseline["gap_before"],
        "gap_after": None,
        "label_free": record["label_free"],
        "label_free_before": record["label_free_before"],
        "kept": record["kept"],
        "epochs": [{k: r.get(k) for k in EPOCH_KEYS} for r in adapted.history_],
        "seconds": time.perf_counter() - start,
    }


def auto_choice(pair: str, seed: int, args, scratch: Path) -> dict:
    """What ``--adapt auto`` measures and chooses for ``pair`` and ``seed``, without training
    (the same samples, features and rule as the fit: ``DomainAdaptation.measure_before``)."""
    from graft.adaptation.component import DomainAdaptation
    from graft.adaptation.target import TargetDomain
    from graft.config import FitConfig
    from graft.features import FeatureCache
    from graft.tasks import task_class

    train, val, target = pair_data(pair, args)
    options = fit_options(train.modality, args, scratch, pair)
    config = FitConfig(**options, adapt="auto", seed=seed).validate()
    start = time.perf_counter()
    backbone = task_class("multiclass").build_backbone(config, train)
    adaptation = DomainAdaptation(TargetDomain(target.items, pair), "auto", 1.0, False, seed, 32)
    cache = FeatureCache(Path(options["cache_dir"]) / "features")
    adaptation.measure_before(DataSplits(train, val, None), backbone, cache)
    return {**adaptation.auto, "seconds": time.perf_counter() - start}


def replay_auto(pair: str, seed: int, choice: dict, records: list[dict]) -> dict | None:
    """The record of the method ``auto`` chose, as ``auto`` (None when it was not run)."""
    chosen = next(
        (
            r
            for r in records
            if (r["pair"], r["method"], r["seed"]) == (pair, choice["chosen"], seed)
        ),
        None,
    )
    if chosen is None:
        return None
    return {
        **chosen,
        "method": "auto",
        "auto": choice,
        "replayed_from": chosen["method"],
        "seconds": chosen["seconds"] + choice["seconds"],
    }


def method_label(method: str, weight: float) -> str:
    return method if weight == 1.0 or method == "none" else f"{method}@{weight:g}"


def guarded(records: list[dict]) -> list[dict]:
    """The runs graft's default (the source-risk guard, :mod:`graft.adaptation.guard`) would
    return: each adapted run, or the source-only run of the same pair and seed when that one
    scores higher on the source validation data. The guarded fit trains exactly these two
    models (tests/adaptation/test_fit_adapted.py checks it returns the very same weights), so
    replaying the recorded runs gives its result without training the source-only model again.
    Source-free runs have no source data to guard with and are left out. The adapted run may
    lose the sampling noise of the source-only accuracy, as in a fit
    (:func:`graft.adaptation.guard.noise_tolerance`; records without their validation size,
    written before it, get none)."""
    source_only = {(r["pair"], r["seed"]): r for r in records if r["method"] == "none"}
    replayed = []
    for record in records:
        baseline = source_only.get((record["pair"], record["seed"]))
        if record["method"] in ("none", "source-free") or baseline is None:
            continue
        tolerance = noise_tolerance(baseline["source_val_accuracy"], baseline.get("val", 0))
        adapted = record["source_val_accuracy"] >= baseline["source_val_accuracy"] - tolerance
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


def _mean(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.mean(values):.3f}" if values else "n/a"


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
            + f" | {_mean(r['source_val_accuracy'] for r in runs)}"
            f" | {_mean(r['gap_before'] for r in runs)}"
            f" | {_mean(r['gap_after'] for r in runs)}"
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


def auto_table(records: list[dict]) -> str:
    """What ``auto`` measured and chose, per pair and seed."""
    lines = [
        "| pair | seed | gap | probe confidence | probe balance | chose |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["method"] == "auto":
            a = r["auto"]
            lines.append(
                f"| {r['pair']} | {r['seed']} | {a['gap']:.3f} | {a['probe_confidence']:.3f} "
                f"| {a['probe_balance']:.3f} | {a['chosen']} |"
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
        scored = record["epochs"] and all(e["val_target_acc"] is not None for e in record["epochs"])
        if record["method"] not in ("auto", "source-free") and scored:
            by_case.setdefault((record["pair"], record["method"]), []).append(record)
    for (pair, method), runs in by_case.items():
        cells = []
        for key, best in RULES.values():
            kept = [best(r["epochs"], key=lambda e, k=key: e[k]) for r in runs]
            cells.append(f"{statistics.mean(e['val_target_acc'] for e in kept):.4f}")
        lines.append(f"| {pair} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_all(args, records: list[dict]) -> None:
    """Every (pair, seed, method) not in ``records`` yet, written to ``--out`` after each."""
    done = {(r["pair"], r["method"], r["seed"]) for r in records}
    with tempfile.TemporaryDirectory() as scratch:
        for pair in args.pairs.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                for method in args.methods.split(","):
                    if (pair, method_label(method, args.adapt_weight), seed) in done:
                        continue
                    if method == "source-free":
                        record = run_source_free(pair, seed, args, records)
                    elif method == "auto":
                        choice = auto_choice(pair, seed, args, Path(scratch))
                        record = replay_auto(pair, seed, choice, records)
                        record = record or run(pair, "auto", seed, args, Path(scratch))
                    else:
                        record = run(pair, method, seed, args, Path(scratch))
                    records.append(record)
                    print({k: v for k, v in record.items() if k != "epochs"}, flush=True)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(records, indent=2))


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
    parser.add_argument("--source-free-epochs", type=int, default=3)
    parser.add_argument("--source-free-method", default="self-training")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "graft-adaptation-runs",
        help="where source-only runs are saved for source-free adaptation",
    )
    parser.add_argument(
        "--level",
        choices=("images", "features"),
        default="images",
        help="images: graft.fit end to end; features: the frozen backbone's features once, a "
        "bottleneck and the head adapted on them (bench/adaptation_features.py)",
    )
    parser.add_argument("--feature-epochs", type=int, default=30)
    parser.add_argument("--feature-lr", type=float, default=3e-3)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "graft-adaptation-cache",
        help="the feature cache of --level features",
    )
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
        if args.level == "features":
            from adaptation_features import run_features

            run_features(args, args.pairs.split(","), lambda pair: pair_data(pair, args), records)
        else:
            run_all(args, records)
    print(table(records))
    print("\nwith the source-risk guard (graft's default), replayed from the runs above:")
    print(guard_table(records))
    if any(r["method"] == "auto" for r in records):
        print("\nwhat --adapt auto measured and chose:")
        print(auto_table(records))
    print("\ntarget accuracy of the epoch each rule keeps (mean over seeds):")
    print(selection_table(records))


if __name__ == "__main__":
    main()
