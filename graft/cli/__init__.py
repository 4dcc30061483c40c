"""The ``graft`` command line: models, fit, pretrain, rank, lr-find, tune, adapt, evaluate,
predict, report, export, serve.

Each command is a thin layer over the Python API: :mod:`.train` (fit, pretrain, rank, lr-find;
their options built from the configurations by :mod:`.options`), :mod:`.tune` (the
search of a fit's options), :mod:`.use` (the commands on a
run directory), :mod:`.serve` (the HTTP service) and :mod:`.output` (what they print).
Importing this package imports typer and rich, not torch: ``graft --help`` answers at once.
"""

from __future__ import annotations

import logging
import os

from rich.logging import RichHandler
from rich.markup import escape

from graft.cli import adapt, recommend, search, serve, train, tune, use
from graft.cli.app import app, errors
from graft.errors import GraftError

__all__ = ["adapt", "app", "main", "recommend", "search", "serve", "train", "tune", "use"]


def main() -> None:
    """The ``graft`` command: run it, printing a user's error as one line (exit status 2)."""
    from graft.training.distributed import allow_script_relaunch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    allow_script_relaunch()
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=errors, show_time=False, show_path=False)],
    )
    try:
        app()
    except GraftError as error:
        errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
