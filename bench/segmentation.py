"""Semantic segmentation on Penn-Fudan: graft's strategies against smp's documented training loop
and against the same U-Net with a randomly initialised encoder.

    .venv/bin/python bench/segmentation.py                           # every row (hours on 2 CPUs)
    .venv/bin/python bench/segmentation.py --only fine-tune,plain    # some rows
    .venv/bin/python bench/segmentation.py --quick                   # a check that every row runs
    .venv/bin/python bench/segmentation.py --only fine-tune --options '{"loss": "dice"}' \\
        --label loss-dice --out bench/out/segmentation-sweep.json     # a graft row with options
    .venv/bin/python bench/segmentation.py --replay bench/out/segmentation.json

Data: ``../shared/datasets/pennfudan``, person against background, the seed-0 split shipped
with the data (``annotations_train.json``: 120 images; ``annotations_val.json``: 50), COCO RLE
masks rendered to semantic masks (:mod:`graft.tasks.segmentation.read`; the same masks as
``PedMasks/``). Encoder: EfficientNet-Lite0 with its offline ImageNet weights. Every row runs in
a process of its own (seed 0) and is scored the same way, by
:func:`graft.tasks.segmentation.metrics.segmentation_metrics` on the 50 validation images at
their own size (mean IoU over background and person, and the person IoU):

- ``feature-extract``, ``fine-tune`` (graft's default), ``full``, ``partial``: ``graft.fit`` with
  that strategy and graft's segmentation defaults (:mod:`graft.tasks.segmentation.task`: U-Net,
  cross-entropy plus Dice, 256-pixel crops of images whose shorter side is 256);
- ``plain``: the same U-Net (segmentation_models_pytorch's, ``tu-tf_efficientnet_lite0`` with
  the same ImageNet weights loaded into its encoder) trained as smp's documented example
  (examples/binary_segmentation_intro.ipynb) trains it: images and masks resized to 256x256,
  normalised by the encoder's mean and std, no augmentation, one output channel, binary Dice
  loss from logits, Adam at 2e-4 with a cosine schedule to 1e-5 stepped every batch, batches of
  16, 10 epochs, everything training (BatchNorm too), the last epoch kept; its predictions are
  made at 256x256 and their logits resized to each image's size;
- ``random-encoder``: graft's U-Net with ``scratch:efficientnet_lite0`` (the same architecture,
  seeded random weights, BatchNorm statistics learned), strategy ``full`` with the encoder at
  the decoder's rate, as many epochs as the default trains in all: what the pretrained encoder
  is worth.

Wall time is the whole row (reading the data, training, the per-epoch validation, the final
evaluation). The table gives each row's mean IoU, person IoU, seconds, and its time and mean
IoU against the plain loop's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from children import children_cpu

PENNFUDAN = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "pennfudan"
ROWS = ("feature-extract", "fine-tune", "full", "partial", "plain", "random-encoder")
#: Goals of the issue: graft's default reaches this person IoU, and at least the plain loop's
#: mean IoU in no more than its time.
PERSON_IOU_GOAL = 0.75
#: ``--quick``: images of each split, and epochs of each phase.
QUICK = {"train": 12, "val": 6, "epochs": 1, "image_size": 64}
#: The documented smp example's settings (binary_segmentation_intro).
PLAIN = {"size": 256, "batch_size": 16, "epochs": 10, "lr": 2e-4, "eta_min": 1e-5}


def data(quick: bool, train_limit: int | None = None):
    from graft.tasks.segmentation.read import read_segmentation

    train = read_segmentation(PENNFUDAN / "annotations_train.json")
    val = read_segmentation(PENNFUDAN / "annotations_val.json")
    if quick:
        train, val = train.subset(range(QUICK["train"])), val.subset(range(QUICK["val"]))
    if train_limit:
        train = train.subset(range(min(train_limit, len(train))))
    return train, val


def scores(metrics: dict) -> dict:
    return {
        "mean_iou": round(metrics["mean_iou"], 4),
        "person_iou": round(metrics["per_class"]["person"]["iou"], 4),
        "pixel_accuracy": round(metrics["pixel_accuracy"], 4),
    }


def run_graft(row: str, quick: bool, options: dict, train_limit: int | None) -> dict:
    import graft

    train, val = data(quick, train_limit)
    params = dict(task="segmentation", seed=0, progress=False)
    if row == "random-encoder":  # as many epochs as the default trains in its two phases
        from graft.tasks.segmentation.task import DEFAULTS

        params.update(model="scratch:efficientnet_lite0", strategy="full", backbone_lr_mult=1.0)
        epochs = (options.pop(k, DEFAULTS[k]) for k in ("head_epochs", "epochs"))
        params["epochs"] = sum(epochs)
    else:
        params["strategy"] = row
    if quick:
        params.update(epochs=QUICK["epochs"], head_epochs=QUICK["epochs"])
        params.update(image_size=QUICK["image_size"], batch_size=4)
    params.update(options)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        model = graft.fit(train, val, out=Path(folder) / "run", **params)
    seconds = time.perf_counter() - start
    config = model.config_.to_dict()
    settings = ("batch_size", "lr", "head_epochs", "epochs", "image_size", "architecture", "loss")
    return {
        "row": row,
        "seconds": round(seconds, 1),
        **scores(model.metrics_["val"]),
        "epochs_trained": len(model.history_),
        "kept": model.kept_phase_,
        "settings": {k: config[k] for k in settings},
        "history": [
            {k: r.get(k) for k in ("phase", "epoch", "val_score", "val_loss", "seconds")}
            for r in model.history_
        ],
    }


def plain_model():
    """smp's U-Net on ``tu-tf_efficientnet_lite0``, with graft's offline ImageNet weights
    loaded into its encoder (the weights the other rows start from)."""
    import segmentation_models_pytorch as smp

    from graft.backbones.efficientnet_lite import create_efficientnet_lite

    model = smp.create_model(
        "unet", encoder_name="tu-tf_efficientnet_lite0", encoder_weights=None, classes=1
    )
    weights = create_efficientnet_lite(0).state_dict()
    missing, _ = model.encoder.model.load_state_dict(weights, strict=False)
    if missing:
        raise SystemExit(f"the encoder's weights did not load: {missing[:5]}")
    return model


def resized_pairs(split, size: int, mean, std):
    """Images resized to ``size`` x ``size`` (bilinear) and normalised, masks resized alike
    (nearest), as SimpleOxfordPetDataset prepares them."""
    import numpy as np
    import torch
    from PIL import Image

    from graft.data.images import open_rgb

    images, masks = [], []
    for index, path in enumerate(split.images):
        image = open_rgb(path).resize((size, size), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        images.append(
            (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        )
        mask = Image.fromarray(split.load_mask(index)).resize(
            (size, size), Image.Resampling.NEAREST
        )
        masks.append(torch.from_numpy(np.asarray(mask, dtype=np.int64)))
    return torch.stack(images), torch.stack(masks)


def run_plain(quick: bool, options: dict, train_limit: int | None) -> dict:
    """smp's documented training example on the same data (see the module docstring)."""
    import segmentation_models_pytorch as smp
    import torch

    from graft.tasks.segmentation.metrics import segmentation_metrics

    torch.manual_seed(0)
    start = time.perf_counter()
    train, val = data(quick, train_limit)
    size = QUICK["image_size"] if quick else options.get("image_size", PLAIN["size"])
    epochs = QUICK["epochs"] if quick else options.get("epochs", PLAIN["epochs"])
    model = plain_model()
    cfg = model.encoder.model.pretrained_cfg
    mean, std = list(cfg["mean"]), list(cfg["std"])
    images, masks = resized_pairs(train, size, mean, std)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, masks),
        batch_size=PLAIN["batch_size"],
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=PLAIN["lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs * len(loader), eta_min=PLAIN["eta_min"]
    )
    loss_fn = smp.losses.DiceLoss(smp.losses.BINARY_MODE, from_logits=True)
    for _ in range(epochs):
        model.train()
        for batch, truth in loader:
            loss = loss_fn(model(batch), truth[:, None])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    predicted = predict_plain(model, val, size, mean, std)
    metrics = segmentation_metrics(
        predicted, (val.load_mask(i) for i in range(len(val))), val.classes, val.images
    )
    return {
        "row": "plain",
        "seconds": round(time.perf_counter() - start, 1),
        **scores(metrics),
        "epochs_trained": epochs,
        "settings": {**PLAIN, "size": size, "epochs": epochs},
    }


