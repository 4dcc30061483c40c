"""Detection on Penn-Fudan: graft's strategies against the torchvision tutorial's plain loop.

    .venv/bin/python bench/detection.py                          # everything (hours on 2 CPUs)
    .venv/bin/python bench/detection.py --only fine-tune,plain   # some rows
    .venv/bin/python bench/detection.py --quick                  # a check that every row runs
    .venv/bin/python bench/detection.py --replay bench/out/detection.json
    # sized for one CPU thread (bench/RESULTS.md): shorter side 256, 2 + 4 epochs, plain 6
    .venv/bin/python bench/detection.py --only fine-tune,plain --image-size 256 \
        --head-epochs 2 --epochs 4 --plain-epochs 6

Data: ``../shared/datasets/pennfudan`` (``annotations_train.json``: 120 images, 292 people;
``annotations_val.json``: 50 images, 131 people), the seed-0 split shipped with the data; or,
with ``--data fashion-scenes``, a second case of many small objects and ten classes: 240
training and 80 validation scenes of 192 x 192 px, each with 2 to 5 Fashion-MNIST garments
(Debian's ``dataset-fashion-mnist``, the training images for training scenes and the test
images for validation scenes) scaled to 24-72 px, tinted and placed without overlap on a
textured background, boxed tightly (:func:`fashion_scenes`, seeded, written once to
``bench/out/fashion_scenes``).
Backbone: EfficientNet-Lite0 with its offline ImageNet weights. Every row runs in a process of
its own (seed 0) and is scored the same way, by
:func:`graft.tasks.detection.metrics.detection_metrics`
(torchmetrics' COCO mAP on pycocotools) on the 50 validation images:

- ``feature-extract``, ``fine-tune`` (graft's default), ``full``, ``partial``: ``graft.fit`` with
  that strategy and graft's detection defaults (:mod:`graft.tasks.detection.task`);
- ``plain``: the same detector (graft's feature pyramid and Faster R-CNN heads on the same
  backbone, the same image sizes) trained by the loop of torchvision's "Object Detection
  Finetuning" tutorial: SGD lr 0.005, momentum 0.9, weight decay 5e-4, a linear warm-up over
  the first epoch, StepLR (step 3, gamma 0.1), 10 epochs (``--plain-epochs``), batches of 2,
  horizontal flips, the model resizing its inputs, BatchNorm frozen (timm's
  ``freeze_batch_norm_2d``, which keeps the activations fused into EfficientNet's BatchNorm) and
  the stem and first two stages frozen as torchvision freezes a pretrained backbone's lower
  layers (``trainable_backbone_layers=3``); evaluated after every epoch as the tutorial does,
  the last epoch kept;
- ``instance-segmentation``: ``graft.fit(..., task="instance-segmentation")`` (Mask R-CNN), box
  and mask mAP;
- ``rank`` (only when named: ``--only rank``): ``graft rank``'s object-feature scores of
  EfficientNet-Lite0, 1, 2 and random-weights Lite0, then each fine-tuned with graft's
  defaults, and the Spearman correlation of each score with the fine-tuned mAP.

Wall time is the whole fit (reading the data, training, the per-epoch validation, the final
evaluation); CPU time is the row process's and its loader workers' (on a machine shared with
other jobs the fairer figure). The table gives mAP@[.5:.95], mAP@.5, mask mAP, seconds, and
each graft row's CPU time and mAP against the plain loop's.
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
ROWS = ("feature-extract", "fine-tune", "full", "partial", "plain", "instance-segmentation")
#: Rows run only when named with --only: the ranking of candidate backbones (four fits).
EXTRA_ROWS = ("rank",)
#: Goals of the issue for graft's default (box metrics).
GOALS = {"map_50": 0.80, "map": 0.45}
QUICK = {"train": 16, "val": 8, "epochs": 1}
FASHION = Path("/usr/share/datasets/fashion-mnist")
SCENES = Path(__file__).resolve().parent / "out" / "fashion_scenes"
GARMENTS = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)


def fashion_scenes(folder: Path, train: int = 240, val: int = 80, side: int = 192) -> Path:
    """Write the Fashion-MNIST scenes (see the module docstring) as COCO files under
    ``folder`` once; the same scenes on every machine (numpy seed 0)."""
    import gzip

    import numpy as np
    from PIL import Image

    if (folder / "annotations_val.json").is_file():
        return folder

    def idx(name: str) -> np.ndarray:
        raw = gzip.open(FASHION / name).read()
        if "labels" in name:
            return np.frombuffer(raw, np.uint8, offset=8)
        return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)

    rng = np.random.default_rng(0)
    sources = {
        "train": (idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz"), train),
        "val": (idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz"), val),
    }
    (folder / "images").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(GARMENTS)]
    for split, (images, labels, count) in sources.items():
        coco = {"images": [], "annotations": [], "categories": categories}
        for n in range(count):
            ramp = np.linspace(rng.uniform(40, 120), rng.uniform(40, 120), side)[None, :, None]
            canvas = ramp + rng.normal(0, 18, (side, side, 3))
            placed: list[tuple[int, int, int, int]] = []
            for _ in range(int(rng.integers(2, 6))):
                pick = int(rng.integers(len(images)))
                size = int(rng.integers(24, 73))
                garment = np.asarray(
                    Image.fromarray(images[pick]).resize((size, size), Image.BILINEAR), float
                )
                for _try in range(20):
                    x, y = (int(v) for v in rng.integers(0, side - size, 2))
                    if all(
                        x + size <= a or a + c <= x or y + size <= b or b + d <= y
                        for a, b, c, d in placed
                    ):
                        break
                else:
                    continue
                alpha = (garment / 255.0)[:, :, None]
                tint = rng.uniform(0.5, 1.0, 3) * 255
                patch = canvas[y : y + size, x : x + size]
                canvas[y : y + size, x : x + size] = patch * (1 - alpha) + tint * alpha
                rows, cols = np.nonzero(garment > 40)
                box = [
                    x + int(cols.min()),
                    y + int(rows.min()),
                    int(cols.max() - cols.min() + 1),
                    int(rows.max() - rows.min() + 1),
                ]
                placed.append((x, y, size, size))
                coco["annotations"].append(
                    {
                        "id": len(coco["annotations"]) + 1,
                        "image_id": n + 1,
                        "category_id": int(labels[pick]) + 1,
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": 0,
                    }
                )
            name = f"images/{split}_{n:04d}.png"
            Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(folder / name)
            coco["images"].append({"id": n + 1, "file_name": name, "width": side, "height": side})
        (folder / f"annotations_{split}.json").write_text(json.dumps(coco))
    return folder


def data(quick: bool, which: str = "pennfudan"):
    from graft.tasks.detection import read_detection

    folder = PENNFUDAN if which == "pennfudan" else fashion_scenes(SCENES)
    train = read_detection(folder / "annotations_train.json")
    val = read_detection(folder / "annotations_val.json")
    if quick:
        train, val = train.subset(range(QUICK["train"])), val.subset(range(QUICK["val"]))
    return train, val


def run_graft(row: str, quick: bool, options: dict) -> dict:
    import graft

    train, val = data(quick, options.get("data", "pennfudan"))
    task = "instance-segmentation" if row == "instance-segmentation" else "detection"
    strategy = "fine-tune" if row == "instance-segmentation" else row
    options = {k: v for k, v in options.items() if k not in ("plain_epochs", "data")}
    if row != "partial":
        options.pop("unfreeze", None)
    params = dict(task=task, strategy=strategy, seed=0, progress=False, **options)
    if quick:
        params.update(epochs=QUICK["epochs"], head_epochs=QUICK["epochs"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        model = graft.fit(train, val, out=Path(folder) / "run", **params)
    seconds = time.perf_counter() - start
    metrics = model.metrics_["val"]
    return {
        "row": row,
        "seconds": round(seconds, 1),
        **{k: metrics.get(k) for k in ("map", "map_50", "map_75", "mask_map", "mask_map_50")},
        "epochs": len(model.history_),
        "history": [
            {k: r.get(k) for k in ("phase", "epoch", "val_score", "seconds")}
            for r in model.history_
        ],
        "time_limit": (model.summary_.get("time_limit") or {}).get("cut"),
        "settings": {k: model.config_.to_dict()[k] for k in ("batch_size", "lr", "epochs")}
        | {
            "head_epochs": model.config_.head_epochs,
            "image_size": model.fitted_task_.sizes.min_size,
        },
    }


def run_plain(quick: bool, options: dict) -> dict:
    """The tutorial's loop on the same detector (see the module docstring)."""
    import torch
    from timm.layers import freeze_batch_norm_2d
    from torchvision.transforms import v2

    from graft.tasks.detection.answers import compact
    from graft.tasks.detection.batches import DetectionDataset, collate_detection
    from graft.tasks.detection.metrics import detection_metrics
    from graft.tasks.detection.task import DetectionTask, Sizes, detection_backbone

    torch.manual_seed(0)
    start = time.perf_counter()
    train, val = data(quick, options.get("data", "pennfudan"))
    size = options.get("image_size") or 512
    task = DetectionTask(train.classes, "fasterrcnn", Sizes.around(size))
    backbone = detection_backbone("efficientnet_lite0")
    # BatchNorm frozen as torchvision freezes it, keeping timm's fused activations (BatchNormAct2d)
    backbone.model = freeze_batch_norm_2d(backbone.model)
    for group in backbone.parameter_groups()[:3]:  # torchvision's trainable_layers=3 of 5
        for param in group:
            param.requires_grad_(False)
    head = task.new_head(backbone)
    head.detector.transform._skip_resize = False  # the tutorial's model resizes its inputs
    model = Joined(backbone, head)
    flip = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.ToDtype(torch.float32, scale=True)])
    loader = torch.utils.data.DataLoader(
        DetectionDataset(train.images, train.targets, flip, train=True),
        batch_size=2,
        shuffle=True,
        collate_fn=collate_detection,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9, weight_decay=0.0005)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    epochs = QUICK["epochs"] if quick else options.get("plain_epochs", 10)
    history = []
    for epoch in range(epochs):
        train_one_epoch(model, optimizer, loader, epoch)
        scheduler.step()
        model.eval()
        outputs = predict(model, val, compact)
        metrics = detection_metrics(outputs, val)
        history.append({"epoch": epoch + 1, "map": metrics["map"], "map_50": metrics["map_50"]})
    seconds = time.perf_counter() - start
    return {
        "row": "plain",
        "seconds": round(seconds, 1),
        **{k: metrics.get(k) for k in ("map", "map_50", "map_75")},
        "epochs": epochs,
        "history": history,
    }


