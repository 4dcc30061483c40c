"""The micro-batcher on its own (graft.serve.batching): batches of at most max_batch inputs
from several requests, a large request split and answered in its order, a full queue refused
with a Retry-After estimate, one bad input failing only its own request, a cancelled request
skipped, and draining that answers what was accepted and refuses the rest."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from graft.serve.batching import MicroBatcher, QueueFull


class Model:
    """Answers each input with its double, records every batch, fails on ``"bad"``, and
    waits for ``gate`` (when set) so that requests can pile up."""

    def __init__(self, seconds: float = 0.0):
        self.batches: list[list] = []
        self.seconds = seconds
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items: list) -> list:
        self.gate.wait(5)
        time.sleep(self.seconds)
        if "bad" in items:
            raise ValueError("a bad input")
        self.batches.append(list(items))
        return [2 * item for item in items]


async def running(batcher: MicroBatcher) -> asyncio.Task:
    worker = asyncio.create_task(batcher.run())
    await asyncio.sleep(0)
    return worker


def test_a_large_request_is_split_and_small_ones_share_batches():
    async def scenario():
        model = Model()
        batcher = MicroBatcher(model, max_batch=4)
        worker = await running(batcher)
        answers = await asyncio.gather(
            batcher.submit(list(range(10))), batcher.submit([100]), batcher.submit([200, 201])
        )
        worker.cancel()
        return model, batcher, answers

    model, batcher, answers = asyncio.run(scenario())
    assert answers == [[2 * i for i in range(10)], [200], [400, 402]]
    assert [len(b) for b in model.batches] == [4, 4, 4, 1]  # 13 inputs, at most 4 at once
    assert model.batches[2] == [8, 9, 100, 200]  # the big request's tail shares a batch
    assert batcher.batches == 4 and batcher.inputs == 13


def test_a_full_queue_is_refused_with_an_estimate():
    async def scenario():
        model = Model()
        model.gate.clear()  # the model is busy until the gate opens
        batcher = MicroBatcher(model, max_batch=2, queue_limit=2)
        worker = await running(batcher)
        first = asyncio.create_task(batcher.submit([1, 2]))
        await asyncio.sleep(0.05)  # taken by the model: no longer queued
        queued = [asyncio.create_task(batcher.submit([i])) for i in (3, 4)]
        await asyncio.sleep(0.05)
        assert batcher.depth == 2
        with pytest.raises(QueueFull, match="2 requests waiting, the limit is 2") as refusal:
            await batcher.submit([5])
        model.gate.set()
        answers = await asyncio.gather(first, *queued)
        worker.cancel()
        return refusal.value.retry_after, answers

    retry_after, answers = asyncio.run(scenario())
    assert retry_after >= 1 and answers == [[2, 4], [6], [8]]


def test_a_bad_input_fails_only_its_own_request():
    async def scenario():
        batcher = MicroBatcher(Model(), max_batch=8, wait=0.05)
        worker = await running(batcher)
        results = await asyncio.gather(
            batcher.submit([1]),
            batcher.submit(["bad"]),
            batcher.submit([3]),
            return_exceptions=True,
        )
        worker.cancel()
        return results

    first, bad, third = asyncio.run(scenario())
    assert first == [2] and third == [6]
    assert isinstance(bad, ValueError)


def test_a_cancelled_request_is_skipped_and_drain_finishes_the_accepted():
    async def scenario():
        model = Model(seconds=0.05)
        model.gate.clear()
        batcher = MicroBatcher(model, max_batch=1)
        worker = await running(batcher)
        first = asyncio.create_task(batcher.submit([1]))
        await asyncio.sleep(0.02)
        gone = asyncio.create_task(batcher.submit([2]))
        kept = asyncio.create_task(batcher.submit([3]))
        await asyncio.sleep(0.02)
        gone.cancel()  # its client went away, or its timeout passed
        model.gate.set()
        draining = asyncio.create_task(batcher.drain(timeout=5))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="shutting down"):
            await batcher.submit([4])
        await draining
        assert first.done() and kept.done() and batcher.unanswered == 0
        worker.cancel()
        return model.batches, await first, await kept

    batches, first, kept = asyncio.run(scenario())
    assert batches == [[1], [3]] and first == [2] and kept == [6]
