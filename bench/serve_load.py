"""Load test of ``graft serve`` on loopback with each engine: requests per second, p50/p95
latency, the share of 503s and the failures at 1, 8, 32 and 128 concurrent clients.

    .venv/bin/python bench/serve_load.py [--requests 96] [--clients 1,8,32,128] [--threads 1]

An ``efficientnet_lite0`` head is fitted on the repository's flower photos (feature
extraction) into a run directory, exported to ONNX (and, when ``graft export --quantize int8``
is there, to ONNX int8), and each engine (PyTorch eager, ONNX, ONNX int8) is served by uvicorn
on 127.0.0.1 in this process with ``graft serve``'s defaults (batches of 32, a queue of 64
requests, a 30 s timeout).

The clients run in a process of their own (``bench/serve_clients.py``, started once per
concurrency), as a real load generator (wrk, hey, locust) does: until 2026-12-01 they were
threads of this process, so every request's client side (building and sending the multipart
body, reading the answer) took the server's own GIL and core, and the figures measured the
client and the server together. Each client thread posts real photos (one per request,
multipart, on a kept-alive connection of its own) until ``--requests`` requests are done at
that concurrency (at least four per client); a 503 is counted and not retried. Reported per
engine and concurrency: answered (200) requests per second over the generator's wall time, p50
and p95 latency of the answered ones, the share of 503s, failures (any status but 200 and 503,
or no answer), and the mean batch the service formed (from ``/health``).
Every engine runs on ``--threads`` threads (torch's, and ONNX Runtime's intra-op pool).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import torch

import graft
from graft.export.exporter import export_model
from graft.serve import BackgroundServer, create_app

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(url: str, photos: Path, clients: int, count: int) -> dict:
    """``count`` requests from ``clients`` threads of the load generator's process, posting the
    photos of the folder ``photos``; what they got."""
    count = max(count, 4 * clients)
    generator = [sys.executable, str(ROOT / "bench" / "serve_clients.py"), url]
    options = ["--clients", str(clients), "--requests", str(count), "--photos", str(photos)]
    before = httpx.get(f"{url}/health").json()
    done = subprocess.run([*generator, *options], capture_output=True, text=True, check=True)
    after = httpx.get(f"{url}/health").json()
    found = json.loads(done.stdout)
    results, wall = found["results"], found["wall"]
    answered = [seconds for status, seconds in results if status == 200]
    batches = after["batches"] - before["batches"]
    return {
        "clients": clients,
        "requests": count,
        "answered_per_s": len(answered) / wall,
        "p50_ms": 1000 * statistics.median(answered) if answered else None,
        "p95_ms": 1000 * percentile(answered, 0.95) if answered else None,
        "share_503": sum(status == 503 for status, _ in results) / count,
        "failed": sum(status not in (200, 503) for status, _ in results),
        "mean_batch": (after["inputs"] - before["inputs"]) / max(1, batches),
    }


def one_thread_onnx(model, folder: Path, threads: int) -> None:
    """Give the ONNX engine's session ``threads`` intra-op threads, as torch has."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    record = json.loads((folder / "export.json").read_text())
    model.engine_.session = onnxruntime.InferenceSession(
        str(folder / record["file"]), sess_options=options, providers=["CPUExecutionProvider"]
    )


def quantized(run: Path, folder: Path) -> str | None:
    """Write the int8 export with ``graft export --quantize int8``; why not, when it fails."""
    command = [sys.executable, "-c", "from graft.cli import main; main()", "export", str(run)]
    options = ["--format", "onnx", "--quantize", "int8", "--out", str(folder)]
    done = subprocess.run([*command, *options], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def engines(run: Path, photos: list[str], threads: int) -> tuple[dict, dict]:
    """The served models by engine name, and the engines that could not be built (why)."""
    export_model(graft.load(run, engine="torch"), photos, run / "export", "onnx")
    models = {"torch eager": graft.load(run, engine="torch")}
    models["onnx"] = graft.load(run, engine="onnx", export=run / "export")
    one_thread_onnx(models["onnx"], run / "export", threads)
    missing = {}
    reason = quantized(run, run / "export-int8")
    if reason is None:
        models["onnx int8"] = graft.load(run, engine="onnx", export=run / "export-int8")
        one_thread_onnx(models["onnx int8"], run / "export-int8", threads)
        record = json.loads((run / "export-int8" / "export.json").read_text())
        print(json.dumps({"int8": record.get("quantization")}), flush=True)
    else:
        missing["onnx int8"] = reason
    return models, missing


def table(rows: list[dict]) -> str:
    eager = {r["clients"]: r["answered_per_s"] for r in rows if r["engine"] == "torch eager"}
    lines = [
        "| engine | clients | requests | answered/s | p50 ms | p95 ms | 503 share | failed "
        "| mean batch | vs eager |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p50, p95 = (f"{r[k]:.0f}" if r[k] is not None else "-" for k in ("p50_ms", "p95_ms"))
        lines.append(
            f"| {r['engine']} | {r['clients']} | {r['requests']} | {r['answered_per_s']:.1f} | "
            f"{p50} | {p95} | {100 * r['share_503']:.0f}% | {r['failed']} | "
            f"{r['mean_batch']:.1f} | {r['answered_per_s'] / eager[r['clients']]:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=96, help="requests per concurrency")
    parser.add_argument("--clients", default="1,8,32,128")
    parser.add_argument("--threads", type=int, default=1, help="threads of each engine")
    parser.add_argument("--out", type=Path, default=Path("bench/out/serve_load.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = ROOT / "examples" / "flowers"
    photos = sorted((data / "val").rglob("*.jpg"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="serve-load-") as folder:
        run = Path(folder) / "flowers"
        graft.fit(data, strategy="feature-extract", epochs=5, out=run, progress=False)
        models, missing = engines(run, [str(p) for p in photos], args.threads)
        for name, model in models.items():
            with BackgroundServer(create_app(model)) as server:
                httpx.post(
                    f"{server.url}/predict", files={"file": ("w.jpg", photos[0].read_bytes())}
                )
                for clients in (int(c) for c in args.clients.split(",")):
                    found = load(server.url, data / "val", clients, args.requests)
                    rows.append({"engine": name, **found})
                    print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "missing": missing}, indent=2))
    print(table(rows))
    for name, reason in missing.items():
        print(f"{name}: not measured ({reason})")
    failed = sum(row["failed"] for row in rows)
    print(f"failed requests: {failed}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
