"""Few-shot text classification: a head on frozen MiniLM against SetFit-style fine-tuning.

    .venv/bin/python bench/fewshot_prototype.py --sizes 8 --seeds 0,1,2
    .venv/bin/python bench/fewshot_prototype.py --sizes 64 --seeds 0
    .venv/bin/python bench/fewshot_prototype.py --replay bench/out/fewshot_prototype.json

``sst2``: for each seed, ``--sizes`` training sentences per class drawn exactly as
``bench/compare.py``'s few-shot task draws them (so the SetFit figures there, 0.665 at 8 per
class and 0.771 at 64, are on the same sentences), tested on ``test.csv`` (872, GLUE dev).
Nothing is held out: both arms use every labelled example.

- ``logreg frozen``: scikit-learn's ``LogisticRegression()`` (default C=1) on the frozen
  minilm embeddings (masked mean pooling, L2-normalised as sentence-transformers'
  all-MiniLM-L6-v2 pipeline ends, which is what SetFit's head sees).
- ``contrastive + logreg``: minilm fine-tuned by :mod:`graft.fewshot.contrastive` on pairs of
  the labelled sentences (``--strategy``: ``iterations`` with ``--iterations`` rounds, the
  paper's R=20, or ``oversampling``, SetFit 1.x's default) with the cosine pair loss, batch
  ``--batch-size`` pairs, 1 epoch, AdamW at ``--lr`` with 10% warm-up, texts cut to
  ``--max-length`` tokens; then the same logistic regression on its new embeddings.

Wall time per arm: fine-tuning (through graft's engine, checkpoint writing included), the
embeddings of the training and test sentences, and the regression; the model's loading is not
counted. Results are merged into ``--out`` (a record per size, seed and arm).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import subsets
import torch
import torch.nn.functional as F

from graft.backbones import Backbone, create_backbone
from graft.data import LabelledData
from graft.features import extract_features
from graft.fewshot.contrastive import contrastive_fine_tune, contrastive_phase
from graft.fewshot.pairs import contrastive_pairs, pair_counts


def sst2_few_shot(per_class: int, seed: int) -> tuple[LabelledData, LabelledData]:
    """compare.py's few-shot draw: ``per_class`` of its 1,000-per-class pool, and test.csv."""
    pool, _, test = subsets.sst2()
    return subsets.per_class(pool, per_class, seed), test


def minilm(max_length: int) -> Backbone:
    backbone = create_backbone("minilm")
    backbone.preprocessing = dataclasses.replace(backbone.preprocessing, max_length=max_length)
    return backbone


def embed(backbone: Backbone, data: LabelledData) -> np.ndarray:
    return F.normalize(extract_features(backbone, data, batch_size=64), dim=1).numpy()


def logreg_accuracy(train_x, train: LabelledData, test_x, test: LabelledData) -> float:
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression().fit(train_x, train.labels)
    return float((head.predict(test_x) == test.labels).mean())


def frozen_arm(train: LabelledData, test: LabelledData, test_x: np.ndarray, args) -> dict:
    start = time.perf_counter()
    accuracy = logreg_accuracy(embed(minilm(args.max_length), train), train, test_x, test)
    return {"arm": "logreg frozen", "accuracy": accuracy, "seconds": time.perf_counter() - start}


def contrastive_arm(train: LabelledData, test: LabelledData, seed: int, args) -> dict:
    backbone = minilm(args.max_length)
    torch.manual_seed(seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        history = contrastive_fine_tune(
            backbone,
            train,
            work,
            num_iterations=args.iterations,
            phase=contrastive_phase(epochs=1, lr=args.lr),
            strategy=args.strategy,
            batch_size=args.batch_size,
            seed=seed,
        )
    tuned = time.perf_counter() - start
    accuracy = logreg_accuracy(embed(backbone, train), train, embed(backbone, test), test)
    pairs = contrastive_pairs(train.labels, args.iterations, seed, args.strategy)
    return {
        "arm": f"contrastive ({args.strategy}) + logreg",
        "accuracy": accuracy,
        "seconds": time.perf_counter() - start,
        "fine_tune_seconds": tuned,
        "pairs": pair_counts(pairs),
        "steps": -(-len(pairs) // args.batch_size),
        "train_loss": history[-1].get("train_loss") if history else None,
    }


def run(args) -> list[dict]:
    records = []
    frozen_test = None
    for per_class in (int(s) for s in args.sizes.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            train, test = sst2_few_shot(per_class, seed)
            if frozen_test is None:
                frozen_test = embed(minilm(args.max_length), test)
            arms = [frozen_arm(train, test, frozen_test, args)]
            if not args.frozen_only:
                arms.append(contrastive_arm(train, test, seed, args))
            for record in arms:
                record.update(per_class=per_class, seed=seed, max_length=args.max_length)
                if "contrastive" in record["arm"]:
                    record.update(lr=args.lr, batch_size=args.batch_size)
                print(json.dumps(record), flush=True)
                records.append(record)
    return records


def merge(path: Path, records: list[dict]) -> list[dict]:
    """The records in ``path`` with these replacing any of the same size, seed and arm."""
    old = json.loads(path.read_text()) if path.is_file() else []
    key = lambda r: (r["per_class"], r["seed"], r["arm"])  # noqa: E731
    new = {key(r) for r in records}
    return [r for r in old if key(r) not in new] + records


def table(records: list[dict]) -> str:
    lines = ["| per class | arm | seeds | accuracy (mean ± std) | per seed | wall s (mean) |"]
    lines.append("|---|---|---|---|---|---|")
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault((record["per_class"], record["arm"]), []).append(record)
    for (per_class, arm), group in sorted(groups.items()):
        group.sort(key=lambda r: r["seed"])
        accuracies = [r["accuracy"] for r in group]
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        seeds = ",".join(str(r["seed"]) for r in group)
        each = " ".join(f"{a:.4f}" for a in accuracies)
        seconds = statistics.mean(r["seconds"] for r in group)
        lines.append(
            f"| {per_class} | {arm} | {seeds} | {statistics.mean(accuracies):.4f} ± "
            f"{spread:.4f} | {each} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--strategy", default="iterations", choices=["iterations", "oversampling"])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--frozen-only", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/out/fewshot_prototype.json"))
    parser.add_argument("--replay", type=Path, help="print the table of a recorded JSON file")
    args = parser.parse_args()
    if args.replay:
        print(table(json.loads(args.replay.read_text())))
        return
    records = merge(args.out, run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2))
    print(table(records))


if __name__ == "__main__":
    main()
