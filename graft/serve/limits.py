"""The limits ``graft serve`` keeps under abuse, besides the body size, the number of files and
texts (:mod:`graft.serve.inputs`) and the queue (:mod:`graft.serve.batching`): the pixels a
request's images decode to, the seconds its audio decodes to, the length of one text (each
checked from the header or the text before anything is decoded: 413), and the requests one
client may have in flight at once (429). Slow clients hold no worker: uvicorn reads every
connection on its event loop, a request is admitted to the queue only once its body has
arrived, and idle keep-alive connections are closed after uvicorn's ``timeout_keep_alive``.

=====================================  ===========  ==========================================
limit                                  default      answer
=====================================  ===========  ==========================================
request body (``--max-upload-mb``)     10 MiB       413
files in one request                   64           413
texts in one request                   4096         413
characters in one text                 100,000      413
decoded pixels in one request          50 million   413 (one image: 89.5 million, 400)
decoded audio seconds in one request   600 s        413
requests in flight per client address  16           429 with ``Retry-After`` (loopback exempt)
open connections (per worker)          512          503 (:mod:`graft.serve.connections`)
=====================================  ===========  ==========================================

Each but the files and texts in one request is an option of ``graft serve`` (``--max-pixels``,
``--max-audio-seconds``, ``--max-text-chars``, ``--max-client-requests``,
``--max-connections``), whose defaults are the constants below.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
from dataclasses import dataclass

#: The most pixels the images of one request may decode to (an RGB image holds 3 bytes each).
MAX_REQUEST_PIXELS = 50_000_000
#: The most seconds of audio one request may decode to.
MAX_REQUEST_AUDIO_SECONDS = 600.0
#: The most characters of one text.
MAX_TEXT_CHARS = 100_000
#: The most requests one client address may have in flight (a reverse proxy on loopback, and
#: local load generators, are exempt).
MAX_CLIENT_REQUESTS = 16
#: The most connections one worker holds open (uvicorn's ``limit_concurrency``).
MAX_CONNECTIONS = 512


@dataclass(frozen=True)
class RequestLimits:
    """What one request may decode to: ``pixels`` over its images, ``audio_seconds`` over its
    audio files, ``text_chars`` in any one text; and ``clip_seconds`` in any one audio file
    (a speech model's window, None: no such limit)."""

    pixels: int = MAX_REQUEST_PIXELS
    audio_seconds: float = MAX_REQUEST_AUDIO_SECONDS
    text_chars: int = MAX_TEXT_CHARS
    clip_seconds: float | None = None


class LimitExceeded(Exception):
    """A request over one of the limits, with its HTTP status and a message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def image_pixels(content: bytes) -> int:
    """The pixels an encoded image declares in its header (0 when it has no readable header:
    the decoding then refuses it)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content)) as image:
            return int(image.width) * int(image.height)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as bomb:
        # PIL refused it on the size its header declares, which the message gives: over twice
        # its limit always, over the limit itself where the warnings' filters (global to the
        # process) make PIL's DecompressionBombWarning an error.
        # Found by bench/serve_soak.py: the same upload was answered 413 or 400 by chance.
        declared = re.search(r"\((\d+) pixels\)", str(bomb))
        return int(declared.group(1)) if declared else int(Image.MAX_IMAGE_PIXELS or 0) + 1
    except Exception:  # noqa: BLE001  (any unreadable header: decode_rgb says why)
        return 0


def audio_seconds(path: str) -> float:
    """The seconds an audio file declares in its header (0 when unreadable: the decoding then
    refuses it)."""
    import soundfile

    try:
        info = soundfile.info(path)
        return float(info.frames) / float(info.samplerate) if info.samplerate > 0 else 0.0
    except Exception:  # noqa: BLE001  (any unreadable header: check_audio says why)
        return 0.0


def check_total(total: float, limit: float, what: str) -> None:
    """Refuse (413) a request whose inputs decode to more than ``limit`` ``what``."""
    if total > limit:
        raise LimitExceeded(
            413, f"the request's inputs decode to {total:,.0f} {what}; the limit is {limit:,.0f}"
        )


def check_texts(texts: list[str], limit: int = MAX_TEXT_CHARS) -> None:
    """Refuse (413) a request with a text of more than ``limit`` characters."""
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise LimitExceeded(
                413, f"text {i} has {len(text):,} characters; the limit is {limit:,}"
            )


def _loopback(client) -> bool:
    try:
        return client is None or ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class ClientLimit:
    """ASGI middleware: at most ``limit`` requests in flight per client address; one more is
    answered 429 with ``Retry-After: 1``. Loopback clients are exempt unless ``loopback``."""

    def __init__(self, app, limit: int = MAX_CLIENT_REQUESTS, loopback: bool = False):
        self.app, self.limit, self.loopback = app, limit, loopback
        self.in_flight: dict[str, int] = {}

    async def __call__(self, scope, receive, send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or (_loopback(client) and not self.loopback):
            await self.app(scope, receive, send)
            return
        address = client[0] if client else "?"
        if self.in_flight.get(address, 0) >= self.limit:
            await _too_many(send, self.limit)
            return
        self.in_flight[address] = self.in_flight.get(address, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[address] -= 1
            if not self.in_flight[address]:
                del self.in_flight[address]


async def _too_many(send, limit: int) -> None:
    message = f"this client already has {limit} requests in flight (the limit): retry later"
    await send_refusal(send, 429, message, [(b"retry-after", b"1")])


async def send_refusal(send, status: int, message: str, headers: list | None = None) -> None:
    """Answer ``status`` with ``{"error": message}`` straight from an ASGI middleware (before
    the routes: an unauthorised or over-limit request), with any extra ``headers``."""
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
