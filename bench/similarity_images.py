"""Image similarity on flowers5_128px: same-class photo retrieval with the offline
EfficientNet-Lite0, pretrained as it is against graft's fits (a projection on the frozen
backbone, and the backbone fine-tuned).

Data, all seeded: from the training photos, ``--train-per-class`` photos of each class, each
paired with another photo of its class (a table of ``query,positive`` image paths, as a user
would write it); ``--val-per-class`` other training photos as the validation table, every
photo paired with every other of its class (so that validation nDCG@10 is the metric below);
the test set is ``--test-per-class`` photos of each class of the ``val/`` folder, every photo a
query searching all the others, relevant when of its class (nDCG@10, MRR@10; P@1 is the share
of queries whose first answer is of their class). Every model is scored by the same code,
``graft evaluate MODEL test.csv`` (:meth:`SimilarityModel.evaluate` on the test table).

    .venv/bin/python bench/similarity_images.py --out bench/out/similarity_images.json
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from pathlib import Path

FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flowers5_128px"


def photos(folder: Path, per_class: int, seed: int, skip: int = 0) -> dict[str, list[Path]]:
    """``per_class`` photos of each class folder of ``folder`` (seeded), after the first
    ``skip`` of the same seeded order."""
    chosen = {}
    for cls in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        files = sorted((folder / cls).glob("*.jpg"))
        random.Random(f"{seed}-{cls}").shuffle(files)
        chosen[cls] = files[skip : skip + per_class]
    return chosen


def write_pairs(path: Path, rows: list[tuple[Path, Path]]) -> Path:
    """A ``query,positive`` table of image paths relative to its folder."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "positive"])
        for query, positive in rows:
            writer.writerow([query.relative_to(path.parent), positive.relative_to(path.parent)])
    return path


def one_positive(by_class: dict[str, list[Path]], seed: int) -> list[tuple[Path, Path]]:
    """Each photo with another photo of its class (seeded)."""
    rng, rows = random.Random(seed), []
    for files in by_class.values():
        for i, query in enumerate(files):
            j = rng.choice([k for k in range(len(files)) if k != i])
            rows.append((query, files[j]))
    return rows


def all_positives(by_class: dict[str, list[Path]]) -> list[tuple[Path, Path]]:
    """Each photo with every other photo of its class."""
    return [(q, p) for files in by_class.values() for q in files for p in files if p != q]


def build(root: Path, args) -> dict[str, Path]:
    """The three tables, under ``root`` (the photos linked beside them)."""
    (root / "photos").symlink_to(FLOWERS)
    train_dir, test_dir = root / "photos" / "train", root / "photos" / "val"
    train = photos(train_dir, args.train_per_class, args.seed)
    val = photos(train_dir, args.val_per_class, args.seed, skip=args.train_per_class)
    test = photos(test_dir, args.test_per_class, args.seed)
    return {
        "train": write_pairs(root / "train.csv", one_positive(train, args.seed)),
        "val": write_pairs(root / "val.csv", all_positives(val)),
        "test": write_pairs(root / "test.csv", all_positives(test)),
    }


def precision_at_1(model, table: Path) -> float:
    """The share of the test photos whose nearest other photo is of their class."""
    import numpy as np

    rows = list(csv.DictReader(table.open()))
    queries = sorted({r["query"] for r in rows})
    paths = [(table.parent / q).resolve() for q in queries]
    vectors = model.embed([str(p) for p in paths])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    classes = np.array([p.parent.name for p in paths])
    return float((classes[similarity.argmax(axis=1)] == classes).mean())


def pretrained_at(size: int):
    """The pretrained backbone as it is, shown images of ``size`` pixels as the fits are."""
    import dataclasses

    from graft.backbones.registry import create_backbone
    from graft.tasks.similarity.image_encoder import embedder_for
    from graft.tasks.similarity.model import SimilarityModel

    backbone = create_backbone("efficientnet_lite0")
    backbone.preprocessing = dataclasses.replace(backbone.preprocessing, input_size=(size, size))
    return SimilarityModel(embedder_for(backbone), "efficientnet_lite0", "image")


def scored(name: str, source, tables: dict[str, Path], seconds: float, extra: dict) -> dict:
    from graft.searching import open_searcher

    model = open_searcher(source) if isinstance(source, str) else source
    metrics = model.evaluate(tables["test"])
    row = {
        "arm": name,
        "ndcg@10": round(metrics["ndcg@10"], 4),
        "mrr@10": round(metrics["mrr@10"], 4),
        "p@1": round(precision_at_1(model, tables["test"]), 4),
        "queries": metrics["queries"],
        "fit_seconds": round(seconds, 1),
        **extra,
    }
    print(json.dumps(row), flush=True)
    return row


def fit_arm(name: str, tables: dict, root: Path, args, **options) -> dict:
    import graft

    started = time.perf_counter()
    model = graft.fit(
        str(tables["train"]),
        val=str(tables["val"]),
        task="similarity",
        model="efficientnet_lite0",
        image_size=args.image_size,
        batch_size=args.batch_size,
        seed=args.seed,
        out=root / name,
        progress=False,
        **options,
    )
    seconds = time.perf_counter() - started
    guard = model.metrics_.get("guard", {})
    extra = {
        "options": options,
        "val_ndcg@10": round(float(model.kept_phase_.get("val_score", float("nan"))), 4),
        "pretrained_val_ndcg@10": guard.get("pretrained_val_score"),
        "kept_pretrained": guard.get("kept_pretrained"),
    }
    return scored(name, str(root / name), tables, seconds, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--val-per-class", type=int, default=10)
    parser.add_argument("--test-per-class", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", default="pretrained,feature-extract,fine-tune")
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument("--encoder-lr", type=float, default=1e-4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        tables = build(root, args)
        arms = args.arms.split(",")
        if "pretrained" in arms:
            rows.append(
                scored(
                    "pretrained (224 px, as graft evaluate runs it)",
                    "efficientnet_lite0",
                    tables,
                    0.0,
                    {},
                )
            )
            rows.append(scored("pretrained", pretrained_at(args.image_size), tables, 0.0, {}))
        if "feature-extract" in arms:
            rows.append(fit_arm("feature-extract", tables, root, args, strategy="feature-extract"))
        if "fine-tune" in arms:
            rows.append(
                fit_arm(
                    "fine-tune",
                    tables,
                    root,
                    args,
                    strategy="fine-tune",
                    epochs=args.fine_tune_epochs,
                    encoder_lr=args.encoder_lr,
                )
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}))


if __name__ == "__main__":
    main()
