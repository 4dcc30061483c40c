"""``GET /metrics``: the service's counters in Prometheus text format (``prometheus_client``).

- ``graft_requests_total{path, status}``: answered requests by route and HTTP status;
- ``graft_request_seconds{path}``: latency histogram of the answers, from the request's arrival;
- ``graft_batch_size`` and ``graft_batch_seconds``: the batches the model answered, their
  number of inputs and the seconds of the model's call;
- ``graft_queue_depth``: requests waiting for the model now;
- ``graft_errors_total{kind}``: refusals and failures: ``queue_full`` (503), ``timeout`` (504),
  ``bad_request`` (4xx), ``cancelled`` (499: the client went away first), ``model`` (500: the
  model failed on an accepted input).

Each application counts in a registry of its own (several can live in one process: tests). With
several worker processes (``graft serve --workers N``) the workers write their counters to the
folder named by ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``, whichever worker answers it,
adds them up (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Latency buckets in seconds: from a fast ONNX answer to a request that waited its timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: The routes counted by name; any other path is counted as ``other`` (no unbounded labels).
ROUTES = ("/predict", "/search", "/recommend", "/health", "/metrics", "/")


class ServeMetrics:
    """The service's Prometheus metrics (see the module docstring)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, max_batch: int):
        self.registry = CollectorRegistry()
        at = {"registry": self.registry}
        self.requests = Counter(
            "graft_requests", "Answered requests by route and status.", ["path", "status"], **at
        )
        self.latency = Histogram(
            "graft_request_seconds",
            "Seconds from a request's arrival to its answer.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            **at,
        )
        sizes = sorted({2**i for i in range(max_batch.bit_length())} | {max_batch})
        self.batch_size = Histogram(
            "graft_batch_size", "Inputs per call of the model.", buckets=sizes, **at
        )
        self.batch_seconds = Histogram(
            "graft_batch_seconds", "Seconds per call of the model.", buckets=LATENCY_BUCKETS, **at
        )
        self.queue_depth = Gauge(
            "graft_queue_depth",
            "Requests waiting for the model.",
            multiprocess_mode="livesum",
            **at,
        )
        self.errors = Counter("graft_errors", "Refused or failed requests by kind.", ["kind"], **at)

    def request(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        route = path if path in ROUTES else "other"
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        kind = error_kind(status)
        if kind is not None:
            self.errors.labels(kind).inc()

    def batch(self, size: int, seconds: float) -> None:
        """Count one call of the model."""
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def exposition(self) -> bytes:
        """The text ``/metrics`` answers: this application's counters, or every worker's
        added up in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def error_kind(status: int) -> str | None:
    """The ``graft_errors_total`` kind of an HTTP status (None: not an error)."""
    if status < 400:
        return None
    named = {499: "cancelled", 503: "queue_full", 504: "timeout"}
    return named.get(status, "bad_request" if status < 500 else "model")