class Joined:
    """Backbone and head as the one model the tutorial's loop trains."""

    def __init__(self, backbone, head):
        self.backbone, self.head = backbone, head

    def parameters(self):
        return [*self.backbone.parameters(), *self.head.parameters()]

    def train(self):
        self.head.train()
        self.backbone.train()

    def eval(self):
        self.head.eval()
        self.backbone.eval()

    def __call__(self, images, targets=None):
        self.head.attach(self.backbone)
        return self.head(images, targets)


def train_one_epoch(model, optimizer, loader, epoch: int) -> None:
    """torchvision's references/detection/engine.py train_one_epoch, without its logging."""
    import torch

    model.train()
    warmup = None
    if epoch == 0:
        iters = min(1000, len(loader) - 1)
        warmup = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1.0 / 1000, total_iters=max(1, iters)
        )
    for images, targets in loader:
        losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if warmup is not None:
            warmup.step()


def predict(model, data, compact) -> list[dict]:
    import torch

    from graft.tasks.detection.batches import DetectionDataset, collate_detection

    loader = torch.utils.data.DataLoader(
        DetectionDataset(data.images), batch_size=1, collate_fn=collate_detection
    )
    outputs = []
    with torch.inference_mode():
        for images, _ in loader:
            outputs += [compact(found) for found in model(images)]
    return outputs


def run_rank(quick: bool, options: dict) -> dict:
    """``graft rank``'s object-feature scores of the candidates, and each candidate's val mAP
    once fine-tuned with graft's defaults: does the order of the scores hold?"""
    import graft
    from graft.tasks.detection.ranking import rank_detection
    from graft.tasks.detection.task import MIN_SIZE, Sizes, detection_backbone

    train, val = data(quick, options.get("data", "pennfudan"))
    sizes = Sizes.around(options.get("image_size") or MIN_SIZE)
    start = time.perf_counter()
    ranking = rank_detection(
        train, val, list(CANDIDATES), detection_backbone, sizes=(sizes.min_size, sizes.max_size)
    )
    seconds = time.perf_counter() - start
    rows = []
    for score in ranking.scores:
        fit = {k: v for k, v in options.items() if k not in ("plain_epochs", "data", "unfreeze")}
        params = dict(task="detection", model=score.model, seed=0, progress=False, **fit)
        if quick:
            params.update(epochs=QUICK["epochs"], head_epochs=QUICK["epochs"])
        tuned = graft.fit(train, val, **params).metrics_["val"]
        rows.append(
            {
                "model": score.model,
                "logme": score.logme,
                "h_score": score.h_score,
                "knn_accuracy": score.knn_accuracy,
                "map": tuned["map"],
                "map_50": tuned["map_50"],
            }
        )
    from scipy.stats import spearmanr

    agreement = {
        by: float(spearmanr([r[by] for r in rows], [r["map"] for r in rows]).statistic)
        for by in ("logme", "h_score", "knn_accuracy")
    }
    return {"row": "rank", "seconds": round(seconds, 1), "candidates": rows, "spearman": agreement}


