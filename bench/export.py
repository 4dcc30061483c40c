"""CPU inference: PyTorch eager, the ONNX Runtime export and its int8 quantizations, and batch
prediction of many images to a file.

    .venv/bin/python bench/export.py --part engines [--batch-size 32] [--batches 6]
    .venv/bin/python bench/export.py --part batch [--images 20000]
    .venv/bin/python bench/export.py --part int8 [--models efficientnet_lite0,minilm]

``int8``: for each backbone graft ships (``efficientnet_lite0/1/2`` on the repository's flower
photos, ``minilm`` on 400 SST-2 sentences validated on 200), a feature-extract run quantized by
``graft export --quantize int8``'s own path (the ladder of recipes, the first within the
tolerance kept): the recipe kept, the recipes tried, float and int8 accuracy on the run's
validation data, and the int8 speed-up against the float ONNX model.

``engines``: for ``efficientnet_lite0`` (the repository's flower photos) and ``minilm``
(SST-2 sentences, validated on 500 sentences of SST-2's validation file), a run is fitted
(feature extraction, a few epochs), exported with ``graft export``'s code (parity checked) and
quantized to int8 with ``graft export --quantize``'s code (dynamic; and static, calibrated on
the run's training inputs). Each engine runs the same preprocessed inputs: throughput over
``--batches`` batches of ``--batch-size`` real inputs, the latency of one input at a time (p50
and p95 over ``--latency-runs`` inputs) after a warm-up, and the accuracy on the run's
validation data. Inputs are preprocessed beforehand, so the figures compare the engines, not
the decoding or the tokenizer.

``batch``: ``graft predict RUN FOLDER --out predictions.csv`` (the run's ONNX export, chosen
by ``--engine auto``) over ``--images`` links to the flower photos, in a child process whose
resident memory is sampled every half second (peak, and at a quarter and at the end of the
run); its throughput is compared with the same engine's in-process batch throughput measured
in the same run: ``predict_proba`` on 1,000 of the same files (decoding included), and the
engine alone on preprocessed batches.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import subsets
import torch

import graft
from graft.export.engine import ExportedEngine, batch_tensors
from graft.export.exporter import LogitsModule, export_model, parity_items
from graft.export.quantize import engine_score, quantize_export, quantize_model, validation_data
from graft.export.recipes import ladder

ROOT = Path(__file__).resolve().parents[1]
FLOWERS = ROOT / "examples" / "flowers"


def _image_run(scratch: Path, backbone: str = "efficientnet_lite0") -> Path:
    run = scratch / backbone
    graft.fit(
        FLOWERS, model=backbone, strategy="feature-extract", epochs=3, out=run, progress=False
    )
    return run


def _sst2(source: str, count: int, path: Path) -> Path:
    with open(subsets.DATASETS / "sst2" / source, newline="") as handle:
        rows = list(csv.DictReader(handle))[:count]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in rows)
    return path


def _text_run(scratch: Path, rows: int = 400, val_rows: int = 500) -> Path:
    train = _sst2("train.csv", rows, scratch / "sst2-train.csv")
    val = _sst2("validation.csv", val_rows, scratch / "sst2-val.csv")
    run = scratch / "minilm"
    graft.fit(train, val, strategy="feature-extract", epochs=3, out=run, progress=False)
    return run


def _time(run, inputs: list) -> list[float]:
    seconds = []
    for batch in inputs:
        start = time.perf_counter()
        run(batch)
        seconds.append(time.perf_counter() - start)
    return seconds


def engines_of(run: Path, scratch: Path, static: bool) -> tuple:
    """The run's model, its validation data and its engines: eager, ONNX float, int8."""
    model = graft.load(run, engine="torch")
    train, val = validation_data(model, run)
    folder = scratch / f"{run.name}-export"
    record = export_model(model, parity_items(model, run), folder, "onnx")
    names = record["inputs"]
    eager = LogitsModule(model.backbone_, model.head_, names).eval()

    @torch.inference_mode()
    def pytorch(batch):
        return eager(*batch_tensors(batch))

    engines = {"pytorch": pytorch, "onnx": ExportedEngine(folder / record["file"], "onnx", names)}
    for calibration in ("dynamic", "static") if static else ("dynamic",):
        target = folder / f"model.int8-{calibration}.onnx"
        recipe = ladder(calibration, len(train))[0]
        quantize_model(model, folder / record["file"], target, names, recipe, train.items)
        engines[f"onnx int8 {calibration}"] = ExportedEngine(target, "onnx", names)
    return model, val, record, engines


