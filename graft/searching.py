"""Finding the model that searches: a run directory's (the kind its ``config.json`` names) or
the pretrained model a model string names, through the registry and the
:class:`~graft.tasks.capabilities.Searches` capability, never by importing a kind. Read by
``graft index``, ``graft search``, ``graft evaluate`` on retrieval data and ``graft serve
INDEX``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graft.errors import ConfigError

#: The kind whose models search (graft's own; a run names its kind in config.json).
SEARCH_KIND = "similarity"


def searching_kind(kind: str = SEARCH_KIND) -> Any:
    """The task class of ``kind``, which must search (ConfigError otherwise)."""
    from graft.tasks import task_class
    from graft.tasks.capabilities import Searches

    found = task_class(kind)
    if not issubclass(found, Searches):
        raise ConfigError(f"a {kind} model does not search; --task similarity does")
    return found


def run_kind(path: Path) -> str | None:
    """The kind of task a run directory's config.json names, or None (not a run)."""
    record = path / "config.json"
    if not record.is_file():
        return None
    task = json.loads(record.read_text()).get("task")
    return task.get("kind") if isinstance(task, dict) else task


def open_searcher(source: str) -> Any:
    """The model that searches: a run directory's (loaded by :func:`graft.load`), or the
    pretrained model a model string names (its kind's)."""
    kind = run_kind(Path(source))
    if kind is None:
        return searching_kind(SEARCH_KIND).open_model(source)
    from graft.api import load

    searching_kind(kind)
    model = load(source, engine="torch")
    return model.fitted_task_.searcher(model)
