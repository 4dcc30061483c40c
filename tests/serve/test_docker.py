"""The container (``Dockerfile`` at the repository root): built, run with a trained run
mounted, healthy by its own health check, and answering a photo. Built only where a Docker
daemon answers ``docker info``; skipped elsewhere, saying so."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import upload

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "graft-serve-test"
TOKEN = "docker-test-token-0123456789abcdef"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}
RUN = ["docker", "run", "-d", "-p", "127.0.0.1::8000"]


def docker_answers() -> str | None:
    """Why the Docker image cannot be built here (None: it can)."""
    if shutil.which("docker") is None:
        return "docker is not installed: the Dockerfile's build is not tested here"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        return "the Docker daemon is not running (docker info failed): the build is not tested"
    return None


NOT_HERE = docker_answers()


@pytest.mark.slow
@pytest.mark.skipif(NOT_HERE is not None, reason=str(NOT_HERE))
def test_the_image_serves_a_mounted_run_and_is_healthy(flowers_run, photos):
    model, run = flowers_run
    subprocess.run(["docker", "build", "-t", IMAGE, str(ROOT)], check=True)
    started = subprocess.run(
        [*RUN, "-e", f"GRAFT_SERVE_TOKEN={TOKEN}", "-v", f"{run}:/srv/run:ro", IMAGE],
        capture_output=True,
        text=True,
        check=True,
    )
    container = started.stdout.strip()
    try:
        port = (
            subprocess.run(
                ["docker", "port", container, "8000"], capture_output=True, text=True, check=True
            )
            .stdout.split(":")[-1]
            .strip()
        )
        assert wait_healthy(container) == "healthy"
        url = f"http://127.0.0.1:{port}/predict"
        assert httpx.post(url, files=upload(photos[0])).status_code == 401  # 0.0.0.0: locked
        response = httpx.post(url, files=upload(photos[0]), headers=AUTHORIZED)
        assert response.status_code == 200
        assert response.json()["predictions"][0][0]["label"] == model.predict([str(photos[0])])[0]
    finally:
        subprocess.run(["docker", "stop", "-t", "40", container], capture_output=True)
        subprocess.run(["docker", "rm", container], capture_output=True)


def wait_healthy(container: str, seconds: float = 300) -> str:
    """The container's health once its HEALTHCHECK has decided (or ``starting`` at the end)."""
    deadline, health = time.monotonic() + seconds, "starting"
    while time.monotonic() < deadline and health == "starting":
        time.sleep(2)
        state = subprocess.run(
            ["docker", "inspect", "--format", "{{json .State.Health}}", container],
            capture_output=True,
            text=True,
        )
        health = json.loads(state.stdout or "{}").get("Status", "starting")
    return health
