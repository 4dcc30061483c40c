"""CPU inference: PyTorch eager against the ONNX Runtime export, for an image and a text model.

    .venv/bin/python bench/export.py [--batch-size 32] [--batches 10] [--latency-runs 50]

For ``efficientnet_lite0`` (on the repository's flower photos) and ``minilm`` (on SST-2
sentences), a model is fitted (feature extraction, a few epochs), exported with ``graft
export``'s code (which checks parity first), and then both engines run the same preprocessed
inputs: throughput over ``--batches`` batches of ``--batch-size`` real inputs, and the latency
of one input at a time (p50 and p95 over ``--latency-runs`` inputs), after a warm-up. Inputs
are preprocessed beforehand, so the figures compare the engines, not the image decoding or
the tokenizer. Both engines use every core they see (torch's and ONNX Runtime's defaults).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

import subsets
import torch

import graft
from graft.export.engine import ExportedEngine, batch_tensors
from graft.export.exporter import LogitsModule, export_model

ROOT = Path(__file__).resolve().parents[1]


def _image_case(scratch: Path):
    data = ROOT / "examples" / "flowers"
    model = graft.fit(data, strategy="feature-extract", epochs=3, progress=False)
    return model, sorted(str(p) for p in (data / "val").rglob("*.jpg"))


def _text_case(scratch: Path):
    rows = list(csv.DictReader(open(subsets.DATASETS / "sst2" / "train.csv", newline="")))[:400]
    path = scratch / "sst2.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in rows)
    model = graft.fit(path, strategy="feature-extract", epochs=3, progress=False)
    return model, [r["text"] for r in rows]


def _time(run, inputs: list) -> list[float]:
    seconds = []
    for batch in inputs:
        start = time.perf_counter()
        run(batch)
        seconds.append(time.perf_counter() - start)
    return seconds


def measure(name: str, model, items: list[str], args, scratch: Path) -> dict:
    record = export_model(model, items, scratch / name, "onnx")
    names = record["inputs"]
    eager = LogitsModule(model.backbone_, model.head_, names).eval()
    onnx = ExportedEngine(scratch / name / record["file"], "onnx", names)

    @torch.inference_mode()
    def torch_run(batch):
        return eager(*batch_tensors(batch))

    batches = list(model.input_batches(items[: args.batch_size * args.batches], args.batch_size))
    singles = list(model.input_batches(items[: args.latency_runs], 1))
    result = {"model": name, "parity": record["parity"]["max_abs_logit_difference"]}
    for engine, run in (("pytorch", torch_run), ("onnxruntime", onnx)):
        _time(run, batches[:2] + singles[:5])  # warm-up
        batch_seconds = _time(run, batches)
        latencies = sorted(_time(run, singles))
        rows = sum(len(batch_tensors(b)[0]) for b in batches)
        result[engine] = {
            "throughput_per_s": rows / sum(batch_seconds),
            "latency_p50_ms": 1000 * statistics.median(latencies),
            "latency_p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        }
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| model | engine | inputs/s (batch) | p50 ms (1 input) | p95 ms | speed-up vs eager |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        base = result["pytorch"]["throughput_per_s"]
        for engine in ("pytorch", "onnxruntime"):
            row = result[engine]
            lines.append(
                f"| {result['model']} | {engine} | {row['throughput_per_s']:.1f} | "
                f"{row['latency_p50_ms']:.1f} | {row['latency_p95_ms']:.1f} | "
                f"{row['throughput_per_s'] / base:.2f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench/out/export.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        for name, case in (("efficientnet_lite0", _image_case), ("minilm", _text_case)):
            model, items = case(scratch)
            results.append(measure(name, model, items, args, scratch))
            print(json.dumps(results[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"torch threads: {torch.get_num_threads()}")
    print(table(results))


if __name__ == "__main__":
    main()
