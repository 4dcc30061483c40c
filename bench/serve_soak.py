"""Soak of ``graft serve`` for each kind of task, on loopback only: a few client threads send a
mix of good and bad requests for a bounded time; counted: the answers by class (2xx, 4xx, 5xx,
none) and the server process's resident memory after warm-up and at the end.

    .venv/bin/python bench/serve_soak.py [--seconds 30] [--warm-up 10] [--clients 4] [--kinds ...]
                                         [--runs DIR] [--out bench/out/serve_soak.json]

Each kind gets a quick run, fitted here from the smallest real data (reused from ``--runs DIR``
when ``DIR/<kind>`` holds a finished run; fitted into it otherwise): image classification on
8 training and 4 validation photos per class of ``examples/flowers`` (feature extraction);
text classification on 240 SST-2 sentences (feature extraction); tagging on 120 CoNLL-2003
sentences (feature extraction, 32 tokens); detection and semantic segmentation on 8 training
and 4 validation Penn-Fudan images (one epoch of the heads and one of the whole network, 128 px
and 64 px); audio classification on 8 FSDD clips of each of four digits (feature extraction,
64 px spectrograms). Question answering is soaked only when ``graft serve`` reads a question
with its context; until then it is skipped with the reason printed.

``graft serve RUN --host 127.0.0.1 --port P`` runs as a subprocess with its defaults (the
limits of :mod:`graft.serve.limits`). After a warm-up (every request of the mix once, then
all the clients for ``--warm-up`` seconds: without it, the image server grew 292 MB in the first
10 s under load, then stayed flat) its RSS is read (psutil, else ``/proc/PID/status``); then
``--clients`` threads, each on its own kept-alive connection, cycle through a shuffled deck of
the mix for ``--seconds``; the RSS is sampled every second and read again at the end; the
server is then stopped with SIGINT (as Ctrl-C) and must exit by itself within its grace time.

The mix: for every kind, unknown routes, ``GET /predict``, an empty body, a body over the
10 MiB limit, a bad ``top_k``, and the open routes (``/health``, ``/metrics``, ``/``); for
image and audio models, valid uploads (real data, and edge cases: a 1x1 image, a very wide
one, a grey and an RGBA PNG; a 10 ms clip, a stereo 44.1 kHz FLAC), JSON instead of
multipart, garbage bytes, truncated files, a header declaring 100 million pixels or 700 s of
audio, 65 files, a form without the ``file`` field, a broken multipart body; for text models,
valid texts (a sentence, a batch, an empty string, emoji and right-to-left scripts, control
characters, 5,000 characters), the wrong content type, invalid JSON and UTF-8, a JSON list,
non-string texts, no texts, a text over 100,000 characters, 4,097 texts, 100,000 nested
brackets, a bad ``top_k``. Good requests must be answered 2xx and bad ones 4xx; any 5xx is a
bug. Memory is "flat" when the RSS at the end is within max(10 % of the start, 50 MB) of it.

Defaults: 30 s per kind after 10 s of warm-up, 4 clients, so that six kinds (fits included)
take about ten minutes on a 2-core machine (9 min 55 s on 2026-12-06, shared). Exit status 1 when
any kind answered a 5xx, grew past flat, or could not be fitted or served.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRAFT_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
GRAFT = Path(sys.executable).parent / "graft"
KINDS = ("image", "text", "tagging", "detection", "segmentation", "audio", "question-answering")
#: The RSS growth after warm-up still called flat: this share of the start, or these bytes.
FLAT_SHARE, FLAT_BYTES = 0.10, 50 * 2**20
LIMIT_BYTES = 10 * 2**20  # graft serve's default --max-upload-mb


@dataclass
class Case:
    """One request of the mix, and whether a 2xx (``good``) or a 4xx is its right answer."""

    name: str
    good: bool
    method: str = "POST"
    path: str = "/predict"
    body: bytes = b""
    headers: dict = field(default_factory=dict)


# Data and runs --------------------------------------------------------------------------------


def _copy(files, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy(file, target / file.name)


def image_run(scratch: Path, run: Path):
    import graft

    data = scratch / "flowers"
    for split, count in (("train", 8), ("val", 4)):
        for folder in sorted((ROOT / "examples" / "flowers" / split).iterdir()):
            _copy(sorted(folder.iterdir())[:count], data / split / folder.name)
    graft.fit(data, strategy="feature-extract", epochs=3, out=run, progress=False)


def text_run(scratch: Path, run: Path):
    import graft

    with open(SHARED / "sst2" / "train.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    random.Random(0).shuffle(rows)
    path = scratch / "sst2.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows[:240])
    graft.fit(path, strategy="feature-extract", epochs=3, out=run, progress=False)


def tagging_run(scratch: Path, run: Path):
    import graft
    from graft.tasks.tagging import read_tagged
    from graft.tasks.tagging.task import TaggingData

    conll = SHARED / "conll2003"
    train = TaggingData.of(read_tagged(conll / "train.txt")).subset(range(0, 1200, 10))
    val = TaggingData.of(read_tagged(conll / "valid.txt")).subset(range(0, 600, 15))
    options = dict(strategy="feature-extract", epochs=2, max_length=32, progress=False)
    graft.fit(train, val, out=run, **options)


def detection_run(scratch: Path, run: Path):
    import graft
    from graft.tasks.detection import read_detection

    train = read_detection(SHARED / "pennfudan" / "annotations_train.json").subset(range(8))
    val = read_detection(SHARED / "pennfudan" / "annotations_val.json").subset(range(4))
    options = dict(task="detection", image_size=128, head_epochs=1, epochs=1, progress=False)
    graft.fit(train, val, out=run, seed=0, **options)


def segmentation_run(scratch: Path, run: Path):
    import graft
    from graft.tasks.segmentation.read import read_segmentation

    folder = SHARED / "pennfudan"
    train = read_segmentation(folder / "annotations_train.json").subset(range(8))
    val = read_segmentation(folder / "annotations_val.json").subset(range(4))
    options = dict(task="segmentation", image_size=64, head_epochs=1, epochs=1, progress=False)
    graft.fit(train, val, out=run, seed=0, **options)


def audio_run(scratch: Path, run: Path):
    import graft

    data = scratch / "fsdd"
    for digit in "0123":
        clips = sorted((SHARED / "fsdd" / digit).glob("*.wav"))
        _copy(clips[5:13], data / "train" / digit)
        _copy(clips[13:17], data / "val" / digit)
    options = dict(strategy="feature-extract", epochs=3, image_size=64, progress=False)
    graft.fit(data / "train", val=data / "val", out=run, **options)


FITS = {
    "image": image_run,
    "text": text_run,
    "tagging": tagging_run,
    "detection": detection_run,
    "segmentation": segmentation_run,
    "audio": audio_run,
}


def skipped(kind: str) -> str | None:
    """Why ``kind`` is not soaked (None: it is)."""
    if kind == "question-answering":
        source = Path(ROOT / "graft" / "serve" / "inputs.py").read_text()
        if "context" not in source:
            return (
                "graft serve reads only texts ({'text'} or {'texts'}), not a question with "
                "its context, so a question-answering run cannot be asked anything yet"
            )
        return "question answering is served now: add its requests to this soak"
    needs = {"text": "sst2", "tagging": "conll2003", "detection": "pennfudan"}
    needs.update({"segmentation": "pennfudan", "audio": "fsdd"})
    if kind in needs and not (SHARED / needs[kind]).is_dir():
        return f"the shared dataset {SHARED / needs[kind]} is missing"
    return None


def ready_run(kind: str, runs: Path, scratch: Path) -> tuple[Path, float]:
    """The run of ``kind`` in ``runs`` (fitted there unless it is finished), and the seconds
    the fit took (0 when reused)."""
    run = runs / kind
    if (run / "config.json").is_file():
        return run, 0.0
    shutil.rmtree(run, ignore_errors=True)
    began = time.perf_counter()
    work = scratch / f"data-{kind}"
    work.mkdir(parents=True, exist_ok=True)
    FITS[kind](work, run)
    return run, time.perf_counter() - began


# The requests -----------------------------------------------------------------------------------


def multipart(parts: list[tuple[str, str, bytes]], boundary: str | None = None) -> tuple:
    """A multipart body of ``(field, filename, content)`` parts, and its headers."""
    boundary = boundary or uuid.uuid4().hex
    body = b""
    for name, filename, content in parts:
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(name: str, good: bool, filename: str, content: bytes, path="/predict") -> Case:
    body, headers = multipart([("file", filename, content)])
    return Case(name, good, body=body, headers=headers, path=path)


def encoded(image: Image.Image, form: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, form)
    return out.getvalue()


def image_cases(photo: Path) -> list[Case]:
    real = photo.read_bytes()
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    bomb = encoded(Image.new("1", (10_000, 10_000)))  # 100 million pixels, a few kB
    many, headers = multipart([("file", f"{i}.png", encoded(noise)) for i in range(65)])
    other, other_headers = multipart([("photo", photo.name, real)])
    return [
        upload("photo", True, photo.name, real),
        upload("photo top_k=1", True, photo.name, real, path="/predict?top_k=1"),
        upload("1x1 image", True, "dot.png", encoded(Image.new("RGB", (1, 1), "red"))),
        upload("wide image", True, "wide.png", encoded(noise.resize((2000, 12)))),
        upload("grey png", True, "grey.png", encoded(noise.convert("L"))),
        upload("rgba png", True, "rgba.png", encoded(noise.convert("RGBA"))),
        upload("garbage bytes", False, "x.jpg", rng.bytes(3000)),
        upload("truncated photo", False, photo.name, real[: len(real) // 3]),
        upload("empty file", False, "empty.jpg", b""),
        upload("text as image", False, "notes.jpg", b"just some text, not an image"),
        upload("100 Mpixel header", False, "bomb.png", bomb),
        Case("65 files", False, body=many, headers=headers),
        Case("no file field", False, body=other, headers=other_headers),
        Case("json to image model", False, body=b'{"text": "a"}', headers=JSON),
        Case("broken multipart", False, body=b"--x\r\ngarbage", headers=BROKEN),
    ]


JSON = {"Content-Type": "application/json"}
BROKEN = {"Content-Type": "multipart/form-data; boundary=x"}


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def audio_cases(clip: Path) -> list[Case]:
    import soundfile

    real = clip.read_bytes()
    rng = np.random.default_rng(0)
    stereo, long = io.BytesIO(), io.BytesIO()
    soundfile.write(stereo, rng.normal(0, 0.1, (44100, 2)), 44100, format="FLAC")
    soundfile.write(long, np.zeros(700 * 8000, dtype="int16"), 8000, format="FLAC")
    return [
        upload("clip", True, clip.name, real),
        upload("clip top_k=1", True, clip.name, real, path="/predict?top_k=1"),
        upload("10 ms clip", True, "short.wav", wav_bytes(rng.normal(0, 900, 80), 8000)),
        upload("stereo 44.1 kHz flac", True, "stereo.flac", stereo.getvalue()),
        upload("garbage bytes", False, "x.wav", rng.bytes(3000)),
        upload("truncated clip", False, clip.name, real[:30]),
        upload("empty file", False, "empty.wav", b""),
        upload("text as audio", False, "notes.wav", b"just some text, not audio"),
        upload("700 s of audio", False, "long.flac", long.getvalue()),
        Case("json to audio model", False, body=b'{"text": "a"}', headers=JSON),
        Case("broken multipart", False, body=b"--x\r\ngarbage", headers=BROKEN),
    ]


def text_case(name: str, good: bool, payload, headers=JSON) -> Case:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Case(name, good, body=body, headers=headers)


def text_cases(sentence: str) -> list[Case]:
    return [
        text_case("sentence", True, {"text": sentence}),
        text_case("batch of 8", True, {"texts": [sentence] * 8, "top_k": 1}),
        text_case("empty string", True, {"text": ""}),
        text_case("spaces only", True, {"text": "   \n\t "}),
        text_case("emoji and rtl", True, {"text": "Très bien 👍🏽 مرحبا שלום 你好 \u200b!"}),
        text_case("control characters", True, {"text": "a\x00b\x07c\x1b[31m d\ud7ff"}),
        text_case("5000 characters", True, {"text": (sentence + " ") * (5000 // len(sentence))}),
        text_case("text/plain", False, sentence.encode(), {"Content-Type": "text/plain"}),
        text_case("invalid json", False, b'{"text": "unterminated'),
        text_case("invalid utf-8", False, b'{"text": "\xff\xfe\xfa"}'),
        text_case("json list", False, [sentence]),
        text_case("non-string texts", False, {"texts": [1, None, {"a": 2}]}),
        text_case("no texts", False, {"texts": []}),
        text_case("no text field", False, {"sentence": sentence}),
        text_case("text over 100k chars", False, {"text": "a" * 100_001}),
        text_case("4097 texts", False, {"texts": ["a"] * 4097}),
        text_case("nested brackets", False, b"[" * 100_000 + b"]" * 100_000),
        text_case("top_k in json bad", False, {"text": sentence, "top_k": "3"}),
        text_case("top_k in json 0", False, {"text": sentence, "top_k": 0}),
    ]


def common_cases() -> list[Case]:
    return [
        Case("GET /health", True, "GET", "/health"),
        Case("GET /metrics", True, "GET", "/metrics"),
        Case("GET /", True, "GET", "/"),
        Case("unknown route", False, "GET", "/admin/../../etc/passwd"),
        Case("POST unknown route", False, "POST", "/predict/extra", b"{}", JSON),
        Case("GET /predict", False, "GET", "/predict"),
        Case("empty body", False),
        Case("empty json body", False, headers=JSON),
        Case("bad top_k", False, path="/predict?top_k=-3", body=b"{}", headers=JSON),
        Case("over 10 MiB", False, body=b"\0" * (LIMIT_BYTES + 1024), headers=JSON),
    ]


def cases_of(kind: str) -> list[Case]:
    """The mix of ``kind``'s requests (see the module docstring)."""
    if kind == "image":
        found = image_cases(sorted((ROOT / "examples" / "flowers" / "val").rglob("*.jpg"))[0])
    elif kind in ("detection", "segmentation"):
        found = image_cases(sorted((SHARED / "pennfudan" / "PNGImages").glob("*.png"))[0])
    elif kind == "audio":
        found = audio_cases(sorted((SHARED / "fsdd" / "3").glob("*.wav"))[0])
    else:
        found = text_cases("Angela Merkel met Emmanuel Macron in Paris on a sunny day.")
    return found + common_cases()


