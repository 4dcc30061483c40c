"""What ``POST /predict`` reads: the body within its limit, the uploaded files of an image or
audio model (each checked to decode before it reaches the model), the texts of a text model, and
``top_k``; a request that cannot be read is refused with :class:`RequestError` (a 4xx status and
a message), never a 500. Texts are only ever texts: a request can never make the service read a
file on the server.

An uploaded image is decoded once, in memory, and the model is given that RGB image: no file is
written, and the check that it decodes is the decoding the model needs (profiled under load,
the temporary file took a fifth of the event loop's busy time, and the model decoded each
photo a second time). An uploaded audio file is written to a temporary file, whose extension
names its format.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from PIL import Image

from graft.data.audio import check_audio, is_audio_file
from graft.data.images import UnreadableImage, decode_rgb
from graft.serve.limits import (
    LimitExceeded,
    RequestLimits,
    audio_seconds,
    check_texts,
    check_total,
    image_pixels,
)

#: Upload limit of one request, over all its files.
MAX_UPLOAD_BYTES = 10 * 2**20
#: The most texts and files in one request (a request above ``max_batch`` is split in batches).
MAX_TEXTS = 4096
MAX_FILES = 64


class RequestError(Exception):
    """A request the service refuses, with its HTTP status, a message for the user and any
    headers (``Retry-After``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


async def read_body(request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the request is {int(declared):,} bytes; the limit is {limit:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"the request is over the limit of {limit:,} bytes")
    request._body = bytes(body)  # starlette reads form() and json() from here
    return request._body


def read_top_k(request, default: int) -> int:
    """The ``top_k`` query parameter (else ``default``), refused unless a positive integer."""
    value = request.query_params.get("top_k", str(default))
    if not (value.isascii() and value.isdecimal() and len(value) <= 6) or int(value) < 1:
        raise RequestError(400, f"top_k must be a positive integer, got {value[:20]!r}")
    return int(value)


def _image(content: bytes, name: str) -> tuple[Image.Image | None, str | None]:
    """The uploaded image decoded (RGB, upright), or why it is not a readable image."""
    try:
        return decode_rgb(content, name), None
    except UnreadableImage as error:
        return None, str(error)


def _audio(path: str, name: str) -> tuple[str, str | None]:
    """The saved audio file, and why it is not a readable audio file (None when it is one)."""
    problem = check_audio([path])[1].get(0)
    return path, None if problem is None else problem.replace(path, name)


def _saved(content: bytes, name: str, folder: Path) -> str:
    """The upload written to a file in ``folder``; an audio file keeps its extension, which
    names its format."""
    suffix = Path(name).suffix.lower() if is_audio_file(Path(name)) else ".upload"
    with tempfile.NamedTemporaryFile(dir=folder, suffix=suffix, delete=False) as handle:
        handle.write(content)
    return handle.name


#: The modalities whose inputs are uploaded files: what they are called, and how an upload
#: becomes the model's input (off the event loop), or why it cannot.
UPLOADED = {"image": ("image", _image), "audio": ("audio file", _audio)}


async def read_uploads(
    request, kind: str, folder: Path, modality: str, limits: RequestLimits = RequestLimits()
) -> list:
    """The uploaded files as the model's inputs: an image model's decoded RGB images, an
    audio model's files saved in ``folder`` (see the module docstring); each checked to decode
    as the model's modality, and all within ``limits``."""
    noun, decode = UPLOADED[modality]
    if not kind.startswith("multipart/form-data"):
        raise RequestError(
            415,
            f"this model reads {noun}s: send them as multipart/form-data (field 'file'), "
            f"not {kind or 'no content type'}",
        )
    try:
        form = await request.form(max_files=MAX_FILES)
    except Exception as error:  # noqa: BLE001  (starlette's multipart parser: a bad body)
        status = 413 if "Too many files" in str(error) else 400
        raise RequestError(status, f"the multipart body cannot be read ({error})") from None
    files = [v for key in ("file", "files") for v in form.getlist(key) if hasattr(v, "read")]
    if not files:
        raise RequestError(400, f"no {noun} in the request: upload it in the field 'file'")
    items, decoded = [], 0.0
    try:
        for upload in files:
            content = await upload.read()
            name = upload.filename or "the upload"
            if modality != "image":  # a file, kept in the list at once to be removed
                content = _saved(content, name, folder)
                items.append(content)
            decoded = _declared(content, modality, decoded, limits)  # the header's, before decoding
            item, problem = await asyncio.to_thread(decode, content, name)  # off the loop
            if problem is not None:
                raise RequestError(400, f"{upload.filename}: not a readable {noun} ({problem})")
            if modality == "audio":
                _check_clip(content, name, limits.clip_seconds)
            if modality == "image":
                items.append(item)
    except BaseException:  # a refusal, a full disk, a cancelled request: no file left behind
        remove_uploads(items)
        raise
    return items


def _declared(content, modality: str, so_far: float, limits: RequestLimits) -> float:
    """The request's pixels (image) or seconds (audio) so far, with this upload's as its
    header declares them; refused with 413 past the limit (:mod:`graft.serve.limits`)."""
    if modality == "image":
        total, limit, what = so_far + image_pixels(content), limits.pixels, "pixels"
    else:
        total, limit = so_far + audio_seconds(content), limits.audio_seconds
        what = "seconds of audio"
    try:
        check_total(total, limit, what)
    except LimitExceeded as over:
        raise RequestError(over.status, over.message) from None
    return total


def _check_clip(path: str, name: str, limit: float | None) -> None:
    """Refuse (413) an audio file that lasts longer than ``limit`` seconds (a speech model's
    window), by its name."""
    seconds = audio_seconds(path)
    if limit is not None and seconds > limit:
        raise RequestError(
            413,
            f"{name}: lasts {seconds:.1f} s, over this model's {limit:g} s window; "
            f"send clips of at most {limit:g} s",
        )


def remove_uploads(items: list) -> None:
    """Delete the temporary files of a request's uploads (an image is held in memory)."""
    for item in items:
        if isinstance(item, str):
            Path(item).unlink(missing_ok=True)


def read_texts(
    body: bytes, kind: str, default_k: int, limits: RequestLimits = RequestLimits()
) -> tuple[list[str], int]:
    """The texts of a JSON body (``text`` or ``texts``), each within ``limits``, and its
    ``top_k`` (else ``default_k``)."""
    hint = '{"text": "..."} or {"texts": [...]}'
    return texts_of(
        json_object(body, kind, f"this model reads text: send JSON {hint}"), default_k, limits
    )


def texts_of(
    payload: dict, default_k: int, limits: RequestLimits = RequestLimits()
) -> tuple[list[str], int]:
    """The texts of a request's JSON object (``text`` or ``texts``), each within ``limits``,
    and its ``top_k`` (else ``default_k``)."""
    texts = payload.get("texts", [payload["text"]] if "text" in payload else None)
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError(400, 'send {"text": "a string"} or {"texts": ["one or more strings"]}')
    return _within(texts, limits), _top_k(payload, default_k)


def read_records(
    body: bytes,
    kind: str,
    default_k: int,
    fields: tuple[str, ...],
    limits: RequestLimits = RequestLimits(),
) -> tuple[list[tuple[str, ...]], int]:
    """The inputs of a JSON body for a model whose input is several texts (question
    answering: ``fields`` = question and context): one object with the fields, or
    ``{"inputs": [objects]}``; each input the tuple of its fields, each text within
    ``limits``; and the body's ``top_k``."""
    one = "{" + ", ".join(f'"{f}": "..."' for f in fields) + "}"
    hint = f'this model reads {" and ".join(fields)}: send JSON {one} or {{"inputs": [...]}}'
    payload = json_object(body, kind, hint)
    records = payload.get("inputs", [payload] if "inputs" not in payload else None)
    if not isinstance(records, list) or not records:
        raise RequestError(400, f'send {one} or {{"inputs": [one or more of them]}}')
    items = []
    for number, record in enumerate(records):
        if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in fields):
            raise RequestError(400, f"input {number}: send {one} (strings)")
        items.append(tuple(record[f] for f in fields))
    _within([text for item in items for text in item], limits)
    return items, _top_k(payload, default_k)


def json_object(body: bytes, kind: str, hint: str) -> dict:
    """The JSON object of a body, or the 415/400 that says what to send (``hint``)."""
    if not kind.startswith("application/json"):
        raise RequestError(415, f"{hint}, not {kind or 'no content type'}")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:  # bad JSON or UTF-8, absurd numbers
        raise RequestError(400, f"the body is not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise RequestError(400, f"send a JSON object: {hint.partition('send JSON ')[2] or hint}")
    return payload


def _within(texts: list[str], limits: RequestLimits) -> list[str]:
    """``texts``, refused (413) when too many or one too long."""
    if len(texts) > MAX_TEXTS:
        raise RequestError(413, f"{len(texts)} texts in one request; the limit is {MAX_TEXTS}")
    try:
        check_texts(texts, limits.text_chars)
    except LimitExceeded as over:
        raise RequestError(over.status, over.message) from None
    return texts


def _top_k(payload: dict, default_k: int) -> int:
    k = payload.get("top_k", default_k)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise RequestError(400, f"top_k must be a positive integer, got {k!r}")
    return k
