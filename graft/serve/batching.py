"""Micro-batching with a bounded queue: the inputs of concurrent requests become batches of at
most ``max_batch`` inputs for one call of the model.

A request waits in a queue of at most ``queue_limit`` requests; a request that finds it full is
refused at once (:class:`QueueFull`, which the service answers with 503 and ``Retry-After``)
rather than queued without bound. The worker takes up to ``max_batch`` inputs from the front of
the queue (waiting up to ``wait`` seconds for more when fewer are there; by default it does
not wait: the requests that arrive while the model answers a batch form the next one), so a
request larger than ``max_batch`` is answered in several batches (and small neighbours can share
its last one), and calls the model in a worker thread. If a batch of several requests fails,
each request's part is retried on its own, so one bad input cannot fail its neighbours. A
request that is cancelled (its timeout, a client that went away) is dropped from the queue.
:meth:`drain` refuses new requests and finishes the accepted ones (graceful shutdown).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: How long the first input of a batch waits for others to share it. Zero by default: measured
#: with 8 clients that each wait for their answer (bench/serve_load.py), a wait of 10 ms left
#: the model idle while the batch filled, and ONNX served about a fifth fewer requests/s.
BATCH_WAIT_SECONDS = 0.0
MAX_BATCH = 32
#: Requests that may wait for the model at once; one more is refused with 503.
QUEUE_LIMIT = 64


class QueueFull(Exception):
    """The queue holds ``queue_limit`` requests (or the service is shutting down): come back
    after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


@dataclass(eq=False)
class _Job:
    """One request: its inputs, how many were handed to the model, the answers so far."""

    items: list
    future: asyncio.Future
    taken: int = 0
    answers: list = field(default_factory=list)

    @property
    def waiting(self) -> bool:
        return not self.future.done()


@dataclass
class MicroBatcher:
    """Batches the inputs of concurrent requests (see the module docstring).

    Attributes:
        predict: answers a list of inputs, one answer each (runs in a worker thread).
        max_batch: the most inputs in one call.
        queue_limit: the most requests waiting at once.
        wait: how long the first input of a batch waits for more.
        observe: called with each batch's size and seconds after it is answered (metrics).
        batches, inputs: how many calls and inputs so far (for /health and tests).
    """

    predict: Callable[[list], list]
    max_batch: int = MAX_BATCH
    queue_limit: int = QUEUE_LIMIT
    wait: float = BATCH_WAIT_SECONDS
    observe: Callable[[int, float], None] | None = None
    batches: int = 0
    inputs: int = 0
    _jobs: deque = field(default_factory=deque, repr=False)
    _arrived: asyncio.Event | None = field(default=None, repr=False)
    _closing: bool = field(default=False, repr=False)
    _seconds_per_input: float = field(default=0.05, repr=False)

    @property
    def depth(self) -> int:
        """Requests in the queue: some of their inputs not yet handed to the model."""
        return sum(job.waiting and job.taken < len(job.items) for job in self._jobs)

    @property
    def unanswered(self) -> int:
        """Requests accepted and not answered yet (queued or in the model)."""
        return sum(job.waiting for job in self._jobs)

    async def submit(self, items: list) -> list:
        """The answers of ``items`` in their order, once the model has answered all of them;
        :class:`QueueFull` at once when ``queue_limit`` requests wait already."""
        if self._arrived is None:
            raise RuntimeError("the batcher is not running")
        self.admit()
        job = _Job(list(items), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._arrived.set()
        return await job.future  # cancelled with the request: the job is skipped

    def admit(self) -> None:
        """:class:`QueueFull` when a request would not be accepted now (the service checks
        before it reads a request's body, so refusing costs little under overload)."""
        if self._closing:
            raise QueueFull("the service is shutting down", retry_after=1)
        if self.depth >= self.queue_limit:
            raise QueueFull(
                f"the service is busy ({self.depth} requests waiting, the limit is "
                f"{self.queue_limit})",
                retry_after=self.retry_after(),
            )

    def retry_after(self) -> int:
        """Seconds until the queue has room again, from the recent time per input."""
        queued = sum(len(job.items) - job.taken for job in self._jobs if job.waiting)
        return max(1, math.ceil(queued * self._seconds_per_input))

    async def run(self) -> None:
        """Answer batches until cancelled (started by the service's lifespan)."""
        self._arrived = asyncio.Event()
        while True:
            await self._next_batch_ready()
            await self._answer(self._take())

    async def drain(self, timeout: float) -> None:
        """Refuse new requests and wait up to ``timeout`` seconds until the accepted ones are
        answered."""
        self._closing = True
        deadline = time.monotonic() + timeout
        while self.unanswered and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def _next_batch_ready(self) -> None:
        """Wait for a first input, then up to ``wait`` seconds for a full batch."""
        while not self._pending():
            self._arrived.clear()
            await self._arrived.wait()
        deadline = time.monotonic() + self.wait
        while self._pending() < self.max_batch and (left := deadline - time.monotonic()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=left)
            except TimeoutError:
                break

    def _pending(self) -> int:
        while self._jobs and not self._jobs[0].waiting:  # answered, failed or cancelled
            self._jobs.popleft()
        return sum(len(job.items) - job.taken for job in self._jobs if job.waiting)

    def _take(self) -> list[tuple[_Job, int, int]]:
        """Up to ``max_batch`` inputs from the front of the queue: (job, start, stop) parts."""
        parts, room = [], self.max_batch
        for job in list(self._jobs):
            if room == 0:
                break
            if not job.waiting or job.taken == len(job.items):
                continue
            stop = min(len(job.items), job.taken + room)
            parts.append((job, job.taken, stop))
            room -= stop - job.taken
            job.taken = stop
        return parts

    async def _answer(self, parts: list[tuple[_Job, int, int]]) -> None:
        items = [item for job, start, stop in parts for item in job.items[start:stop]]
        begin = time.perf_counter()
        try:
            answers = await asyncio.to_thread(self.predict, items)
        except Exception as error:  # noqa: BLE001  (handed to the requests that waited)
            if len(parts) > 1:  # answer each on its own: only the culprit fails
                for part in parts:
                    await self._answer([part])
            elif parts[0][0].waiting:
                parts[0][0].future.set_exception(error)
            return
        seconds = time.perf_counter() - begin
        self._seconds_per_input = 0.8 * self._seconds_per_input + 0.2 * seconds / len(items)
        self.batches, self.inputs = self.batches + 1, self.inputs + len(items)
        if self.observe is not None:
            self.observe(len(items), seconds)
        at = 0
        for job, start, stop in parts:
            job.answers[start:stop] = answers[at : at + stop - start]
            at += stop - start
            if job.waiting and len(job.answers) == len(job.items):
                job.future.set_result(job.answers)