#: The candidates of ``--only rank``: the offline backbones, and a random-weights floor.
CANDIDATES = (
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "scratch:efficientnet_lite0",
)


def run_row(row: str, quick: bool, options: dict) -> dict:
    if row == "plain":
        return run_plain(quick, options)
    if row == "rank":
        return run_rank(quick, options)
    return run_graft(row, quick, options)


def rank_table(result: dict) -> str:
    lines = [
        "| candidate | LogME | H-score | k-NN | val mAP fine-tuned | mAP@.5 |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["candidates"]:
        lines.append(
            f"| {r['model']} | {r['logme']:.3f} | {r['h_score']:.2f} | {r['knn_accuracy']:.3f} "
            f"| {r['map']:.3f} | {r['map_50']:.3f} |"
        )
    agreement = ", ".join(f"{k} {v:+.2f}" for k, v in result["spearman"].items())
    return "\n".join(lines) + f"\n\nSpearman correlation with the fine-tuned mAP: {agreement}"


def table(results: list[dict]) -> str:
    ranks = [r for r in results if r["row"] == "rank"]
    results = [r for r in results if r["row"] != "rank"]
    if not results:
        return "\n\n".join(rank_table(r) for r in ranks)
    plain = next((r for r in results if r["row"] == "plain"), None)
    lines = [
        "| row | mAP | mAP@.5 | mAP@.75 | mask mAP | wall s | CPU s | CPU / plain | mAP - plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = r.get("cpu_seconds")
        ratio = f"{cpu / plain['cpu_seconds']:.2f}" if plain and plain.get("cpu_seconds") else "-"
        gain = f"{r['map'] - plain['map']:+.3f}" if plain and r["map"] is not None else "-"
        mask = "-" if r.get("mask_map") is None else f"{r['mask_map']:.3f}"
        lines.append(
            f"| {r['row']} | {r['map']:.3f} | {r['map_50']:.3f} | {r['map_75']:.3f} | {mask} "
            f"| {r['seconds']:.0f} | {'-' if cpu is None else f'{cpu:.0f}'} | {ratio} | {gain} |"
        )
    default = next((r for r in results if r["row"] == "fine-tune"), None)
    if default is not None:
        met = all(default[k] >= v for k, v in GOALS.items())
        lines.append("")
        lines.append(
            f"goals for graft's default (box mAP@.5 >= {GOALS['map_50']}, mAP >= {GOALS['map']}): "
            + ("met" if met else "NOT met")
        )
    return "\n".join(lines) + "".join("\n\n" + rank_table(r) for r in ranks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ROWS), help="comma-separated rows")
    parser.add_argument("--quick", action="store_true", help="16/8 images, 1 epoch per phase")
    parser.add_argument("--image-size", type=int, default=None, help="shorter side (default 512)")
    parser.add_argument("--head-epochs", type=int, default=None, help="graft rows' head epochs")
    parser.add_argument("--epochs", type=int, default=None, help="graft rows' backbone epochs")
    parser.add_argument("--plain-epochs", type=int, default=10, help="the plain loop's epochs")
    parser.add_argument("--unfreeze", type=int, default=None, help="the partial row's groups")
    parser.add_argument("--time-limit", default=None, help="graft rows' --time-limit (90s, 10m)")
    parser.add_argument("--data", choices=("pennfudan", "fashion-scenes"), default="pennfudan")
    parser.add_argument("--out", default="bench/out/detection.json")
    parser.add_argument("--replay", default=None, help="print the table of a saved run")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)  # one row, in-process
    args = parser.parse_args()
    sizes = {
        "image_size": args.image_size,
        "head_epochs": args.head_epochs,
        "epochs": args.epochs,
        "unfreeze": args.unfreeze,
        "time_limit": args.time_limit,
        "data": args.data,
    }
    options = {k: v for k, v in sizes.items() if v is not None}
    if args.row:
        row = run_row(args.row, args.quick, options | {"plain_epochs": args.plain_epochs})
        print("RESULT " + json.dumps(row), flush=True)
        return
    if args.replay:
        print(table(json.loads(Path(args.replay).read_text())))
        return
    passed = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    passed += [f"--plain-epochs={args.plain_epochs}", *(["--quick"] if args.quick else [])]
    results = []
    for row in [r.strip() for r in args.only.split(",") if r.strip()]:
        command = [sys.executable, __file__, "--row", row, *passed]
        before = children_cpu()
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if not found:
            print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"row {row} failed")
        result = json.loads(found[-1].removeprefix("RESULT "))
        results.append(result | {"cpu_seconds": round(children_cpu() - before, 1)})
        print(json.dumps(results[-1]), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
