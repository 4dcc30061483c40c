"""The run directory: what a fit writes, written atomically, and read back by :func:`graft.load`.

Layout::

    config.json        resolved configuration, data sources, split seed, versions
    labels.json        class names in label order (a multi-task run: by task)
    preprocessing.json what input the backbone expects
    model.safetensors  the head (and the backbone, when it was trained)
    metrics.json       validation and test metrics
    history.json       per-epoch metrics of every phase (CSV logs under logs/)
    summary.json       counts, skipped inputs, cache hits, timings
    checkpoints/       per-epoch checkpoints while the fit runs (removed when it finishes)
    report.html        the run report (:mod:`graft.report`)
    .graft.lock        held (flock) by the process writing the run; free once it ends

``config.json`` is written first, with ``"status": "running"``, and rewritten at the end; a run
whose ``model.safetensors`` is missing is unfinished, and ``graft fit --resume RUN`` finishes it.
A second process pointed at a run that another is writing is refused (:func:`run_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from graft.errors import RunError

FORMAT_VERSION = 1
LOCK_FILE = ".graft.lock"


@contextlib.contextmanager
def run_lock(path: str | Path | None, create: bool = True):
    """Hold the run directory ``path`` for this process (no-op for None): an advisory
    ``flock`` on its lock file, which the system frees when the process ends in any way, even
    by SIGKILL. A run another process holds raises :class:`RunError` naming its pid. Without
    ``create`` (a resume), a missing folder is not made: the caller reports it."""
    path = None if path is None else Path(path).expanduser()
    if path is None or (not create and not path.is_dir()):
        yield
        return
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path}: exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunError(
                f"--out {path}: {holder} is writing this run now; wait for it to finish or "
                "choose another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"graft process {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def prepare_run_dir(path: str | Path, overwrite: bool) -> Path:
    """Create ``path``; refuse a non-empty one unless ``overwrite``."""
    path = check_run_dir(path, overwrite)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_run_dir(path: str | Path, overwrite: bool) -> Path:
    """Refuse a ``path`` that is a file, or a non-empty folder unless ``overwrite``."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path}: exists and is not a folder")
    if path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir()) and not overwrite:
        raise RunError(
            f"--out {path}: the folder is not empty; choose another folder or pass --overwrite"
        )
    return path


def start_run(
    path: str | Path, overwrite: bool, resume: bool, config: dict, arguments: dict | None
) -> Path:
    """Create the run directory and record the fit in ``config.json`` before training starts,
    so that an interrupted run says what it was and ``--resume`` can finish it.

    With ``resume``, the directory must hold an unfinished run, which is left as it is.
    """
    from graft.training.distributed import is_global_zero
    from graft.version import __version__

    path = Path(path).expanduser()
    if resume:
        if is_global_zero():
            read_run_record(path)
        return path
    path = prepare_run_dir(path, overwrite)
    write_json(
        path / "config.json",
        {
            "format_version": FORMAT_VERSION,
            "status": "running",
            "versions": {"graft": __version__},
            "config": config,
            "arguments": arguments,
        },
    )
    return path


def read_run_record(path: Path) -> dict:
    """The record of an unfinished run (RunError when there is none, or it has finished)."""
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    record = read_json(path / "config.json")
    if (path / "model.safetensors").is_file():
        raise RunError(
            f"{path}: this run has finished (model.safetensors is there): nothing to resume"
        )
    return record


def finish_run(path: Path) -> None:
    """Drop the per-epoch checkpoints of a finished run: model.safetensors holds the result."""
    shutil.rmtree(path / "checkpoints", ignore_errors=True)


_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: the only way to learn the umask is to set it


def atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_UMASK)  # as open() would have made it, not mkstemp's 0600
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, lambda t: t.write_text(json.dumps(value, indent=2, default=str) + "\n"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path.parent}: not a graft run ({path.name} is missing)") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: corrupt JSON ({error})") from None


def write_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda t: save_file(contiguous, t, metadata=metadata))


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except FileNotFoundError:
        raise RunError(f"{path.parent}: not a graft run ({path.name} is missing)") from None
    except Exception as error:  # safetensors raises its own error type for corrupt files
        raise RunError(f"{path}: cannot read the weights ({error})") from None