def measure(name: str, run: Path, args, scratch: Path, static: bool) -> dict:
    model, val, record, engines = engines_of(run, scratch, static)
    items = list(val.items)
    batches = list(model.input_batches(items[: args.batch_size * args.batches], args.batch_size))
    singles = list(model.input_batches(items[: args.latency_runs], 1))
    result = {"model": name, "parity": record["parity"]["max_abs_logit_difference"]}
    result["validation_inputs"] = len(val)
    for engine, run_batch in engines.items():
        _time(run_batch, batches[:2] + singles[:5])  # warm-up
        batch_seconds = _time(run_batch, batches)
        latencies = sorted(_time(run_batch, singles))
        rows = sum(len(batch_tensors(b)[0]) for b in batches)
        result[engine] = {
            "throughput_per_s": rows / sum(batch_seconds),
            "latency_p50_ms": 1000 * statistics.median(latencies),
            "latency_p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
            "accuracy": engine_score(model, run_batch, val),
        }
        print(json.dumps({name: {engine: result[engine]}}), flush=True)
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| model | engine | inputs/s (batch) | p50 ms (1 input) | p95 ms | vs eager | vs ONNX "
        "float | val accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        base, onnx = (result[e]["throughput_per_s"] for e in ("pytorch", "onnx"))
        for engine, row in result.items():
            if not isinstance(row, dict):
                continue
            lines.append(
                f"| {result['model']} | {engine} | {row['throughput_per_s']:.1f} | "
                f"{row['latency_p50_ms']:.1f} | {row['latency_p95_ms']:.1f} | "
                f"{row['throughput_per_s'] / base:.2f}x | {row['throughput_per_s'] / onnx:.2f}x | "
                f"{row['accuracy']:.2f} |"
            )
    return "\n".join(lines)


def engines_part(args, scratch: Path) -> list[dict]:
    results = [
        measure("efficientnet_lite0", _image_run(scratch), args, scratch, static=True),
        measure("minilm", _text_run(scratch), args, scratch, static=True),
    ]
    print(table(results))
    return results


# int8 by graft export's ladder ------------------------------------------------------------------


def int8_row(name: str, run: Path, scratch: Path, tolerance: float) -> dict:
    """``graft export RUN --quantize int8``'s own path (auto calibration) on one run."""
    from graft.export.quantize import check_quantization

    model = graft.load(run, engine="torch")
    calibration = check_quantization(model, "int8", "auto", "onnx", tolerance)
    data = validation_data(model, run)
    start = time.perf_counter()
    record = export_model(
        model,
        parity_items(model, run),
        scratch / f"{name}-int8",
        "onnx",
        finish=lambda folder, rec: quantize_export(
            model, folder, rec, data, calibration, tolerance
        ),
    )
    row = {"model": name, "export_seconds": time.perf_counter() - start, **record["quantization"]}
    print(json.dumps(row), flush=True)
    return row


