"""The commands of search: ``index`` embeds a corpus into an on-disk vector index, ``search``
answers a query from one; ``graft evaluate`` on retrieval data goes through
:func:`evaluate_retrieval`.

They reach the kind that searches through the registry and its
:class:`~graft.tasks.capabilities.Searches` capability, never by importing it; heavy imports
wait until a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from graft.cli.app import app, console
from graft.searching import open_searcher, run_kind


def evaluate_retrieval(run: str, data: Path, task: str | None, as_json: bool) -> bool:
    """``graft evaluate`` of a run (or with ``--task similarity`` a pretrained model) that
    searches: its retrieval metrics printed, True; False for any other run."""
    kind = run_kind(Path(run)) or task
    if kind is None:
        return False
    from graft.tasks import task_class
    from graft.tasks.capabilities import Searches

    if not issubclass(task_class(kind), Searches):
        return False
    metrics = open_searcher(run).evaluate(data)
    if as_json:
        print(json.dumps(metrics, indent=2))
        return True
    table = Table(title=f"{run} on {data} ({metrics['split']} qrels, {metrics['queries']} queries)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("ndcg@10", "mrr@10", "recall@10", "recall@100"):
        table.add_row(name, f"{metrics[name]:.4f}")
    console.print(table)
    return True


@app.command()
def index(
    run: Annotated[
        str,
        typer.Argument(help="A similarity run, or a model string (minilm, efficientnet_lite0)."),
    ],
    corpus: Annotated[
        Path,
        typer.Argument(
            help="A BEIR folder, a JSONL/CSV/TSV of id and text, or a folder of images."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The index folder to write.")],
) -> None:
    """Embed CORPUS into an on-disk vector index (FAISS); run again to resume."""
    from rich.progress import track

    def progress(shards):
        return track(shards, description="embedding", console=console)

    record = open_searcher(run).index(corpus, out, progress)
    console.print(f"indexed {record['count']} documents into [bold]{out}[/]")


@app.command()
def search(
    index_dir: Annotated[Path, typer.Argument(help="An index folder written by graft index.")],
    queries: Annotated[
        list[str],
        typer.Argument(help="One or more queries (image files' paths for an index of images)."),
    ],
    top_k: Annotated[int, typer.Option(help="How many documents per query.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Answer QUERIES from an index: the nearest documents, best first."""
    from graft.errors import RunError

    record_file = index_dir / "index.json"
    if not record_file.is_file():
        raise RunError(f"{index_dir}: not an index (no index.json); write one with graft index")
    encoder = json.loads(record_file.read_text())["encoder"]
    answers = open_searcher(encoder).search(list(queries), index_dir, top_k)
    for query, found in zip(queries, answers, strict=True):
        if as_json:
            print(json.dumps({"query": query, "results": found}))
            continue
        table = Table(title=query)
        for column in ("rank", "id", "score", "text"):
            table.add_column(column)
        for number, hit in enumerate(found, 1):
            table.add_row(str(number), hit["id"], f"{hit['score']:.3f}", hit["text"][:100])
        console.print(table)
