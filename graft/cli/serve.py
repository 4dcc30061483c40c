"""``graft serve RUN``: the HTTP service of a run (:mod:`graft.serve`), with the engine that
answers, the limits it keeps under load, and the worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graft.cli.app import app, console
from graft.errors import ConfigError
from graft.serve.limits import (
    MAX_CLIENT_REQUESTS,
    MAX_CONNECTIONS,
    MAX_REQUEST_AUDIO_SECONDS,
    MAX_REQUEST_PIXELS,
    MAX_TEXT_CHARS,
)

#: The engines ``--engine`` names: ``auto`` is the run's current export if any, else torch.
ENGINES = ("auto", "torch", "onnx", "torchscript")

#: The options declared once, with their help; the limits' defaults are
#: :mod:`graft.serve.limits`' constants.
EngineOption = Annotated[
    str,
    typer.Option(
        help="auto (the run's export when it has a current one, else torch), torch, "
        "onnx or torchscript."
    ),
]
MaxPixels = Annotated[
    int, typer.Option(help="Most pixels the images of one request decode to; more: 413.")
]
MaxAudioSeconds = Annotated[
    float, typer.Option(help="Most seconds the audio of one request decodes to; more: 413.")
]
MaxTextChars = Annotated[int, typer.Option(help="Most characters of one text; more: 413.")]
MaxClientRequests = Annotated[
    int,
    typer.Option(
        help="Requests one client address may have in flight; more: 429 (loopback clients exempt)."
    ),
]
MaxConnections = Annotated[
    int, typer.Option(help="Connections each worker holds open; a request beyond: 503.")
]
TokenFile = Annotated[
    Path | None,
    typer.Option(
        help="File holding the token requests must carry (Authorization: Bearer TOKEN); "
        "else $GRAFT_SERVE_TOKEN, else one is generated into ~/.graft/serve-token when "
        "--host is not a loopback address."
    ),
]
NoAuth = Annotated[
    bool,
    typer.Option(
        "--no-auth", help="Serve without a token even on a non-loopback --host (a warning)."
    ),
]


@app.command("serve")
def serve_command(
    run: Annotated[
        Path,
        typer.Argument(
            help="A run directory written by `graft fit`, or an index folder "
            "written by `graft index` (answers /search); a recommendation run answers /recommend."
        ),  # fmt: skip
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    engine: EngineOption = "auto",
    top_k: Annotated[int, typer.Option(help="Classes per answer unless a request asks.")] = 5,
    max_batch: Annotated[
        int, typer.Option(help="Most inputs in one forward; larger requests are split.")
    ] = 32,
    queue_limit: Annotated[
        int, typer.Option(help="Requests that may wait for the model; more get 503.")
    ] = 64,
    timeout: Annotated[
        float, typer.Option(help="Seconds a request may wait for its answer; then 504.")
    ] = 30.0,
    workers: Annotated[
        int, typer.Option(help="Worker processes, each with the model (more cores).")
    ] = 1,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body, in MiB.")] = 10.0,
    max_pixels: MaxPixels = MAX_REQUEST_PIXELS,
    max_audio_seconds: MaxAudioSeconds = MAX_REQUEST_AUDIO_SECONDS,
    max_text_chars: MaxTextChars = MAX_TEXT_CHARS,
    max_client_requests: MaxClientRequests = MAX_CLIENT_REQUESTS,
    max_connections: MaxConnections = MAX_CONNECTIONS,
    token_file: TokenFile = None,
    no_auth: NoAuth = False,
) -> None:
    """Serve RUN over HTTP: POST /predict, GET /health, GET /metrics, and a web page at /
    (an index folder: POST or GET /search instead of /predict; a recommendation run:
    /recommend)."""
    try:
        from graft.serve import serve
        from graft.serve.app import engine_name
        from graft.serve.auth import service_token
        from graft.serve.server import load_served
    except ImportError as error:
        raise ConfigError(f"graft serve needs {error.name}: pip install 'graft[serve]'") from None
    counts = {"--top-k": top_k, "--max-batch": max_batch, "--queue-limit": queue_limit}
    sizes = {"--max-upload-mb": max_upload_mb, "--timeout": timeout}
    limits = {
        "--max-pixels": max_pixels,
        "--max-audio-seconds": max_audio_seconds,
        "--max-text-chars": max_text_chars,
        "--max-client-requests": max_client_requests,
        "--max-connections": max_connections,
    }
    _check({**counts, "--workers": workers, **sizes, **limits}, port, engine)
    token, where = service_token(host, token_file, no_auth)
    model = load_served(run, engine)  # refused here, once, rather than in every worker
    console.print(
        f"serving {_served(run, model, engine_name)} on http://{host}:{port} "
        f"({workers} worker(s), batches of {max_batch}, queue limit {queue_limit}, "
        f"timeout {timeout:g} s); {where}",
        highlight=False,
    )
    if workers > 1:
        model = None  # each worker process loads its own
    serve(
        run,
        host=host,
        port=port,
        engine=engine,
        workers=workers,
        model=model,
        top_k=top_k,
        max_batch=max_batch,
        queue_limit=queue_limit,
        timeout=timeout,
        max_upload_bytes=int(max_upload_mb * 2**20),
        token=token,
        **{name[2:].replace("-", "_"): value for name, value in limits.items()},
    )


def _served(run: Path, model, engine_name) -> str:
    """What is served, as the start-up line says it: an index folder's search, or a run's
    model with the engine that answers."""
    if getattr(model, "opened", None) is not None:  # an index folder's search service
        record = model.record
        return f"search over [bold]{run}[/] ({record.get('count')} documents, " + (
            f"{record.get('encoder')}) at /search"
        )
    engine = engine_name(model)
    return f"[bold]{run}[/] ({model.model_}, {model.task_}) with the [bold]{engine}[/] engine"


def _check(positive: dict[str, float], port: int, engine: str) -> None:
    """Refuse a count or size that is not positive, a port out of range, an unknown engine."""
    for name, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