# Sending ----------------------------------------------------------------------------------------


def send(connection: http.client.HTTPConnection, case: Case) -> int:
    """One request's status (-1: no answer, the connection is then dropped by the caller)."""
    headers = {**case.headers, "Content-Length": str(len(case.body))}
    connection.putrequest(case.method, case.path)
    for key, value in headers.items():
        connection.putheader(key, value)
    connection.endheaders()
    try:
        for start in range(0, len(case.body), 2**20):
            connection.send(case.body[start : start + 2**20])
    except OSError:  # refused on its Content-Length: the answer may be waiting all the same
        pass
    answer = connection.getresponse()
    answer.read()
    if answer.getheader("connection", "").lower() == "close":
        connection.close()
    return answer.status


class Tally:
    """Statuses by case, from every client thread."""

    def __init__(self):
        self.lock, self.by_case = threading.Lock(), {}

    def add(self, case: Case, status: int) -> None:
        with self.lock:
            self.by_case.setdefault(case.name, Counter())[status] += 1


def client(
    port: int, deck: list[Case], until: float, tally: Tally, seed: int, rounds: int = 10**9
) -> None:
    """Send the deck, shuffled, ``rounds`` times or until ``until`` (``time.monotonic``)."""
    rng = random.Random(seed)
    connection = None
    for _ in range(rounds):
        if time.monotonic() >= until:
            return
        order = deck[:]
        rng.shuffle(order)
        for case in order:
            if time.monotonic() >= until:
                return
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                status = send(connection, case)
            except (OSError, http.client.HTTPException):
                status = -1
                connection.close()
                connection = None
            tally.add(case, status)


