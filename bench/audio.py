"""Spoken digits (FSDD): graft's audio transfer against the same network from random weights
and a plain PyTorch loop of the usual spectrogram-CNN tutorial.

    .venv/bin/python bench/audio.py                          # all 2,700 training clips
    .venv/bin/python bench/audio.py --per-class 100          # reduced: 100 training clips/digit
    .venv/bin/python bench/audio.py --contenders graft,plain --seed 1
    .venv/bin/python bench/audio.py --replay bench/out/audio.json

Data: ``../shared/datasets/fsdd`` (3,000 recordings, 8 kHz mono, six speakers) with its
official split: recording index 0-4 of each speaker and digit is the test set (300 clips),
5-49 the training set (2,700; ``--per-class N`` draws N per digit with the seed). No contender
sees the test clips before its final evaluation; graft holds 20% of the training clips out to
choose its epochs and phase, as by default.

Contenders (each runs in a fresh process, so that its time and peak memory are its own; the
time is the process's wall time, imports, decoding and model loading included; graft starts
with an empty feature cache):

- ``graft``: ``graft.fit(train)`` with graft's defaults for audio (``audio:efficientnet_lite0``:
  log-mel spectrograms through the offline ImageNet EfficientNet-Lite0; fine-tune: 30 head
  epochs on cached features, then the whole network with SpecAugment at the head's rate,
  its BatchNorm statistics learned; the spectrogram image at its own size, 64 bands by 71
  frames for FSDD's 0.7 s clips; the whole network trains for up to 15 epochs, early stopping
  after two without a better validation accuracy); ``--image-size N`` resizes the
  spectrogram images of every graft contender to N x N (the earlier runs: 64);
- ``graft-fe``: the same, ``strategy="feature-extract"`` (a head on frozen ImageNet features);
- ``graft-6``: ``graft`` with at most 6 epochs of the whole network (``--epochs 6``);
- ``scratch``: ``scratch:audio:efficientnet_lite0``, the same network from random weights,
  trained whole (``strategy="full"``, every layer at the head's rate, BatchNorm statistics
  learned, as ``--baseline scratch`` trains it) for :data:`SCRATCH_EPOCHS` epochs: what
  ImageNet is worth on spectrograms;
- ``graft-full``: the ImageNet weights trained exactly as ``scratch`` is (``full``, every layer
  at the head's rate, BatchNorm statistics learned, :data:`SCRATCH_EPOCHS` epochs): the same
  recipe from the two starts;
- ``plain``: the tutorial recipe in plain PyTorch: clips padded or cut to 1 s at their own
  8 kHz, 64-band log-mel spectrograms computed once (torchaudio), a 4-block CNN (convolution,
  BatchNorm, ReLU, max-pooling; 16-32-64-128 channels; global average pooling, dropout,
  linear), Adam at 1e-3, batch 32, :data:`PLAIN_EPOCHS` epochs, the last one kept; the
  spectrograms standardised by the training clips' mean and standard deviation.

The table gives test accuracy, macro-F1, wall seconds, peak resident memory and the ratios to
``graft`` (time: contender / graft; accuracy: contender - graft).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from children import children_cpu

FSDD = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "fsdd"
OUT = Path(__file__).resolve().parent / "out" / "audio.json"
CONTENDERS = ("graft", "plain", "graft-fe", "scratch", "graft-full", "graft-6")
#: ``--image-size``: the side graft's contenders resize spectrograms to (None: graft's
#: default, the spectrogram's own size).
IMAGE_SIZE: int | None = None
#: The graft row's --time-limit (None: none).
TIME_LIMIT: str | None = None
SCRATCH_EPOCHS = 15
PLAIN_EPOCHS = 15


def official_split(per_class: int | None, seed: int):
    """FSDD's training clips (``per_class`` of each digit, or all) and its 300 test clips, as
    :class:`graft.data.LabelledData` (every file decodes: nothing is skipped)."""
    from graft.data import LabelledData

    items, labels, test_items, test_labels = [], [], [], []
    for digit in range(10):
        for file in sorted((FSDD / str(digit)).glob("*.wav")):
            index = int(file.stem.split("_")[2])
            (test_items if index < 5 else items).append(str(file.resolve()))
            (test_labels if index < 5 else labels).append(digit)
    classes = [str(d) for d in range(10)]
    train = LabelledData(items, np.asarray(labels), classes, "audio", f"{FSDD} (index 5-49)")
    if per_class is not None:
        rng = np.random.default_rng(seed)
        chosen = []
        for digit in range(10):
            members = np.flatnonzero(train.labels == digit)
            chosen.extend(rng.permutation(members)[:per_class])
        train = train.subset(sorted(chosen))
    test = LabelledData(
        test_items, np.asarray(test_labels), classes, "audio", f"{FSDD} (index 0-4)"
    )
    return train, test


def scores(predicted: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import f1_score

    return {
        "accuracy": float((predicted == labels).mean()),
        "macro_f1": float(f1_score(labels, predicted, average="macro")),
    }


# --- graft ------------------------------------------------------------------------------------


def graft_run(name: str, per_class: int | None, seed: int) -> dict:
    import graft

    train, test = official_split(per_class, seed)
    settings = {
        "graft": dict(image_size=IMAGE_SIZE, time_limit=TIME_LIMIT),
        "graft-fe": dict(image_size=IMAGE_SIZE, strategy="feature-extract"),
        "graft-6": dict(image_size=IMAGE_SIZE, epochs=6),
        "scratch": dict(
            model="scratch:audio:efficientnet_lite0",
            image_size=IMAGE_SIZE,
            strategy="full",
            epochs=SCRATCH_EPOCHS,
            backbone_lr_mult=1.0,
        ),
        "graft-full": dict(
            image_size=IMAGE_SIZE, strategy="full", epochs=SCRATCH_EPOCHS, backbone_lr_mult=1.0
        ),
    }[name]
    settings = {k: v for k, v in settings.items() if v is not None}
    with tempfile.TemporaryDirectory(prefix="graft-audio-bench-") as cache:
        model = graft.fit(train, seed=seed, progress=False, cache_dir=cache, **settings)
        predicted = np.asarray([int(label) for label in model.predict(test.items)])
    shown = ", ".join(f"{k}={v}" for k, v in settings.items())
    cut = (model.summary_.get("time_limit") or {}).get("cut")
    return {**scores(predicted, test.labels), "settings": shown, "kept": model.kept_phase_} | (
        {"time_limit_cut": cut} if cut is not None else {}
    )


# --- the plain PyTorch loop -------------------------------------------------------------------


def plain_loop(per_class: int | None, seed: int) -> dict:
    """The spectrogram-CNN tutorial (see the module docstring)."""
    import torch
    import torchaudio
    from torch import nn

    from graft.data.audio import decode_audio, fit_length

    torch.manual_seed(seed)
    train, test = official_split(per_class, seed)
    mel = torchaudio.transforms.MelSpectrogram(8000, n_fft=256, hop_length=80, n_mels=64)
    to_db = torchaudio.transforms.AmplitudeToDB(top_db=80)

    def features(items: list[str]) -> torch.Tensor:
        waves = torch.stack([fit_length(decode_audio(f, 8000), 8000, False) for f in items])
        with torch.no_grad():
            return to_db(mel(waves)).unsqueeze(1)  # [n, 1, 64, 101]

    def block(inputs: int, outputs: int) -> list[nn.Module]:
        return [
            nn.Conv2d(inputs, outputs, 3, padding=1),
            nn.BatchNorm2d(outputs),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]

    network = nn.Sequential(
        *block(1, 16),
        *block(16, 32),
        *block(32, 64),
        *block(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(128, 10),
    )
    x, y = features(train.items), torch.as_tensor(train.labels)
    mean, std = x.mean(), x.std()
    x = (x - mean) / std
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True
    )
    for _ in range(PLAIN_EPOCHS):
        network.train()
        for inputs, targets in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(network(inputs), targets).backward()
            optimizer.step()
    network.eval()
    with torch.no_grad():
        predicted = network((features(test.items) - mean) / std).argmax(1).numpy()
    settings = f"4-block CNN on log-mel, Adam 1e-3, batch 32, {PLAIN_EPOCHS} epochs"
    return {**scores(predicted, test.labels), "settings": settings}


# --- running and reporting --------------------------------------------------------------------


def child(name: str, per_class: int | None, seed: int) -> None:
    """Run one contender in this process and print its JSON line."""
    result = plain_loop(per_class, seed) if name == "plain" else graft_run(name, per_class, seed)
    result.update(
        contender=name,
        seed=seed,
        per_class=per_class,
        peak_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    )
    print("RESULT " + json.dumps(result), flush=True)


def run(contenders: list[str], per_class: int | None, seed: int, out: Path) -> list[dict]:
    """Each contender in a fresh process, timed from its start to its exit; the results so far
    written to ``out`` after each."""
    results = []
    for name in contenders:
        command = [sys.executable, __file__, "--child", name, "--seed", str(seed)]
        if per_class is not None:
            command += ["--per-class", str(per_class)]
        if IMAGE_SIZE is not None:
            command += ["--image-size", str(IMAGE_SIZE)]
        if TIME_LIMIT is not None:
            command += ["--time-limit", TIME_LIMIT]
        started, cpu = time.perf_counter(), children_cpu()
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds, cpu = time.perf_counter() - started, children_cpu() - cpu
        lines = [line for line in finished.stdout.splitlines() if line.startswith("RESULT ")]
        if finished.returncode != 0 or not lines:  # said, and the others still run
            print(finished.stderr[-3000:], file=sys.stderr)
            print(f"{name} failed (exit status {finished.returncode})", file=sys.stderr)
            continue
        result = json.loads(lines[-1].removeprefix("RESULT "))
        results.append({**result, "seconds": seconds, "cpu_seconds": round(cpu, 1)})
        print(f"{name}: {results[-1]}", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def table(results: list[dict]) -> str:
    reference = next((r for r in results if r["contender"] == "graft"), results[0])
    rows = [
        "| contender | test accuracy | macro-F1 | wall s | CPU s | peak MB | time / graft "
        "| accuracy - graft | settings |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = r.get("cpu_seconds")
        ratio = f"{r['seconds'] / reference['seconds']:.2f}x"
        if cpu and reference.get("cpu_seconds"):
            ratio += f" (CPU {cpu / reference['cpu_seconds']:.2f}x)"
        rows.append(
            f"| {r['contender']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
            f"{r['seconds']:.0f} | {'-' if cpu is None else f'{cpu:.0f}'} | {r['peak_mb']} | "
            f"{ratio} "
            f"| {r['accuracy'] - reference['accuracy']:+.4f} | {r['settings']} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--per-class", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=CONTENDERS)
    parser.add_argument("--replay", type=Path)
    parser.add_argument("--image-size", type=int, help="resize graft's spectrograms to N x N")
    parser.add_argument("--time-limit", help="the graft row's --time-limit (90s, 10m)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    global IMAGE_SIZE, TIME_LIMIT
    IMAGE_SIZE, TIME_LIMIT = args.image_size, args.time_limit
    if args.child:
        child(args.child, args.per_class, args.seed)
        return
    if args.replay:
        print(table(json.loads(args.replay.read_text())))
        return
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CONTENDERS))
    if unknown:
        raise SystemExit(f"unknown contender(s) {', '.join(unknown)}: {', '.join(CONTENDERS)}")
    results = run(names, args.per_class, args.seed, args.out)
    if not results:
        raise SystemExit("no contender finished")
    print(table(results))


if __name__ == "__main__":
    main()
