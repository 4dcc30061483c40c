"""The load generator of ``bench/serve_load.py``, in a process of its own (as wrk, hey or locust
run): ``clients`` threads post photos to ``POST /predict`` until ``requests`` requests are done,
then the statuses and seconds of every request are printed as JSON.

    .venv/bin/python bench/serve_clients.py URL --clients 8 --requests 96 --photos FOLDER

Each client thread keeps one HTTP/1.1 connection (``http.client``, standard library only, so the
process starts in a fraction of a second and spends little of the machine per request) and
posts one photo per request as ``multipart/form-data`` (field ``file``), the bodies built once
before the clock starts. A 503 is counted and not retried; a request without an answer (the
connection dropped) is status -1 and the client connects again.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit


def multipart(name: str, content: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body holding ``content`` as the file ``name`` in the field
    ``file``, and its content type."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def run_clients(url: str, bodies: list[tuple[bytes, str]], clients: int, count: int) -> dict:
    """``count`` requests from ``clients`` threads, each on its own kept-alive connection: the
    wall seconds and each request's ``[status, seconds]``."""
    address = urlsplit(url)
    local = threading.local()

    def one(i: int) -> tuple[int, float]:
        body, kind = bodies[i % len(bodies)]
        headers = {"Content-Type": kind, "Content-Length": str(len(body))}
        begin = time.perf_counter()
        try:
            if not hasattr(local, "connection"):
                local.connection = http.client.HTTPConnection(
                    address.hostname, address.port, timeout=120
                )
            local.connection.request("POST", "/predict", body=body, headers=headers)
            answer = local.connection.getresponse()
            answer.read()
            status = answer.status
        except (OSError, http.client.HTTPException):
            connection = local.__dict__.pop("connection", None)
            if connection is not None:
                connection.close()
            status = -1
        return status, time.perf_counter() - begin

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(count)))
    return {"wall": time.perf_counter() - start, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--photos", type=Path, required=True, help="a folder of .jpg photos")
    args = parser.parse_args()
    photos = sorted(args.photos.rglob("*.jpg"))
    bodies = [multipart(f"{i}.jpg", p.read_bytes()) for i, p in enumerate(photos)]
    print(json.dumps(run_clients(args.url, bodies, args.clients, args.requests)))


if __name__ == "__main__":
    main()