# The server -------------------------------------------------------------------------------------


def rss(pid: int) -> int:
    """The resident memory of process ``pid``, in bytes."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for process {pid}") from None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(run: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """``graft serve RUN`` on a free loopback port, once ``/health`` answers."""
    port = free_port()
    command = [str(GRAFT), "serve", str(run), "--host", "127.0.0.1", "--port", str(port)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=environment
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"graft serve exited with {process.returncode}: see {log}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"graft serve did not answer /health within 180 s: see {log}")


def stop_server(process: subprocess.Popen) -> int | str:
    """SIGINT (Ctrl-C) and the exit status; killed (and said so) after 60 s."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return "killed after 60 s"


def clients_until(port: int, cases: list[Case], until: float, tally: Tally, count: int) -> list:
    """``count`` client threads (:func:`client`) started, sending until ``until``."""
    threads = []
    for i in range(count):
        seed = int(until * 1000) + i
        thread = threading.Thread(target=client, args=(port, cases, until, tally, seed))
        threads.append(thread)
        thread.start()
    return threads


def warm_up(port: int, cases: list[Case], tally: Tally, clients: int, seconds: float) -> None:
    """Every case once, then ``clients`` threads for ``seconds`` (counted with the rest)."""
    client(port, cases, time.monotonic() + 600, tally, seed=0, rounds=1)
    for thread in clients_until(port, cases, time.monotonic() + seconds, tally, clients):
        thread.join()


