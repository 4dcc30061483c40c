"""Where a study lives and how its sampler is seeded, shared by both backends: Optuna's
SQLite storage ``DIR/study.db`` under the name :data:`STUDY_NAME`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Optuna's name for graft's study in ``DIR/study.db``.
STUDY_NAME = "graft"


def storage_url(out: Path) -> str:
    """The SQLAlchemy URL of the study's storage in ``out``."""
    return f"sqlite:///{out / 'study.db'}"


def sampler_seed(space: Any, trials_so_far: int) -> int:
    """The sampler's seed: the fit's ``seed`` plus the trials already in the study, so that a
    resumed study draws new options rather than those of its first trials again."""
    return int(space.fixed.get("seed", 0)) + 7919 * trials_so_far
