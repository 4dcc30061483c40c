"""The typer application the commands register on, and the consoles they print to."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="Adapt a pretrained image or text model to your labelled data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)
