"""The feature cache against the usual recipe: a frozen backbone run in every epoch.

    .venv/bin/python bench/feature_cache.py [--data ../shared/datasets/flowers5_128px]
                                            [--per-class N] [--epochs 10]

Same data, backbone (efficientnet_lite0), head, batch size, epochs and seed. Prints:
- one plain forward pass of the backbone over the data (train + val);
- graft's feature-extract fit from a cold cache (everything: reading and checking the images,
  hashing, the one forward pass, training the head, evaluating), and again with a warm cache;
- a plain PyTorch loop that runs the frozen backbone on every batch of every epoch.
Goal: graft's cold fit costs at most 1.2 times the one forward pass.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import graft
from graft.backbones import create_backbone
from graft.data import load_splits
from graft.data.transforms import Collate, InputDataset
from graft.heads import ClassificationHead


def subset(source: Path, per_class: int | None, target: Path) -> Path:
    if per_class is None:
        return source
    for split in ("train", "val"):
        for folder in sorted((source / split).iterdir()):
            destination = target / split / folder.name
            destination.mkdir(parents=True)
            for photo in sorted(folder.iterdir())[:per_class]:
                shutil.copy(photo, destination / photo.name)
    return target


def loader(backbone, data, batch_size, shuffle=False):
    dataset = InputDataset(data.items, data.labels, backbone.preprocessing)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=Collate(backbone.preprocessing)
    )


def one_forward_pass(data_root: Path, batch_size: int) -> float:
    backbone = create_backbone("efficientnet_lite0")
    splits = load_splits(data_root)
    with torch.inference_mode():  # warm-up, so that one-time set-up does not count
        backbone(next(iter(loader(backbone, splits.val, batch_size)))[0])
    start = time.perf_counter()
    with torch.inference_mode():
        for part in (splits.train, splits.val):
            for inputs, _ in loader(backbone, part, batch_size):
                backbone(inputs)
    return time.perf_counter() - start


def plain_loop(data_root: Path, epochs: int, batch_size: int, seed: int) -> tuple[float, float]:
    """The tutorial recipe: frozen backbone, features recomputed for every batch, every epoch."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    splits = load_splits(data_root)
    backbone = create_backbone("efficientnet_lite0").eval().requires_grad_(False)
    head = ClassificationHead(backbone.feature_dim, len(splits.train.classes))
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=0.01)
    accuracy = 0.0
    for _ in range(epochs):
        head.train()
        for inputs, targets in loader(backbone, splits.train, batch_size, shuffle=True):
            with torch.no_grad():
                features = backbone(inputs)
            loss = F.cross_entropy(head(features), targets, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        head.eval()
        correct = 0
        with torch.no_grad():
            for inputs, targets in loader(backbone, splits.val, batch_size):
                correct += (head(backbone(inputs)).argmax(1) == targets).sum().item()
        accuracy = correct / len(splits.val)
    return time.perf_counter() - start, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).parents[1] / ".." / "shared" / "datasets" / "flowers5_128px",
    )
    parser.add_argument("--per-class", type=int, default=None, help="photos per class and split")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = subset(args.data, args.per_class, Path(scratch) / "data")
        cache = str(Path(scratch) / "cache")
        forward = one_forward_pass(root, args.batch_size)
        print(f"one forward pass over train+val: {forward:.1f}s", flush=True)
        models, seconds = {}, {}
        for name, lr in (("cold", 3e-3), ("warm", 1e-3)):  # warm: another head, same features
            start = time.perf_counter()
            models[name] = graft.fit(
                root,
                strategy="feature-extract",
                epochs=args.epochs,
                lr=lr,
                cache_dir=cache,
                batch_size=args.batch_size,
                progress=False,
            )
            seconds[name] = time.perf_counter() - start
            print(f"graft feature-extract, {name} cache: {seconds[name]:.1f}s", flush=True)
        cold, cold_seconds, warm_seconds = models["cold"], seconds["cold"], seconds["warm"]
        plain_seconds, plain_accuracy = plain_loop(root, args.epochs, args.batch_size, seed=0)
        print(f"plain loop: {plain_seconds:.1f}s", flush=True)
    examples = sum(cold.summary_["examples"].values())
    print(
        f"\n| {examples} images, {args.epochs} epochs | wall s | x one forward pass "
        "| val accuracy |"
    )
    print("|---|---|---|---|")
    print(f"| one forward pass (reference) | {forward:.1f} | 1.00 | - |")
    print(
        f"| graft, cold cache | {cold_seconds:.1f} | {cold_seconds / forward:.2f} | "
        f"{cold.metrics_['val']['accuracy']:.4f} |"
    )
    print(f"| graft, warm cache | {warm_seconds:.1f} | {warm_seconds / forward:.2f} | - |")
    print(
        f"| plain PyTorch loop | {plain_seconds:.1f} | {plain_seconds / forward:.2f} | "
        f"{plain_accuracy:.4f} |"
    )
    print(
        f"\nplain loop / graft cold = {plain_seconds / cold_seconds:.1f}x; "
        f"goal graft cold <= 1.2x one pass: {'met' if cold_seconds <= 1.2 * forward else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
