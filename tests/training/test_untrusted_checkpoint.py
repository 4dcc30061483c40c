"""Run directories are data, not code: a resume checkpoint replaced by a pickle that would run a
command is refused with graft's one-line RunError naming the file, and the command never runs
(graft.training.engine.read_checkpoint)."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graft
from graft.errors import RunError
from graft.training import engine


class Payload:
    """A pickle that creates ``marker`` when it is unpickled (what an attacker would plant)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path, zipped: bool) -> None:
    """Replace ``path`` by a malicious pickle: torch's zip format, or a raw pickle."""
    if zipped:
        torch.save({"state_dict": {}, "callbacks": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))


@pytest.fixture(scope="module")
def stopped_run(tiny_flowers, tmp_path_factory) -> Path:
    """A run whose fit stopped after its phase's last.ckpt was written (not finished)."""
    run = tmp_path_factory.mktemp("untrusted") / "run"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(engine, "_mark_kept_epoch", crash)
        with pytest.raises(KeyboardInterrupt):
            graft.fit(tiny_flowers, strategy="feature-extract", epochs=1, out=run, progress=False)
    (checkpoint,) = run.glob("checkpoints/*/last.ckpt")
    assert not (run / "model.safetensors").exists()
    return run


@pytest.fixture
def interrupted_run(stopped_run, tmp_path) -> Path:
    """A copy of the stopped run, for one test to alter."""
    return Path(shutil.copytree(stopped_run, tmp_path / "run"))


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "raw-pickle"])
def test_resume_refuses_a_malicious_checkpoint_without_running_it(
    interrupted_run, tmp_path, zipped
):
    (checkpoint,) = interrupted_run.glob("checkpoints/*/last.ckpt")
    marker = tmp_path / f"pwned-{zipped}"
    plant(checkpoint, marker, zipped)
    with pytest.raises(RunError) as refused:
        graft.resume(interrupted_run)
    message = str(refused.value)
    assert str(checkpoint) in message and "refused without running it" in message
    assert "\n" not in message
    assert not marker.exists()


def test_the_cli_refuses_it_with_one_line_and_exit_status_2(interrupted_run, tmp_path):
    (checkpoint,) = interrupted_run.glob("checkpoints/*/last.ckpt")
    marker = tmp_path / "pwned-cli"
    plant(checkpoint, marker, zipped=True)
    script = Path(sys.executable).parent / "graft"
    if not script.is_file():
        pytest.skip(f"the graft script is not installed beside {sys.executable}")
    done = subprocess.run(
        [str(script), "fit", "--resume", str(interrupted_run), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "refused without running it" in " ".join(done.stderr.split())
    assert not marker.exists()


@pytest.mark.parametrize(
    "content", [b"", b"\x00" * 100, b"PK\x03\x04garbage", pickle.dumps([1, 2, 3])]
)
def test_a_damaged_checkpoint_is_a_run_error(tmp_path, content):
    path = tmp_path / "last.ckpt"
    path.write_bytes(content)
    with pytest.raises(RunError, match="last.ckpt: not a checkpoint graft wrote"):
        engine.read_checkpoint(path, mmap=True)


def test_done_json_cannot_point_outside_its_phase(tmp_path):
    from graft.runs.directory import write_json

    done = tmp_path / "done.json"
    write_json(done, {"history": [], "weights": "../../../elsewhere.ckpt"})
    with pytest.raises(RunError, match="names no checkpoint"):
        engine._load_finished(None, tmp_path, done)
