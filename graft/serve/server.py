"""Running the service: uvicorn in this process (one worker), in ``--workers N`` processes
(uvicorn's supervisor imports :func:`app_from_environment`, which loads the run named by the
environment in each worker), or in a background thread (:class:`BackgroundServer`: tests,
benchmarks, notebooks). Shutdown is graceful: uvicorn stops accepting connections, waits up to
the request timeout (plus :data:`GRACE_SECONDS`) for the requests in flight, then the batcher
answers what it had accepted (:meth:`graft.serve.batching.MicroBatcher.drain`)."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from graft.serve.app import TIMEOUT_SECONDS, create_app
from graft.serve.auth import service_token
from graft.serve.limits import MAX_CONNECTIONS

#: The environment variables that hand the run and the options to ``--workers`` processes.
RUN_VARIABLE = "GRAFT_SERVE_RUN"
OPTIONS_VARIABLE = "GRAFT_SERVE_OPTIONS"
#: Seconds beyond the request timeout that shutdown waits for requests in flight.
GRACE_SECONDS = 5
#: ``serve(token=BY_HOST)``: a token when the host is not a loopback address
#: (:func:`graft.serve.auth.service_token`).
BY_HOST = "by-host"


def load_served(run: str | os.PathLike, engine: str = "auto") -> Any:
    """The run's model with the asked engine (``auto``: the run's export when it has a
    current one, else PyTorch), as ``graft.load`` restores it (a recommendation run's too:
    :func:`served_app` serves it as one); for an index folder that ``graft index`` wrote, its
    search service (:class:`graft.serve.search.SearchService`)."""
    from graft.api import load
    from graft.serve.search import SearchService, is_index

    if is_index(run):
        return SearchService(run)
    return load(run, engine=engine)


def served_app(served: Any, **options: Any):
    """The application of what :func:`load_served` opened: a search service's, a
    recommendation run's (:mod:`graft.serve.recommendations`: a model whose kind
    ``Recommends``), or a model's (:func:`graft.serve.create_app`)."""
    from graft.serve.recommendations import (
        RecommendationService,
        create_recommendation_app,
        recommends,
    )
    from graft.serve.search import SearchService, create_search_app

    if isinstance(served, SearchService):
        return create_search_app(served, **options)
    if recommends(served):
        return create_recommendation_app(RecommendationService(served), **options)
    return create_app(served, **options)


def serve(
    run: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    engine: str = "auto",
    workers: int = 1,
    model: Any = None,
    token: str | None = BY_HOST,
    max_connections: int = MAX_CONNECTIONS,
    **options: Any,
) -> None:
    """Serve the run until interrupted: with ``workers`` processes, each loading the run
    (``model``: the run already loaded, used when one worker serves); ``token``: the one
    requests must carry (None: none; :data:`BY_HOST`: one generated unless ``host`` is a
    loopback address); ``max_connections`` open at once per worker, the other connection
    limits of :mod:`graft.serve.connections`; ``options`` as :func:`graft.serve.create_app`
    takes them."""
    import uvicorn

    from graft.serve.connections import connection_options

    if token == BY_HOST:
        token, where = service_token(host)
        print(f"graft serve: {where}", flush=True)
    options["token"] = token

    grace = int(options.get("timeout", TIMEOUT_SECONDS)) + GRACE_SECONDS
    common = {"host": host, "port": port, "log_level": "info", "timeout_graceful_shutdown": grace}
    common.update(connection_options(max_connections))
    if workers == 1:
        app = served_app(model if model is not None else load_served(run, engine), **options)
        uvicorn.run(app, **common)
        return
    os.environ[RUN_VARIABLE] = str(Path(run).expanduser().resolve())
    os.environ[OPTIONS_VARIABLE] = json.dumps({"engine": engine, "workers": workers, **options})
    with tempfile.TemporaryDirectory(prefix="graft-metrics-") as folder:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", folder)  # /metrics adds workers up
        target = f"{__name__}:app_from_environment"
        uvicorn.run(target, factory=True, workers=workers, **common)


def app_from_environment():
    """The application of one ``--workers`` process: the run and options from the
    environment (:data:`RUN_VARIABLE`, :data:`OPTIONS_VARIABLE`), the cores shared out."""
    import torch

    options = json.loads(os.environ[OPTIONS_VARIABLE])
    engine, workers = options.pop("engine"), options.pop("workers")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    return served_app(load_served(os.environ[RUN_VARIABLE], engine), **options)


class BackgroundServer:
    """uvicorn serving ``app`` on a free loopback port in a thread, as a context manager (for
    tests, benchmarks and notebooks): ``with BackgroundServer(create_app(model)) as live:``
    then requests to ``live.url``. Leaving it shuts down as ``graft serve`` does: requests in
    flight are answered first (up to ``grace`` seconds). The connections are kept as
    ``graft serve`` keeps them (:mod:`graft.serve.connections`); ``options`` replace those
    options of ``uvicorn.Config``."""

    def __init__(self, app, host: str = "127.0.0.1", grace: int = 30, **options: Any):
        import uvicorn

        from graft.serve.connections import connection_options

        with socket.socket() as probe:
            probe.bind((host, 0))
            self.port = probe.getsockname()[1]
        self.host = host
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=grace,
            **{**connection_options(), **options},
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=self.server.config.timeout_graceful_shutdown + 10)