def int8_table(rows: list[dict]) -> str:
    lines = [
        "| backbone | recipe kept | recipes tried (points lost) | val inputs | float acc | "
        "int8 acc | change | float ms/input | int8 ms/input | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tried = ", ".join(f"{t['recipe']} ({t['points_lost']:+.2f})" for t in r["tried"])
        s = r["speed"]
        lines.append(
            f"| {r['model']} | {r['recipe']} | {tried} | {r['validation_inputs']} | "
            f"{r['float_score']:.2f} | {r['int8_score']:.2f} | {-r['points_lost']:+.2f} | "
            f"{s['float_ms_per_input']:.1f} | {s['int8_ms_per_input']:.1f} | {s['speedup']:.2f}x |"
        )
    return "\n".join(lines)


def int8_part(args, scratch: Path) -> list[dict]:
    rows = []
    for name in args.models.split(","):
        run = _text_run(scratch, 400, 200) if name == "minilm" else _image_run(scratch, name)
        rows.append(int8_row(name, run, scratch, args.tolerance))
    print(int8_table(rows))
    return rows


# Batch prediction ------------------------------------------------------------------------------


def _linked_photos(folder: Path, count: int) -> list[Path]:
    """``count`` links to the flower photos (each photo many times), in one folder."""
    photos = sorted(FLOWERS.rglob("*.jpg"))
    folder.mkdir()
    links = []
    for index in range(count):
        link = folder / f"{index:06d}.jpg"
        link.symlink_to(photos[index % len(photos)])
        links.append(link)
    return links


def _rss_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def _watched(command: list[str], out: Path) -> dict:
    """Run ``command``, sampling its resident memory every half second until it ends."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples, peak = [], 0.0
    while child.poll() is None:
        try:
            samples.append((time.perf_counter() - start, _rss_mib(child.pid, "VmRSS")))
            peak = _rss_mib(child.pid, "VmHWM")
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.5)
    output = child.communicate()[0]
    if child.returncode != 0:
        raise RuntimeError(output[-2000:])
    wall = time.perf_counter() - start
    quarter = [rss for t, rss in samples if t >= wall / 4][:1] or [0.0]
    found = re.search(r"in ([\d.]+)s\s+\(([\d.]+)\s+inputs/s\)", output)
    if found is None:
        raise RuntimeError(output[-2000:])
    return {
        "wall_seconds": wall,
        "predict_seconds": float(found.group(1)),
        "throughput_per_s": float(found.group(2)),
        "peak_rss_mib": peak,
        "rss_at_a_quarter_mib": quarter[0],
        "rss_at_the_end_mib": samples[-1][1] if samples else 0.0,
        "rows": sum(1 for _ in open(out)) - 1,
        "output": " ".join(output.split())[-200:],
    }


def batch_part(args, scratch: Path) -> dict:
    run = _image_run(scratch)
    model = graft.load(run, engine="torch")
    export_model(model, parity_items(model, run), run / "export", "onnx")
    model = graft.load(run)  # auto: the export
    links = [str(p) for p in _linked_photos(scratch / "photos", args.images)]
    sample = links[: args.engine_sample]
    model.predict_proba(sample[:32])  # warm-up
    start = time.perf_counter()
    model.predict_proba(sample)
    in_process = len(sample) / (time.perf_counter() - start)
    batches = list(model.input_batches(sample[:256], model.config.batch_size * 2))
    engine_alone = len(sample[:256]) / sum(_time(model.engine_, batches))
    out = scratch / "predictions.csv"
    graft_cli = str(Path(sys.executable).with_name("graft"))
    command = [graft_cli, "predict", str(run), str(scratch / "photos"), "--out", str(out)]
    streamed = _watched(command, out)
    result = {
        "images": args.images,
        "engine": model.engine_name_,
        "in_process_throughput_per_s": in_process,
        "engine_alone_throughput_per_s": engine_alone,
        "streamed": streamed,
        "share_of_in_process": streamed["throughput_per_s"] / in_process,
        "share_of_engine_alone": streamed["throughput_per_s"] / engine_alone,
    }
    print(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["engines", "batch", "int8"], default="engines")
    parser.add_argument(
        "--models", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2,minilm"
    )
    parser.add_argument("--tolerance", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--engine-sample", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        parts = {"engines": engines_part, "batch": batch_part, "int8": int8_part}
        part = parts[args.part]
        results = part(args, scratch)
    out = args.out or Path(f"bench/out/export-{args.part}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    threads = os.environ.get("OMP_NUM_THREADS")
    print(f"torch threads: {torch.get_num_threads()}, OMP_NUM_THREADS={threads}")


if __name__ == "__main__":
    main()
