"""A fitted run shared by the service's tests (the tiny flower photos, feature extraction), and
helpers to make its model slow and to read ``/metrics``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import graft


@pytest.fixture(scope="session")
def flowers_run(tiny_flowers, tmp_path_factory) -> tuple:
    """The model fitted on the tiny flowers and its run directory."""
    out = tmp_path_factory.mktemp("serve") / "flowers"
    model = graft.fit(tiny_flowers, strategy="feature-extract", epochs=5, out=out, progress=False)
    return model, out


@pytest.fixture(scope="session")
def photos(tiny_flowers) -> list[Path]:
    return sorted((tiny_flowers / "val").rglob("*.jpg"))


def slow_down(monkeypatch, model, seconds: float) -> None:
    """Make every call of ``model``'s answers take ``seconds`` more (a busy model)."""
    answer = model.served_answers

    def slow(items, top_k):
        time.sleep(seconds)
        return answer(items, top_k)

    monkeypatch.setattr(model, "served_answers", slow)


def upload(photo: Path) -> dict:
    return {"file": (photo.name, photo.read_bytes(), "image/jpeg")}


def metric_samples(url: str) -> dict:
    """``/metrics`` parsed as Prometheus text: (sample name, sorted labels) -> value."""
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples
