"""Load test of ``graft serve`` on loopback: requests per second and latency at 1, 8 and 32
concurrent clients, against in-process PyTorch calls one image at a time.

    .venv/bin/python bench/serve_load.py [--requests 96] [--clients 1,8,32]

An ``efficientnet_lite0`` head is fitted on the repository's flower photos (feature
extraction), served by uvicorn on 127.0.0.1 in this process, and each client thread posts
real photos (one per request, multipart) until ``--requests`` requests are done at that
concurrency. Reported: requests per second over the wall time, p50 and p95 latency, failed
requests (any status but 200), the mean batch size the service formed, and the ratio to the
baseline: ``model.predict_proba`` called in-process for one photo at a time, as a script
without a server would.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import time
from pathlib import Path

import httpx

import graft
from graft.serve import BackgroundServer, create_app

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def baseline(model, photos: list[Path], count: int) -> dict:
    model.predict_proba([str(photos[0])])  # warm-up
    latencies = []
    start = time.perf_counter()
    for i in range(count):
        begin = time.perf_counter()
        model.predict_proba([str(photos[i % len(photos)])])
        latencies.append(time.perf_counter() - begin)
    wall = time.perf_counter() - start
    return {
        "clients": "in-process",
        "requests": count,
        "failed": 0,
        "per_s": count / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "mean_batch": 1.0,
    }


def load(url: str, photos: list[bytes], clients: int, count: int) -> dict:
    def one(i: int) -> tuple[int, float]:
        begin = time.perf_counter()
        files = {"file": (f"{i}.jpg", photos[i % len(photos)], "image/jpeg")}
        try:
            status = httpx.post(f"{url}/predict", files=files, timeout=120).status_code
        except httpx.HTTPError:
            status = -1
        return status, time.perf_counter() - begin

    before = httpx.get(f"{url}/health").json()
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(count)))
    wall = time.perf_counter() - start
    after = httpx.get(f"{url}/health").json()
    latencies = [seconds for _, seconds in results]
    batches = after["batches"] - before["batches"]
    return {
        "clients": clients,
        "requests": count,
        "failed": sum(status != 200 for status, _ in results),
        "per_s": count / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "mean_batch": (after["inputs"] - before["inputs"]) / max(1, batches),
    }


def table(rows: list[dict]) -> str:
    base = rows[0]["per_s"]
    lines = [
        "| clients | requests | failed | requests/s | p50 ms | p95 ms | mean batch "
        "| vs in-process |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['clients']} | {row['requests']} | {row['failed']} | "
            f"{row['per_s']:.1f} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} | "
            f"{row['mean_batch']:.1f} | {row['per_s'] / base:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=96, help="requests per concurrency")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--out", type=Path, default=Path("bench/out/serve_load.json"))
    args = parser.parse_args()
    data = ROOT / "examples" / "flowers"
    model = graft.fit(data, strategy="feature-extract", epochs=5, progress=False)
    photos = sorted((data / "val").rglob("*.jpg"))
    rows = [baseline(model, photos, args.requests)]
    contents = [p.read_bytes() for p in photos]
    with BackgroundServer(create_app(model)) as server:
        for clients in (int(c) for c in args.clients.split(",")):
            rows.append(load(server.url, contents, clients, args.requests))
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(table(rows))
    failed = sum(row["failed"] for row in rows)
    print(f"failed requests: {failed}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
