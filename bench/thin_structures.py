"""Segmentation of thin structures: graft's working scale against resizing every image.

    .venv/bin/python bench/thin_structures.py [--arms default,resized,crops] [--width 3]
                                              [--out bench/out/thin_structures.json]

No electron-microscopy, vessel or crack set is in the shared data, so the bench draws one in
the image of the case the issue describes (24 slices of 512 x 512 px with membranes a few
pixels wide): each slice is a tessellation of cells (a Voronoi diagram of 30-60 random
centres) whose walls, ``--width`` pixels wide (default 3), are the class ``membrane``; the
cells' insides are textured and hold darker organelles (discs, not membranes) that a
threshold on intensity would take for walls; noise on everything. 24 training and 8
validation slices, seeded.

Arms, each graft's default segmentation fit (``graft.fit(task="segmentation")``) in a fresh
process, one after the other:

- ``default``: the working scale graft chooses (:mod:`graft.tasks.segmentation.scale`): walls
  under 3 px wide once resized to 256 px keep the slices' own resolution, trained on whole
  slices (crops of 512 px) and predicted in one tile;
- ``resized``: every slice resized to a shorter side of 256 (``--image-size``), where a wall
  3 px wide is 1.5 px (graft's rule before the ninth session; ``scale.LEAST_WIDTH = 0``);
- ``crops``: the slices' own resolution in random crops of 256 px, predicted by overlapping
  tiles (the ninth session's rule; ``scale.NATIVE_RATIO = 0``, the large-image path).

``--image-size``, ``--epochs`` and ``--head-epochs`` pass to every arm.

Both are scored by graft's validation metrics at the validation slices' own resolution (mean
IoU over background and membrane, and the membrane's IoU). Wall and CPU time of each process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from children import children_cpu, print_result, run_child

SIZE = 512
SPLITS = {"train": 24, "val": 8}
ARMS = ("default", "resized", "crops")


def slice_image(rng: np.random.Generator, width: float) -> tuple[np.ndarray, np.ndarray]:
    """One slice (RGB, uint8) and its mask (0 cell, 1 membrane)."""
    from scipy import ndimage

    centres = rng.uniform(0, SIZE, size=(int(rng.integers(30, 61)), 2))
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    points = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float32)
    squared = ((points[:, None, :] - centres[None, :, :].astype(np.float32)) ** 2).sum(-1)
    two = np.argpartition(squared, 1, axis=1)[:, :2]
    first, second = np.take_along_axis(squared, two, axis=1).T
    gap = np.linalg.norm(centres[two[:, 0]] - centres[two[:, 1]], axis=1)
    # a wall: points within width/2 of the bisector of their two nearest centres
    to_wall = np.abs(second - first) / (2 * np.maximum(gap, 1e-6))
    membrane = (to_wall < width / 2).reshape(SIZE, SIZE)
    cell = np.argmin(squared, axis=1).reshape(SIZE, SIZE)
    shade = rng.uniform(0.55, 0.8, size=len(centres))[cell]
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (SIZE, SIZE)), 3) * 0.08
    image = shade + texture
    for _ in range(int(rng.integers(20, 40))):  # organelles: dark discs inside the cells
        r, c, radius = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(3, 9)
        disc = (rows - r) ** 2 + (cols - c) ** 2 < radius**2
        image[disc & ~membrane] -= rng.uniform(0.2, 0.35)
    image[membrane] -= rng.uniform(0.25, 0.35)
    image += rng.normal(0, 0.06, (SIZE, SIZE))
    grey = np.clip(image * 255, 0, 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=-1), membrane.astype(np.uint8)


def write_slices(folder: Path, width: float, seed: int = 0) -> Path:
    """The slices of each split under ``folder/<split>/images`` and ``masks``, beside the
    class file."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in SPLITS.items():
        (folder / split / "images").mkdir(parents=True)
        (folder / split / "masks").mkdir(parents=True)
        for index in range(count):
            image, mask = slice_image(rng, width)
            Image.fromarray(image).save(folder / split / "images" / f"slice{index:02d}.png")
            Image.fromarray(mask).save(folder / split / "masks" / f"slice{index:02d}.png")
        (folder / split / "classes.txt").write_text("cell\nmembrane\n")
    return folder


def run_arm(arm: str, folder: Path, options: dict) -> dict:
    """One graft fit in this process (``options``: ``image_size``, ``epochs``, ``head_epochs``
    when given); its scores and the scale it chose."""
    import graft
    from graft.tasks.segmentation import scale

    if arm == "resized":
        scale.LEAST_WIDTH = 0.0
    elif arm == "crops":
        scale.NATIVE_RATIO = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        model = graft.fit(
            str(folder / "train"),
            str(folder / "val"),
            task="segmentation",
            seed=0,
            progress=False,
            out=Path(scratch) / "run",
            **{k: v for k, v in options.items() if v is not None},
        )
    metrics = model.metrics_["val"]
    return {
        "arm": arm,
        "seconds": round(time.perf_counter() - start, 1),
        "mean_iou": round(metrics["mean_iou"], 4),
        "membrane_iou": round(metrics["per_class"]["membrane"]["iou"], 4),
        "pixel_accuracy": round(metrics["pixel_accuracy"], 4),
        "scale": model.fitted_task_.scale.to_dict(),
        "epochs": len(model.history_),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| arm | working scale | mean IoU | membrane IoU | pixel accuracy | wall s | CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        seen = r["scale"].get("short_side")
        where = "own resolution, tiles" if seen is None else f"shorter side {seen} px"
        lines.append(
            f"| {r['arm']} | {where} | {r['mean_iou']:.4f} | {r['membrane_iou']:.4f} "
            f"| {r['pixel_accuracy']:.4f} | {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--width", type=float, default=3.0, help="the membranes' width in px")
    parser.add_argument("--image-size", type=int, help="graft's --image-size (default: its own)")
    parser.add_argument("--epochs", type=int, help="graft's --epochs (default: its own)")
    parser.add_argument("--head-epochs", type=int, help="graft's --head-epochs")
    parser.add_argument("--out", type=Path, default=Path("bench/out/thin_structures.json"))
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one arm, in-process
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    options = {
        "image_size": args.image_size,
        "epochs": args.epochs,
        "head_epochs": args.head_epochs,
    }
    if args.arm:
        print_result(run_arm(args.arm, args.folder, options))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="graft-thin-") as scratch:
        folder = write_slices(Path(scratch) / "slices", args.width)
        for arm in [a.strip() for a in args.arms.split(",") if a.strip()]:
            command = [sys.executable, __file__, "--arm", arm, "--folder", str(folder)]
            for name, value in options.items():
                if value is not None:
                    command += [f"--{name.replace('_', '-')}", str(value)]
            started, cpu = time.perf_counter(), children_cpu()
            result = run_child(arm, command)
            result.update(
                wall_seconds=round(time.perf_counter() - started, 1),
                cpu_seconds=round(children_cpu() - cpu, 1),
                width=args.width,
                options={k: v for k, v in options.items() if v is not None},
            )
            results.append(result)
            print(json.dumps(result), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