def predict_plain(model, split, size: int, mean, std) -> list:
    """Masks at each image's own size: the logits at ``size`` x ``size`` resized back."""
    import torch
    import torch.nn.functional as F

    images, _ = resized_pairs(split, size, mean, std)
    found = []
    with torch.inference_mode():
        for index, image in enumerate(images):
            logits = model(image[None])
            height, width = split.sizes[index]
            logits = F.interpolate(
                logits, size=(height, width), mode="bilinear", align_corners=False
            )
            found.append((logits[0, 0] > 0).to(torch.uint8).numpy())
    return found


def run_row(row: str, quick: bool, options: dict, train_limit: int | None) -> dict:
    if row == "plain":
        return run_plain(quick, options, train_limit)
    return run_graft(row, quick, dict(options), train_limit)


def table(results: list[dict]) -> str:
    plain = next((r for r in results if r["row"] == "plain"), None)
    lines = [
        "| row | mean IoU | person IoU | pixel accuracy | wall s | CPU s | time / plain "
        "| mIoU - plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        name = r.get("label") or r["row"]
        cpu = r.get("cpu_seconds")  # runs before 2026-12-07 did not record it
        ratio = f"{r['seconds'] / plain['seconds']:.2f}" if plain else "-"
        if plain and cpu and plain.get("cpu_seconds"):
            ratio += f" (CPU {cpu / plain['cpu_seconds']:.2f})"
        gain = f"{r['mean_iou'] - plain['mean_iou']:+.4f}" if plain else "-"
        lines.append(
            f"| {name} | {r['mean_iou']:.4f} | {r['person_iou']:.4f} | {r['pixel_accuracy']:.4f} "
            f"| {r['seconds']:.0f} | {'-' if cpu is None else f'{cpu:.0f}'} | {ratio} | {gain} |"
        )
    default = next((r for r in results if r["row"] == "fine-tune" and not r.get("label")), None)
    if default is not None:
        goals = [f"person IoU {default['person_iou']:.4f} (goal >= {PERSON_IOU_GOAL})"]
        met = default["person_iou"] >= PERSON_IOU_GOAL
        if plain is not None:
            met = met and default["mean_iou"] >= plain["mean_iou"]
            met = met and default["seconds"] <= plain["seconds"]
            goals.append("mean IoU and time against the plain loop's")
        lines += [
            "",
            "goals for graft's default ("
            + "; ".join(goals)
            + "): "
            + ("met" if met else "NOT met"),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ROWS), help="comma-separated rows")
    parser.add_argument("--quick", action="store_true", help="12/6 images, 64 px, 1 epoch")
    parser.add_argument("--options", default="{}", help="JSON options of the graft rows")
    parser.add_argument("--label", default=None, help="name the rows of this run in the table")
    parser.add_argument("--train-limit", type=int, default=None, help="the first N train images")
    parser.add_argument("--out", default="bench/out/segmentation.json")
    parser.add_argument("--append", action="store_true", help="add to the results in --out")
    parser.add_argument("--replay", default=None, help="print the table of a saved run")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)  # one row, in-process
    args = parser.parse_args()
    options = json.loads(args.options)
    if args.row:
        found = run_row(args.row, args.quick, options, args.train_limit)
        print("RESULT " + json.dumps(found), flush=True)
        return
    if args.replay:
        print(table(json.loads(Path(args.replay).read_text())))
        return
    out = Path(args.out)
    results = json.loads(out.read_text()) if args.append and out.is_file() else []
    for row in [r.strip() for r in args.only.split(",") if r.strip()]:
        command = [sys.executable, __file__, "--row", row, "--options", args.options]
        command += ["--quick"] if args.quick else []
        command += ["--train-limit", str(args.train_limit)] if args.train_limit else []
        before = children_cpu()
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if not found:
            print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"row {row} failed")
        result = json.loads(found[-1].removeprefix("RESULT "))
        cpu = round(children_cpu() - before, 1)
        results.append({**result, "label": args.label, "cpu_seconds": cpu})
        print(json.dumps(results[-1]), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