def soak(kind: str, run: Path, args: argparse.Namespace, logs: Path) -> dict:
    """Serve ``run`` and soak it (see the module docstring); what was counted, and the RSS
    sampled every second after warm-up."""
    cases = cases_of(kind)
    tally = Tally()
    process, port = start_server(run, logs / f"{kind}.log")
    try:
        warm_up(port, cases, tally, args.clients, args.warm_up)
        samples = [rss(process.pid)]
        threads = clients_until(port, cases, time.monotonic() + args.seconds, tally, args.clients)
        while any(t.is_alive() for t in threads):
            time.sleep(1.0)
            samples.append(rss(process.pid))
        samples.append(rss(process.pid))
    finally:
        exit_status = stop_server(process)
    return summary(kind, cases, tally, samples, exit_status)


def status_class(status: int) -> str:
    return "none" if status < 0 else f"{status // 100}xx"


def summary(kind, cases, tally: Tally, samples: list[int], exit_status) -> dict:
    """The counts of one kind's soak, its memory, and every case answered out of its class."""
    counts, surprises = Counter(), {}
    good = {case.name: case.good for case in cases}
    for name, statuses in tally.by_case.items():
        for status, n in statuses.items():
            counts[status_class(status)] += n
        wrong = {
            s: n for s, n in statuses.items() if status_class(s) != ("2xx" if good[name] else "4xx")
        }
        if wrong:
            surprises[name] = {"good": good[name], "statuses": wrong}
    start, end, peak = samples[0], samples[-1], max(samples)
    growth = end - start
    return {
        "kind": kind,
        "requests": sum(counts.values()),
        **{k: counts.get(k, 0) for k in ("2xx", "4xx", "5xx", "none")},
        "rss_start_mb": start / 2**20,
        "rss_end_mb": end / 2**20,
        "rss_peak_mb": peak / 2**20,
        "rss_change_mb": growth / 2**20,
        "flat": growth <= max(FLAT_SHARE * start, FLAT_BYTES),
        "rss_samples_mb": [round(x / 2**20, 1) for x in samples],
        "server_exit": exit_status,
        "surprises": surprises,
        "by_case": {name: dict(s) for name, s in sorted(tally.by_case.items())},
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| kind | requests | 2xx | 4xx | 5xx | no answer | RSS start MB | RSS end MB | change "
        "| peak MB | flat |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = r["rss_change_mb"]
        share = 100 * change / r["rss_start_mb"]
        lines.append(
            f"| {r['kind']} | {r['requests']} | {r['2xx']} | {r['4xx']} | {r['5xx']} | "
            f"{r['none']} | {r['rss_start_mb']:.0f} | {r['rss_end_mb']:.0f} | "
            f"{change:+.0f} MB ({share:+.1f}%) | {r['rss_peak_mb']:.0f} | "
            f"{'yes' if r['flat'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="soak seconds per kind")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--warm-up", type=float, default=10.0, help="warm-up seconds per kind")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--runs", type=Path, help="reuse (or fit into) DIR/<kind> runs")
    parser.add_argument("--out", type=Path, default=Path("bench/out/serve_soak.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows, skips, fits, failed = [], {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="serve-soak-") as folder:
        scratch = Path(folder)
        os.environ.setdefault("GRAFT_CACHE_DIR", str(scratch / "cache"))
        runs = args.runs or scratch / "runs"
        logs = args.out.parent / "serve_soak_logs"
        logs.mkdir(parents=True, exist_ok=True)
        for kind in args.kinds.split(","):
            reason = skipped(kind)
            if reason is not None:
                skips[kind] = reason
                print(f"{kind}: skipped ({reason})", flush=True)
                continue
            try:
                run, fits[kind] = ready_run(kind, runs, scratch)
            except Exception as error:  # noqa: BLE001  (the other kinds are soaked all the same)
                failed[kind] = f"the fit failed: {type(error).__name__}: {error}"
                print(f"{kind}: {failed[kind]}", flush=True)
                continue
            print(
                f"{kind}: run ready in {fits[kind]:.0f} s, soaking {args.seconds:g} s", flush=True
            )
            try:
                rows.append(soak(kind, run, args, logs))
            except RuntimeError as error:  # graft serve did not start: its log says why
                failed[kind] = str(error)
                print(f"{kind}: {error}", flush=True)
                continue
            shown = {k: v for k, v in rows[-1].items() if k not in ("by_case", "rss_samples_mb")}
            print(json.dumps(shown), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"seconds": args.seconds, "warm_up": args.warm_up, "clients": args.clients}
    report["fit_seconds"] = fits
    found = {**report, "rows": rows, "skipped": skips, "failed": failed}
    args.out.write_text(json.dumps(found, indent=2))
    print(table(rows))
    for kind, reason in skips.items():
        print(f"{kind}: skipped ({reason})")
    for kind, reason in failed.items():
        print(f"{kind}: FAILED ({reason})")
    errors = sum(r["5xx"] for r in rows)
    unflat = [r["kind"] for r in rows if not r["flat"]]
    print(f"5xx answers: {errors}; memory not flat: {', '.join(unflat) or 'none'}")
    raise SystemExit(1 if errors or unflat or failed else 0)


if __name__ == "__main__":
    main()
