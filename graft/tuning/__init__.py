"""Hyperparameter search: ``graft tune DATA`` and :func:`graft.tune`.

Optuna searches the options of a fit (:mod:`.space`: a default space per kind of task, a
preset, a YAML file or keyword arguments); every trial is a normal graft run directory
(:mod:`.trial`) that reports its validation score each epoch so that bad trials stop early;
the study runs here (:mod:`.study`) or as Ray Tune trials on a cluster (:mod:`.ray_backend`),
and ends with a table of trials, a ``best`` link and a search page (:mod:`.table`).
Optuna (``graft[tune]``) and Ray (``graft[ray]``) are optional extras, imported on use.
"""

from __future__ import annotations

from typing import Any


def tune(*args: Any, **kwargs: Any) -> Any:
    """:func:`graft.tuning.study.tune` (imported on first use)."""
    from graft.tuning.study import tune as run

    return run(*args, **kwargs)
