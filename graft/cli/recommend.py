"""``graft recommend``: items for a user of a recommendation run, for a new user from a few
liked items, or like one item. It reaches the kind through :func:`graft.load` and the
:class:`~graft.tasks.capabilities.Recommends` capability, never by importing it; heavy imports
wait until the command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from graft.cli.app import app, console


@app.command()
def recommend(
    run: Annotated[Path, typer.Argument(help="A recommendation run written by graft fit.")],
    user: Annotated[
        str | None, typer.Argument(help="A user the model was fitted on (optional).")
    ] = None,
    liked: Annotated[
        str | None, typer.Option(help="Item ids a new (or the) user liked, comma separated.")
    ] = None,
    similar_to: Annotated[
        str | None, typer.Option(help="An item id: recommend the items most like it.")
    ] = None,
    top_k: Annotated[int, typer.Option(help="How many items to recommend.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recommend items: to USER, to a new user from --liked items, or like --similar-to."""
    from graft.api import load

    model = load(run, engine="torch")
    liked_items = [i.strip() for i in liked.split(",") if i.strip()] if liked else None
    found = model.recommend(user=user, liked=liked_items, top_k=top_k, similar_to=similar_to)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    title = f"like item {similar_to}" if similar_to else f"for {user or 'a new user'}"
    table = Table(title=f"{run}: {title}")
    for column in ("rank", "item", "score", "text"):
        table.add_column(column)
    for number, entry in enumerate(found, 1):
        table.add_row(str(number), entry["item"], f"{entry['score']:.3f}", entry["text"][:90])
    console.print(table)
